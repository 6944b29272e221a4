"""Noise floor and a signal-to-noise estimate from the level distribution (NIST STNR style).

Definition (documented in docs/checks.md): the signal is cut into ``noise_frame_ms`` frames
(50 ms), each frame's RMS level in dB re full scale is taken over all channels, frames that are
digital zero are dropped (they carry no noise, only an absent signal), and

- noise floor = the ``noise_percentile`` (10th) percentile of the frame levels,
- signal level = the ``signal_percentile`` (95th) percentile,
- SNR = signal level - noise floor, in dB.

For speech or solo singing the quiet frames are the pauses, so this is the classic "speech peaks
over background" SNR; for a dense mix it measures dynamics more than noise, which is why the mix
thresholds are off by default.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from audio.checks.scan import FrameStats

MIN_FRAMES = 10  # fewer usable frames than this: no estimate


@dataclasses.dataclass(frozen=True)
class NoiseStats:
    floor_dbfs: float | None
    signal_dbfs: float | None
    snr_db: float | None
    reason: str | None  # why None: "silent" | "too_short"


def noise_stats(
    stats: FrameStats, *, frame_ms: float, noise_percentile: float, signal_percentile: float
) -> NoiseStats:
    """Noise floor, signal level and SNR (see the module docstring)."""
    group = max(1, int(round(frame_ms / 10.0)))  # 10 ms frames per noise frame
    complete = stats.complete
    usable = (complete // group) * group
    if usable == 0:
        return NoiseStats(None, None, None, "too_short")
    power = stats.rpow[:, :usable].sum(axis=0).reshape(-1, group).sum(axis=1)
    samples = stats.frame_len[:usable].reshape(-1, group).sum(axis=1) * stats.channels
    power = power / samples
    power = power[power > 0.0]
    if power.size < MIN_FRAMES:
        reason = "silent" if stats.rpow.sum() == 0.0 else "too_short"
        return NoiseStats(None, None, None, reason)
    levels = 10.0 * np.log10(power)
    floor, signal = np.percentile(levels, [noise_percentile, signal_percentile])
    return NoiseStats(float(floor), float(signal), float(signal - floor), None)
