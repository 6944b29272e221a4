"""DC offset: the mean of each channel, as a fraction of full scale."""

from __future__ import annotations

import numpy as np

from audio.checks.scan import FrameStats


def dc_offsets(stats: FrameStats) -> np.ndarray:
    """Mean of each channel, float64 [shape=(C,)], full scale 1.0 (signed)."""
    return stats.channel_sums / stats.n
