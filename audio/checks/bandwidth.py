"""Effective bandwidth: the cutoff of a spectral cliff (lossy-codec low-pass or upsampling).

Lossy encoders low-pass before coding (LAME: ~11 kHz at 64 kbps, ~17 kHz at 128 kbps, ~20.5 kHz
at 320 kbps) and an upsampled file has nothing above the old Nyquist. Both leave a *cliff*: the
long-term spectrum falls by tens of dB within a few hundred Hz and stays down up to Nyquist.
Natural roll-off is gradual, so the test is the steepness, not a fixed level:

1. Long-term power spectrum: the mean of Hann-windowed frames of ~93 ms (4096 points at 44.1 kHz),
   up to 96 frames spread evenly over the non-silent part, channels summed.
2. At each candidate frequency f (2.5 kHz ... 0.98 Nyquist): ``below`` = median level over
   [f - 2 w, f - w / 10], ``above`` = median over [f, f + w / 2], ``tail`` = highest (5-bin median
   smoothed) level above f + w / 2, with ``w = cliff_width_hz``.
   drop(f) = below - max(above, tail).
3. The best f is a cliff when drop >= ``cliff_min_drop_db`` and the band below is flatter than the
   drop (p90 - p10 of its levels < drop: a lone tone's window leakage is not a passband).
   The cutoff is where the level crosses halfway (in dB) between ``below`` and ``above``.

A cliff above ``cliff_max_ratio`` x Nyquist is the file's own anti-alias filter and passes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.fft
import scipy.ndimage

from audio.checks.scan import FrameStats

MAX_FRAMES = 96
MIN_FRAMES = 4
SEARCH_FROM_HZ = 2500.0
FLOOR_DB = -150.0  # relative to the spectrum maximum: numerical floor


@dataclasses.dataclass(frozen=True)
class BandwidthStats:
    cutoff_hz: float | None  # None: no cliff found (full band) or not measurable
    drop_db: float | None  # level drop across the cliff
    nyquist_hz: float
    reason: str | None  # "too_short" | "silent" when nothing could be measured


def fft_size(sr: int) -> int:
    """Power of two nearest to ~93 ms (4096 at 44.1/48 kHz)."""
    return 2 ** int(round(math.log2(sr * 0.0929)))


def long_term_spectrum(
    y: np.ndarray, stats: FrameStats, levels: np.ndarray, *, silence_dbfs: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean power spectrum over up to MAX_FRAMES non-silent frames.

    Returns
    -------
    freqs : float64 [shape=(nfft // 2 + 1,)] Hz
    power_db : float64, same shape, dB (arbitrary reference)
    or None when fewer than MIN_FRAMES frames fit.
    """
    sr, n = stats.sr, stats.n
    nfft = fft_size(sr)
    if n < nfft:
        return None
    starts = stats.bounds[:-1][levels >= silence_dbfs]
    starts = starts[starts + nfft <= n]
    if starts.size < MIN_FRAMES:
        return None
    pick = np.unique(np.linspace(0, starts.size - 1, min(MAX_FRAMES, starts.size)).round().astype(int))
    starts = starts[pick]
    window = np.hanning(nfft).astype(np.float32)
    power = np.zeros(nfft // 2 + 1)
    for ch in range(y.shape[0]):
        frames = y[ch][starts[:, None] + np.arange(nfft)] * window
        spec = scipy.fft.rfft(frames, axis=1)
        power += (spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2).mean(axis=0)
    top = power.max()
    if top <= 0.0:
        return None
    power_db = 10.0 * np.log10(np.maximum(power, top * 10.0 ** (FLOOR_DB / 10.0)))
    return np.fft.rfftfreq(nfft, 1.0 / sr), power_db


def find_cliff(
    freqs: np.ndarray, power_db: np.ndarray, *, sr: int, width_hz: float, min_drop_db: float
) -> tuple[float, float] | None:
    """(cutoff Hz, drop dB) of the steepest cliff, or None (see the module docstring)."""
    df = freqs[1]
    nyq_bin = len(freqs) - 1
    w = max(2, int(round(width_hz / df)))
    below_lo, below_hi = 2 * w, max(1, w // 10)
    above_n = max(2, w // 2)
    smooth = scipy.ndimage.median_filter(power_db, size=5, mode="nearest")
    top = int(0.98 * nyq_bin)
    first = max(int(math.ceil(SEARCH_FROM_HZ / df)), below_lo)
    if first >= top - above_n:
        return None
    ks = np.arange(first, top - above_n)
    from numpy.lib.stride_tricks import sliding_window_view

    below_win = sliding_window_view(power_db, below_lo - below_hi)  # row i: bins [i, i + len)
    below_rows = below_win[ks - below_lo]
    below = np.median(below_rows, axis=1)
    spread = np.percentile(below_rows, 90, axis=1) - np.percentile(below_rows, 10, axis=1)
    above = np.median(sliding_window_view(power_db, above_n)[ks], axis=1)
    # highest smoothed level from k + above_n up to 0.98 Nyquist (suffix maximum)
    suffix = np.maximum.accumulate(smooth[: top + 1][::-1])[::-1]
    tail_idx = np.minimum(ks + above_n, top)
    tail = suffix[tail_idx]
    drop = below - np.maximum(above, tail)
    ok = (drop >= min_drop_db) & (spread < drop)
    if not ok.any():
        return None
    i = int(np.argmax(np.where(ok, drop, -np.inf)))
    k = int(ks[i])
    mid = (below[i] + above[i]) / 2.0
    # first bin from the start of the transition where the level is below halfway
    lo = max(k - w, 1)
    seg = smooth[lo : k + above_n + 1]
    cross = np.flatnonzero(seg < mid)
    if cross.size == 0:
        return float(freqs[k]), float(drop[i])
    j = lo + int(cross[0])
    # linear interpolation between bins j-1 (above mid) and j (below mid)
    a, b = smooth[j - 1], smooth[j]
    frac = (a - mid) / (a - b) if a != b else 0.0
    return float(freqs[j - 1] + frac * df), float(drop[i])


def bandwidth_stats(
    y: np.ndarray,
    stats: FrameStats,
    levels: np.ndarray,
    *,
    silence_dbfs: float,
    width_hz: float,
    min_drop_db: float,
) -> BandwidthStats:
    """Find the cliff of ``y`` (validated, (C, n) float32)."""
    nyq = stats.sr / 2.0
    spec = long_term_spectrum(y, stats, levels, silence_dbfs=silence_dbfs)
    if spec is None:
        silent = bool((levels < silence_dbfs).all())
        return BandwidthStats(None, None, nyq, "silent" if silent else "too_short")
    found = find_cliff(spec[0], spec[1], sr=stats.sr, width_hz=width_hz, min_drop_db=min_drop_db)
    if found is None:
        return BandwidthStats(None, None, nyq, None)
    return BandwidthStats(found[0], found[1], nyq, None)
