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


class SpectrumSampler:
    """Analysis frames spread evenly over the non-silent part, collected block by block.

    A frame is ``nfft`` samples from the start of a non-silent 10 ms frame. Every ``stride``-th
    such start is kept; when more than ``2 x MAX_FRAMES`` are held the stride doubles and every
    other one is dropped, so the kept frames stay evenly spread without knowing the length in
    advance, and at most ``2 x MAX_FRAMES`` frames (~6 MB for stereo 44.1 kHz) are ever held.
    """

    def __init__(self, *, sr: int, channels: int, silence_dbfs: float) -> None:
        self.sr, self.nfft, self.silence_dbfs = sr, fft_size(sr), silence_dbfs
        self._stride = 1
        self._seen = 0  # non-silent starts so far
        self._kept: list[tuple[int, np.ndarray]] = []  # (index among non-silent starts, frame)
        self._pending: list[tuple[int, int]] = []  # (index, absolute start) awaiting samples
        self._tail = np.zeros((channels, 0), np.float32)  # last nfft - 1 samples fed

    def feed(self, x: np.ndarray, offset: int, frame_starts: np.ndarray, levels: np.ndarray) -> None:
        """x: float32 [shape=(C, m)] at absolute ``offset``; its 10 ms frames' starts (relative)
        and RMS levels in dBFS."""
        starts = frame_starts[levels >= self.silence_dbfs] + offset
        index = np.arange(self._seen, self._seen + starts.size)
        self._seen += starts.size
        take = index % self._stride == 0
        self._pending += list(zip(index[take].tolist(), starts[take].tolist(), strict=True))
        while len(self._kept) + len(self._pending) > 2 * MAX_FRAMES:
            self._stride *= 2
            self._kept = [kf for kf in self._kept if kf[0] % self._stride == 0]
            self._pending = [ks for ks in self._pending if ks[0] % self._stride == 0]
        end = offset + x.shape[1]
        tail_start = offset - self._tail.shape[1]
        waiting = []
        for k, a in self._pending:
            if a + self.nfft > end:
                waiting.append((k, a))
            elif a >= offset:
                self._kept.append((k, x[:, a - offset : a - offset + self.nfft].copy()))
            else:
                head = self._tail[:, a - tail_start :]
                self._kept.append((k, np.concatenate([head, x[:, : self.nfft - head.shape[1]]], axis=1)))
        self._pending = waiting
        keep = self.nfft - 1
        if x.shape[1] >= keep:
            self._tail = x[:, x.shape[1] - keep :].copy()
        else:
            self._tail = np.concatenate([self._tail, x], axis=1)[:, -keep:]

    def frames(self) -> np.ndarray | None:
        """Up to MAX_FRAMES kept frames, float32 [shape=(k, C, nfft)]; None when fewer than
        MIN_FRAMES complete ones exist (frames running past the end are dropped)."""
        if len(self._kept) < MIN_FRAMES:
            return None
        pick = np.unique(
            np.linspace(0, len(self._kept) - 1, min(MAX_FRAMES, len(self._kept))).round().astype(int)
        )
        return np.stack([self._kept[i][1] for i in pick])


def long_term_spectrum(frames: np.ndarray | None, *, sr: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean power spectrum of analysis frames (:meth:`SpectrumSampler.frames`).

    Returns
    -------
    freqs : float64 [shape=(nfft // 2 + 1,)] Hz
    power_db : float64, same shape, dB (arbitrary reference)
    or None when there are no frames or they are all digital silence.
    """
    if frames is None:
        return None
    nfft = frames.shape[2]
    window = np.hanning(nfft).astype(np.float32)
    power = np.zeros(nfft // 2 + 1)
    for ch in range(frames.shape[1]):
        spec = scipy.fft.rfft(frames[:, ch] * window, axis=1)
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
    frames: np.ndarray | None,
    levels: np.ndarray,
    *,
    sr: int,
    silence_dbfs: float,
    width_hz: float,
    min_drop_db: float,
) -> BandwidthStats:
    """Find the cliff in the long-term spectrum of ``frames`` (:meth:`SpectrumSampler.frames`);
    ``levels`` are every 10 ms frame's RMS level (to tell "silent" from "too short")."""
    nyq = sr / 2.0
    spec = long_term_spectrum(frames, sr=sr)
    if spec is None:
        silent = bool((levels < silence_dbfs).all())
        return BandwidthStats(None, None, nyq, "silent" if silent else "too_short")
    found = find_cliff(spec[0], spec[1], sr=sr, width_hz=width_hz, min_drop_db=min_drop_db)
    if found is None:
        return BandwidthStats(None, None, nyq, None)
    return BandwidthStats(found[0], found[1], nyq, None)
