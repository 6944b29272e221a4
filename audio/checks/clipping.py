"""Clipping: runs of consecutive samples flat at full scale.

A sample is "at full scale" when it lies within ``clip_tolerance_db`` (0.0001 dB) of the file's
own positive peak, or of its negative peak, taken separately (16-bit PCM clips at +32767 and
-32768). A clip is a run of at least ``clip_min_run`` (3) such samples in any channel. Peaks below
``clip_min_level_dbfs`` (-20 dBFS) are not considered clipped.

Why the file's own peak and not a fixed -0.01 dBFS: three samples within 0.0001 dB of the peak do
not happen in unclipped band-limited audio above ~20 Hz, so a clean sine normalised to 0 dBFS
passes, while audio clipped and then attenuated (flat tops at -3 dBFS) is still caught. Lossy
decoding ripples flat tops by a percent or so, so clipping under MP3/AAC is undercounted.

Reported: number of clips, the longest in samples, and the share of the duration inside clips.
"""

from __future__ import annotations

import dataclasses
import math

from audio.checks.config import CheckSettings
from audio.checks.scan import Runs


def clip_levels(hi: float, lo: float, settings: CheckSettings) -> tuple[float, float]:
    """(positive, negative) levels at or beyond which a sample is at full scale.

    Parameters
    ----------
    hi, lo : the signal's largest and smallest sample
    """
    floor = 10.0 ** (settings.clip_min_level_dbfs / 20.0)
    keep = 10.0 ** (-settings.clip_tolerance_db / 20.0)
    pos = hi * keep if hi > floor else math.inf
    neg = lo * keep if -lo > floor else -math.inf
    return pos, neg


@dataclasses.dataclass(frozen=True)
class ClipStats:
    count: int
    longest: int  # samples
    share: float  # of the duration, [0, 1]


def clip_stats(runs: Runs, *, n: int) -> ClipStats:
    """Summarise full-scale runs (the scan records only runs of at least ``clip_min_run``)."""
    if runs.count == 0:
        return ClipStats(0, 0, 0.0)
    lengths = runs.rows[:, 1]
    # beyond the recorded capacity runs are counted but not measured: share is then a lower bound
    return ClipStats(int(runs.count), int(lengths.max(initial=0)), float(lengths.sum() / n))
