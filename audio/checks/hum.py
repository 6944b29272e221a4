"""Mains hum: narrow, steady peaks at 50 or 60 Hz and their harmonics.

Input is the boxcar-decimated mono from the scan (~8-11 kHz). Up to 16 segments of 4 s spread
over the file are low-passed and decimated to ~1 kHz (the ``scipy.signal.resample_poly`` filter), Hann
windowed (0.25 Hz bins), and the power spectra combined with a per-bin **median** across segments:
a steady hum is in every segment and survives the median, music and speech move and do not.

For each mains base (50, 60 Hz) and harmonic h (up to ``hum_max_harmonic``, below 0.45 x the
analysis rate), the highest bin within h x base +/- (0.3 + 0.2 h) Hz is a component when it stands
``hum_min_prominence_db`` over the median of the bins 2-10 Hz around it, its level is above
``hum_detect_dbfs``, and it is a lone line. The last test matters: a drum loop that repeats
sample-exactly (a drum machine at 120 BPM with a 50 Hz kick) makes a comb of lines every 2 Hz, one
of them on 50 Hz, towering over the median; a peak with two or more lines within ``COMB_MARGIN_DB``
at f +/- d or f +/- 2d (d = 0.75-4 Hz, tempos of 45-240 BPM) is a comb line, not hum. A hum buried
under such a line is not separable from it and is not reported. Levels are sine peak amplitudes in dBFS (a hum of amplitude 0.01 reads
-40 dBFS), estimated from the power in the peak's main lobe. The base with more hum power wins;
the reported level is the power sum of its components.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SEGMENT_S = 4.0
MAX_SEGMENTS = 16
MIN_SEGMENT_S = 1.0
TARGET_RATE = 1000.0
BASES = (50.0, 60.0)
NEIGHBOURHOOD_HZ = (2.0, 10.0)
COMB_SPACING_HZ = (0.75, 4.0)  # beat rates of 45-240 BPM
COMB_MARGIN_DB = 6.0


@dataclasses.dataclass(frozen=True)
class HumComponent:
    freq_hz: float
    level_dbfs: float
    prominence_db: float


@dataclasses.dataclass(frozen=True)
class HumStats:
    base_hz: float | None  # 50, 60, or None when no hum
    level_dbfs: float | None  # power sum of the components, sine-peak dBFS
    components: tuple[HumComponent, ...]
    reason: str | None  # "too_short" when not measurable


def _spectra(dec: np.ndarray, rate: float) -> tuple[np.ndarray, float, int, float] | None:
    """Median power spectrum of decimated segments: (power [bins], df, nfft, window power sum)."""
    factor = max(1, int(round(rate / TARGET_RATE)))
    rate2 = rate / factor
    dur = len(dec) / rate
    seg_s = min(SEGMENT_S, dur / 2.0) if dur < 2 * SEGMENT_S else SEGMENT_S
    if seg_s < MIN_SEGMENT_S:
        return None
    nseg2 = int(seg_s * rate2)
    seg1 = nseg2 * factor
    margin = 32 * factor  # filter settling at both ends, discarded
    usable = len(dec) - seg1 - 2 * margin
    if usable < 0:
        margin = 0
        usable = len(dec) - seg1
        if usable < 0:
            return None
    count = min(MAX_SEGMENTS, max(1, int(len(dec) // seg1)))
    starts = np.linspace(margin, margin + usable, count).astype(int)
    window = np.hanning(nseg2)
    spectra = []
    for s in starts:
        part = dec[s - margin : s + seg1 + margin].astype(np.float64)
        low = decimate(part, factor) if factor > 1 else part
        low = low[margin // factor : margin // factor + nseg2]
        if len(low) < nseg2:
            continue
        low = low - low.mean()
        spec = np.fft.rfft(low * window)
        spectra.append(spec.real**2 + spec.imag**2)
    if not spectra:
        return None
    power = np.median(np.stack(spectra), axis=0)
    return power, rate2 / nseg2, nseg2, float((window**2).sum())


def decimate(x: np.ndarray, factor: int) -> np.ndarray:
    """``scipy.signal.resample_poly(x, 1, factor)`` (same Kaiser-windowed FIR, same output)
    without importing scipy.signal (~75 MB of RSS): only the kept outputs are computed."""
    half = 10 * factor
    t = np.arange(-half, half + 1)
    h = np.sinc(t / factor) * np.kaiser(2 * half + 1, 5.0)
    h /= h.sum()
    out_len = -(-len(x) // factor)
    padded = np.concatenate([np.zeros(half), x, np.zeros(half + factor)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)[::factor][:out_len]
    return windows @ h[::-1]


def hum_stats(
    dec: np.ndarray | None,
    rate: float,
    *,
    min_prominence_db: float,
    max_harmonic: int,
    detect_dbfs: float,
) -> HumStats:
    """Detect hum in the decimated mono ``dec`` (float32, ``rate`` Hz); see the module docstring."""
    if dec is None or len(dec) == 0:
        return HumStats(None, None, (), "too_short")
    got = _spectra(dec, rate)
    if got is None:
        return HumStats(None, None, (), "too_short")
    power, df, nfft, wsum = got
    nyq_use = 0.45 * df * nfft
    best: tuple[float, list[HumComponent], float] | None = None
    for base in BASES:
        comps: list[HumComponent] = []
        total = 0.0
        for h in range(1, max_harmonic + 1):
            f = h * base
            if f + NEIGHBOURHOOD_HZ[1] >= nyq_use:
                break
            tol = 0.3 + 0.2 * h
            lo, hi = int(np.floor((f - tol) / df)), int(np.ceil((f + tol) / df))
            k = lo + int(np.argmax(power[lo : hi + 1]))
            near = np.arange(int((f - NEIGHBOURHOOD_HZ[1]) / df), int((f + NEIGHBOURHOOD_HZ[1]) / df) + 1)
            near = near[np.abs(near - k) * df >= NEIGHBOURHOOD_HZ[0]]
            ref = float(np.median(power[near]))
            if ref <= 0.0 or power[k] <= 0.0:
                continue
            prominence = 10.0 * np.log10(power[k] / ref)
            if _in_comb(power, k, df):
                continue  # one line of a comb (a sample-exact loop), not a lone mains line
            lobe = power[max(k - 2, 0) : k + 3].sum()
            amp2 = 4.0 * lobe / (nfft * wsum)  # Parseval: one-sided lobe of A cos holds N A^2 sum(w^2) / 4
            level = 10.0 * np.log10(amp2) if amp2 > 0 else -np.inf
            if prominence >= min_prominence_db and level >= detect_dbfs:
                comps.append(HumComponent(round(k * df, 2), float(level), float(prominence)))
                total += amp2
        if comps and (best is None or total > best[2]):
            best = (base, comps, total)
    if best is None:
        return HumStats(None, None, (), None)
    return HumStats(best[0], float(10.0 * np.log10(best[2])), tuple(best[1]), None)


def _in_comb(power: np.ndarray, k: int, df: float) -> bool:
    """Whether bin k is one line of a comb: two or more of the bins at k +/- m, k +/- 2m (+/- 1 bin)
    within COMB_MARGIN_DB of it, for some spacing m in COMB_SPACING_HZ."""
    floor = power[k] * 10.0 ** (-COMB_MARGIN_DB / 10.0)
    lo, hi = (int(round(h / df)) for h in COMB_SPACING_HZ)
    for m in range(max(lo, 3), hi + 1):  # >= 3 bins: k +/- (m - 1) must clear the Hann main lobe
        hits = 0
        for j in (k - 2 * m, k - m, k + m, k + 2 * m):
            if 1 <= j < len(power) - 1 and power[j - 1 : j + 2].max() >= floor:
                hits += 1
        if hits >= 2:
            return True
    return False
