"""Recording checks: a standards-conformant quality report for every upload.

``run_checks(y, sr=..., kind="mix"|"vocal")`` returns the report (see docs/checks.md for every code
and definition); ``format_table`` renders it; ``report_value`` reads one value back.
Loudness (ITU-R BS.1770-4 / EBU R128 / Tech 3342) and true peak are reusable on their own from
:mod:`audio.checks.loudness`; the VAD from :mod:`audio.checks.vad`.
"""

from audio.checks.config import CheckSettings
from audio.checks.report import format_table, report_check, report_value, run_checks, warm_up

__all__ = ["CheckSettings", "format_table", "report_check", "report_value", "run_checks", "warm_up"]
