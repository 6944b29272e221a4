"""Stereo checks: false stereo (L and R practically identical) and channel imbalance.

- side/mid ratio = sum (L-R)^2 / sum (L+R)^2 in dB. Identical channels give -inf (reported as the
  -120 dB floor), a real stereo mix -25 to -5 dB, channels in opposite polarity +inf (+120).
  At or below ``false_stereo_side_db`` (-40 dB) the file is mono content stored as stereo.
- imbalance = |10 log10(sum L^2 / sum R^2)|, 120 dB when one channel is silent.
"""

from __future__ import annotations

import dataclasses

from audio.checks.model import db
from audio.checks.scan import FrameStats


@dataclasses.dataclass(frozen=True)
class StereoStats:
    side_mid_db: float | None  # None: silent
    imbalance_db: float | None


def stereo_stats(stats: FrameStats) -> StereoStats | None:
    """None for anything but two channels."""
    if stats.channels != 2:
        return None
    el, er = float(stats.rpow[0].sum()), float(stats.rpow[1].sum())
    side = stats.side_energy
    mid = max(2.0 * (el + er) - side, 0.0)
    if el == 0.0 and er == 0.0:
        return StereoStats(None, None)
    ratio = side / mid if mid > 0.0 else float("inf")
    balance = el / er if er > 0.0 else float("inf")
    return StereoStats(db(ratio), abs(db(balance)))
