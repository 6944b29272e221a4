"""Silence (leading, trailing, overall share) and dropouts (digital-zero runs and sudden gaps).

Levels are RMS over 10 ms frames with all channels pooled, in dB relative to full scale
(a full-scale square wave reads 0 dB, a full-scale sine -3 dB). A frame is silent below
``silence_threshold_dbfs`` (-60 dB by default, FFmpeg silencedetect's default too).

A dropout is a hole inside the audio that a listener hears as a glitch:

- a run of digital zeros (every channel exactly 0) of at least ``dropout_min_zero_ms``, or
- a sudden gap: a run of silent frames,

in both cases no longer than ``dropout_gap_max_ms`` (longer is a pause), with loud audio (``dropout_context_dbfs``) in the 30 ms on either side and not
touching the start or end of the file (that is leading/trailing silence). Overlapping findings
count once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from audio.checks.config import CheckSettings
from audio.checks.scan import FrameStats

CONTEXT_FRAMES = 3  # 30 ms each side of a dropout


def frame_levels(stats: FrameStats) -> np.ndarray:
    """RMS level per 10 ms frame, dB re full scale, float64 [shape=(F,)]; -inf for digital zero."""
    return levels_of(stats.rpow, stats.frame_len)


def levels_of(rpow: np.ndarray, frame_len: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of frames with sums of squares ``rpow`` [C, F] and lengths [F]."""
    power = rpow.sum(axis=0) / (rpow.shape[0] * frame_len)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


@dataclasses.dataclass(frozen=True)
class SilenceStats:
    leading_s: float
    trailing_s: float
    share: float  # of the duration, in [0, 1]
    all_silent: bool


def silence_stats(stats: FrameStats, levels: np.ndarray, *, threshold_dbfs: float) -> SilenceStats:
    """Leading and trailing silence in seconds and the silent share of the whole duration."""
    silent = levels < threshold_dbfs
    lengths = stats.frame_len
    share = float(lengths[silent].sum() / stats.n)
    loud = np.flatnonzero(~silent)
    if loud.size == 0:
        dur = stats.n / stats.sr
        return SilenceStats(dur, dur, 1.0, True)
    leading = stats.bounds[loud[0]] / stats.sr
    trailing = (stats.n - stats.bounds[loud[-1] + 1]) / stats.sr
    return SilenceStats(float(leading), float(trailing), share, False)


@dataclasses.dataclass(frozen=True)
class Dropout:
    start_s: float
    duration_s: float
    kind: str  # "zeros" | "gap"


def find_dropouts(stats: FrameStats, levels: np.ndarray, settings: CheckSettings) -> list[Dropout]:
    """Dropouts inside the signal (see the module docstring), sorted by start."""
    sr, n = stats.sr, stats.n
    bounds = stats.bounds
    nframes = len(levels)
    ctx = settings.dropout_context_dbfs

    def context_ok(first: int, last: int) -> bool:
        """Loud audio right before frame ``first`` and right after frame ``last`` (inclusive)."""
        before = levels[max(first - CONTEXT_FRAMES, 0) : first]
        after = levels[last + 1 : last + 1 + CONTEXT_FRAMES]
        return before.size > 0 and after.size > 0 and before.max() >= ctx and after.max() >= ctx

    found: list[tuple[int, int, str]] = []  # sample start, end, kind
    max_samples = settings.dropout_gap_max_ms / 1000.0 * sr
    for start, length in stats.zero_runs.rows:
        start, end = int(start), int(start + length)
        if start == 0 or end >= n or length > max_samples:
            continue
        first = int(np.searchsorted(bounds, start, side="right")) - 1
        last = int(np.searchsorted(bounds, end - 1, side="right")) - 1
        # the frames holding the run are partly zero: judge the frames around them
        if context_ok(first, last):
            found.append((start, end, "zeros"))

    silent = levels < settings.silence_threshold_dbfs
    max_frames = max(1, int(round(settings.dropout_gap_max_ms / 10.0)))
    if silent.any():
        edges = np.diff(np.concatenate(([0], silent.view(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1) - 1  # inclusive
        for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
            if first == 0 or last == nframes - 1 or last - first + 1 > max_frames:
                continue
            # sudden: the frames adjacent to the gap are themselves loud
            if levels[first - 1] >= ctx and levels[last + 1] >= ctx:
                found.append((int(bounds[first]), int(bounds[last + 1]), "gap"))

    found.sort()
    merged: list[list] = []
    for start, end, kind in found:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, kind])
    return [Dropout(s / sr, (e - s) / sr, k) for s, e, k in merged]
