"""Enrollment quality gate and voiceprint construction.

Each enrollment utterance is measured (speech duration, clipping, SNR) and refused when it is not
good enough to build a voiceprint from; accepted utterances of one version must also sound like each
other (consistency), and once ``min_enrollments`` are in, their embeddings are averaged into the
voiceprint (:func:`voiceprint.scoring.mean_voiceprint`) with statistics worth keeping.

Measurements come from the recording checks (``audio.checks.run_checks(y, sr=, kind="vocal")``)
where that module reports them; any measurement it does not provide is computed here by
:func:`own_measurements` (frame-energy based), so the gate works either way. The mapping of check
codes is :data:`CHECK_CODES` -- the one place to adjust when the checks' codes change.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from voiceprint.config import VoiceprintSettings

log = logging.getLogger("songgate.voiceprint.enrollment")

#: Our measurement name -> candidate check codes in the recording-checks report, in order.
CHECK_CODES: dict[str, tuple[str, ...]] = {
    "speech_s": ("vocal.active_duration",),
    "clipping_fraction": ("clipping.share",),
    "snr_db": ("noise.snr",),
}
FRAME_S = 0.02
#: A sample this close to full scale, in a run of at least CLIP_RUN samples, counts as clipped.
CLIP_LEVEL = 0.995
CLIP_RUN = 3
#: Frames this far above the noise floor (and above SILENCE_DBFS) count as speech.
SPEECH_OVER_FLOOR_DB = 12.0
SILENCE_DBFS = -55.0
MAX_SNR_DB = 100.0


@dataclasses.dataclass(frozen=True)
class Quality:
    """Measurements of one utterance.

    duration_s : decoded length, seconds; speech_s : speech in it, seconds;
    clipping_fraction : clipped samples / all samples; snr_db : speech-to-noise ratio, dB;
    sources : measurement name -> "checks" | "voiceprint" (who measured it)
    """

    duration_s: float
    speech_s: float
    clipping_fraction: float
    snr_db: float
    sources: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _frame_power(y: np.ndarray, *, sr: int) -> np.ndarray:
    n = max(int(sr * FRAME_S), 1)
    frames = y[: (y.size // n) * n].reshape(-1, n).astype(np.float64)
    if frames.size == 0:
        return np.zeros(0)
    return np.mean(frames * frames, axis=1)


def clipping_fraction(y: np.ndarray) -> float:
    """Fraction of samples in runs of >= CLIP_RUN consecutive samples at |y| >= CLIP_LEVEL."""
    hot = np.abs(y) >= CLIP_LEVEL
    if not hot.any():
        return 0.0
    edges = np.diff(np.concatenate([[0], hot.view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs = ends - starts
    return float(runs[runs >= CLIP_RUN].sum() / y.size)


def energy_speech_mask(y: np.ndarray, *, sr: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Frame powers, a speech mask over 20 ms frames, and the noise floor power.

    The floor is the 10th percentile of frame power: utterances have pauses, so the quietest tenth
    is background. Speech frames are >= 12 dB above it and above -55 dBFS.
    """
    p = _frame_power(y, sr=sr)
    if p.size == 0:
        return p, np.zeros(0, dtype=bool), 0.0
    floor = float(np.percentile(p, 10))
    gate = max(floor * 10 ** (SPEECH_OVER_FLOOR_DB / 10), 10 ** (SILENCE_DBFS / 10))
    return p, p > gate, floor


def energy_speech_only(y: np.ndarray, *, sr: int) -> np.ndarray:
    """The 20 ms frames of ``y`` that :func:`energy_speech_mask` calls speech, concatenated
    [shape=(m,)], float32 (a torch-free stand-in for ``voiceprint.speech.speech_only``)."""
    n = max(int(sr * FRAME_S), 1)
    _, mask, _ = energy_speech_mask(y, sr=sr)
    frames = y[: mask.size * n].reshape(-1, n)
    return np.ascontiguousarray(frames[mask].ravel(), dtype=np.float32)


def own_measurements(y: np.ndarray, *, sr: int, speech_s: float | None = None) -> dict[str, float]:
    """Speech duration, clipping and SNR from frame energies (fallback for the recording checks).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32 mono
    sr : int, Hz
    speech_s : float, optional; speech duration already measured by the service's VAD
    """
    p, mask, floor = energy_speech_mask(y, sr=sr)
    if mask.any():
        snr = 10 * np.log10(float(p[mask].mean()) / max(floor, 1e-12))
    else:
        snr = 0.0
    return {
        "speech_s": float(mask.sum() * FRAME_S) if speech_s is None else float(speech_s),
        "clipping_fraction": clipping_fraction(y),
        "snr_db": float(min(snr, MAX_SNR_DB)),
    }


def _from_checks(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """The measurements the recording checks provide (hook; empty when the module is absent)."""
    try:
        from audio.checks import report_value, run_checks
    except ImportError:
        return {}
    try:
        report = run_checks(y, sr=sr, kind="vocal")
    except Exception as exc:  # the gate must not depend on another module's edge cases
        log.warning("recording checks failed on an enrollment utterance: %s", exc)
        return {}
    out: dict[str, float] = {}
    for name, codes in CHECK_CODES.items():
        for code in codes:
            try:
                value = report_value(report, code)
            except Exception:
                value = None
            if isinstance(value, (int, float)) and np.isfinite(value):
                out[name] = float(value)
                break
    return out


def measure(y: np.ndarray, *, sr: int, speech_s: float | None = None) -> Quality:
    """Measure an utterance: recording checks where available, own measurements for the rest.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32 mono, finite
    sr : int, Hz
    speech_s : float, optional; the speech the service's VAD found (wins over other estimates,
        since it is exactly what the embedder will get)
    """
    checks = _from_checks(y, sr=sr)
    if speech_s is not None:
        checks.pop("speech_s", None)
    own = own_measurements(y, sr=sr, speech_s=speech_s) if len(checks) < len(CHECK_CODES) else {}
    values = {**own, **checks}
    sources = {k: ("checks" if k in checks else "voiceprint") for k in CHECK_CODES}
    return Quality(
        duration_s=float(y.size / sr),
        speech_s=values["speech_s"],
        clipping_fraction=values["clipping_fraction"],
        snr_db=values["snr_db"],
        sources=sources,
    )


def gate_failures(q: Quality, settings: VoiceprintSettings) -> list[dict[str, Any]]:
    """The quality checks ``q`` fails, each as {"check", "value", "limit"}; empty when it passes."""
    failures = []
    if q.speech_s < settings.enroll_min_speech_s:
        failures.append(
            {
                "check": "speech_s",
                "value": round(q.speech_s, 3),
                "limit": settings.enroll_min_speech_s,
                "message": "not enough speech",
            }
        )
    if q.clipping_fraction > settings.enroll_max_clipping:
        failures.append(
            {
                "check": "clipping_fraction",
                "value": round(q.clipping_fraction, 5),
                "limit": settings.enroll_max_clipping,
                "message": "too much clipping",
            }
        )
    if q.snr_db < settings.enroll_min_snr_db:
        failures.append(
            {
                "check": "snr_db",
                "value": round(q.snr_db, 2),
                "limit": settings.enroll_min_snr_db,
                "message": "too noisy",
            }
        )
    return failures


def consistency(new: np.ndarray, others: np.ndarray) -> float | None:
    """Lowest cosine of ``new`` [shape=(d,)] against the other utterances [shape=(m, d)] (None if m=0)."""
    if others.size == 0:
        return None
    return float(np.min(others.astype(np.float64) @ new.astype(np.float64)))


def voiceprint_stats(
    vectors: np.ndarray, voiceprint: np.ndarray, qualities: list[dict[str, Any]]
) -> dict[str, Any]:
    """Statistics stored with a voiceprint: spread of its utterances and their quality.

    vectors : [shape=(n, d)] unit utterance embeddings; voiceprint : [shape=(d,)] their normalized mean
    """
    to_center = vectors.astype(np.float64) @ voiceprint.astype(np.float64)
    pair = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    iu = np.triu_indices(len(vectors), k=1)
    return {
        "n_utterances": int(len(vectors)),
        "cosine_to_centroid_min": round(float(to_center.min()), 4),
        "cosine_to_centroid_mean": round(float(to_center.mean()), 4),
        "pairwise_cosine_min": round(float(pair[iu].min()), 4) if iu[0].size else None,
        "pairwise_cosine_mean": round(float(pair[iu].mean()), 4) if iu[0].size else None,
        "speech_s_total": round(float(sum(q.get("speech_s", 0.0) for q in qualities)), 2),
        "snr_db_min": round(float(min(q.get("snr_db", 0.0) for q in qualities)), 2) if qualities else None,
    }
