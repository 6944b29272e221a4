"""Recording checks: a standards-conformant quality report for every upload.

``run_checks(y, sr=..., kind="mix"|"vocal")`` returns the report (see docs/checks.md for every code
and definition); ``check_file(path)`` checks a file while decoding it, and ``CheckStream`` takes
blocks from any source, both in bounded memory; ``format_table`` renders a report and
``report_value`` reads one value back.
Loudness (ITU-R BS.1770-4 / EBU R128 / Tech 3342) and true peak are reusable on their own from
:mod:`audio.checks.loudness`; the VAD from :mod:`audio.checks.vad`.

The report functions are imported lazily: ``core.settings`` imports :mod:`audio.checks.config`, and
importing the numba kernels there would slow every CLI start by seconds.
"""

from __future__ import annotations

from typing import Any

from audio.checks.config import CheckSettings

__all__ = [
    "CheckSettings",
    "CheckStream",
    "check_blocks",
    "check_file",
    "format_table",
    "report_check",
    "report_value",
    "run_checks",
    "warm_up",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from audio.checks import report

        return getattr(report, name)
    raise AttributeError(f"module 'audio.checks' has no attribute {name!r}")
