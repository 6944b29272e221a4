"""Analyse one stored recording: decode (under limits) once, run checks and effects on the arrays.

Top-level functions with picklable arguments only: they run in the API's worker processes and in
batch-job workers alike, so both paths produce identical results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from audio.checks.config import CheckSettings
from audio.decode import AudioInfo, decode_file
from audio.limits import AudioLimits
from effects.config import EffectSettings


@dataclasses.dataclass
class RecordingAnalysis:
    info: AudioInfo
    duration_s: float
    report: dict[str, Any]
    artifacts: list[Any]  # effects.Artifact


def analyze_recording(
    path: str | Path,
    *,
    kind: str,
    limits: AudioLimits,
    checks: CheckSettings,
    effects: EffectSettings | None,
) -> RecordingAnalysis:
    """Decode ``path`` and compute its check report and (when ``effects`` is given) default effects."""
    from audio.checks import run_checks

    decoded = decode_file(path, limits=limits)
    report = run_checks(decoded.samples, sr=decoded.sample_rate, kind=kind, settings=checks)
    artifacts: list[Any] = []
    if effects is not None:
        from effects import compute_default_artifacts

        artifacts = compute_default_artifacts(decoded.samples, sr=decoded.sample_rate, settings=effects)
    return RecordingAnalysis(decoded.info, decoded.duration_s, report, artifacts)


def warm_up() -> None:
    """Run once per worker process: imports and JIT-compiles what analysis needs (a few seconds)."""
    from audio.checks import warm_up as checks_warm_up
    from effects.artifacts import warm_up as effects_warm_up

    checks_warm_up()
    effects_warm_up()
