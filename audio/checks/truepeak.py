"""True peak (ITU-R BS.1770-4 Annex 2): the peak of the signal oversampled 4x.

The interpolator is a 65-tap Kaiser-windowed sinc (beta 5, 16 taps per phase; the standard's
example has 12): flat within 0.04 dB up to 0.4 fs, -2.6 dB at 0.45 fs, images rejected by 53 dB.
With 12 taps a saturated master (energy up to Nyquist) read 0.3 dB below FFmpeg's 192 kHz swr
path; with 16 it reads 0.17 dB below. Phase 0 reproduces the samples,
so the result is never below the sample peak. Only positions whose 16 neighbours all lie inside
the signal are interpolated: padding with zeros would invent a step at each end and the ringing
of that step (up to +0.7 dB on the EBU Tech 3341 true-peak sines) is not in the audio. FFmpeg's
ebur128 reads those signals without the edge overshoot too.

Branch and bound keeps it cheap: an interpolated value is at most ``G = max_p sum |h_p|`` times the
largest |sample| under the filter, so blocks are evaluated in order of their sample peak and the
search stops once ``G x (block peak)`` cannot beat the best value found. The answer is the same as
interpolating everything; dynamic material skips most blocks, brick-wall masters skip few.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal

from audio.checks import _kernels
from audio.checks.validate import as_signal

TAPS_PER_PHASE = 16
KAISER_BETA = 5.0
HISTORY = TAPS_PER_PHASE - 1  # samples before output n that it needs
BLOCK_FRAMES = 32  # 320 ms blocks for the search


@functools.lru_cache(maxsize=1)
def interpolator() -> tuple[np.ndarray, np.ndarray, float]:
    """The 4x prototype and its folded coefficients.

    Returns
    -------
    h : float64 [shape=(65,)] prototype, gain 4 (phase 0 is a unit impulse)
    coef : float32 [shape=(24,)] folded coefficients for :func:`audio.checks._kernels.interp_peak`
    gain_bound : max over phases of sum |taps| (the G of the search bound)
    """
    h = scipy.signal.firwin(4 * TAPS_PER_PHASE + 1, 0.25, window=("kaiser", KAISER_BETA), scale=False) * 4
    a = h[1::4][:TAPS_PER_PHASE]
    e = h[2::4][:TAPS_PER_PHASE]
    half = TAPS_PER_PHASE // 2
    c = ((a + a[::-1]) / 2)[:half]
    d = ((a - a[::-1]) / 2)[:half]
    coef = np.concatenate([c, d, e[:half]]).astype(np.float32)
    bound = float(max(np.abs(h[p::4]).sum() for p in range(4)))
    return h, coef, bound


def true_peak_linear(y: np.ndarray, block_bounds: np.ndarray, block_peak: np.ndarray) -> float:
    """Largest |value| of ``y`` oversampled 4x (linear full scale).

    Parameters
    ----------
    y : float32 [shape=(C, n)], validated
    block_bounds : int64 [shape=(B+1,)] block boundaries in samples, 0 ... n
    block_peak : float32 [shape=(C, B)] max |sample| per channel and block
    """
    _, coef, gain = interpolator()
    c, n = y.shape
    sample_peak = float(block_peak.max()) if block_peak.size else 0.0
    best = sample_peak
    if best == 0.0:
        return 0.0
    # outputs in block j read samples from block j-1 too (HISTORY < block length)
    ext = block_peak.max(axis=0)
    ext = np.maximum(ext, np.concatenate(([0.0], ext[:-1])))
    order = np.argsort(-ext, kind="stable")
    for j in order:
        if gain * float(ext[j]) <= best:
            break
        s, e = max(int(block_bounds[j]), HISTORY), int(block_bounds[j + 1])
        if s >= e:
            continue
        for ch in range(c):
            best = max(best, float(_kernels.interp_peak(y[ch], coef, s, e)))
    return best


def block_peaks(frame_bounds: np.ndarray, frame_peak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group 10 ms frames into search blocks: (block bounds [B+1], block peaks [C, B])."""
    starts = np.arange(0, frame_peak.shape[1], BLOCK_FRAMES)
    peaks = np.maximum.reduceat(frame_peak, starts, axis=1)
    bounds = np.append(frame_bounds[starts], frame_bounds[-1])
    return bounds, peaks


def to_db(amplitude: float) -> float | None:
    """20 log10, or None for 0 (digital silence)."""
    return None if amplitude <= 0.0 else float(20.0 * np.log10(amplitude))


def true_peak(y: np.ndarray, *, sr: int) -> float | None:
    """True peak in dBTP (4x oversampling); None for digital silence.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float, full scale 1.0
    sr : sample rate, Hz (sets the search block length only; the value does not depend on it)

    Raises
    ------
    InvalidSignal, EmptyAudio, InvalidSampleRate
    """
    from audio.checks.scan import frame_bounds

    y, sr = as_signal(y, sr=sr)
    bounds, _ = frame_bounds(y.shape[1], sr)
    starts = bounds[:-1][::BLOCK_FRAMES]
    hi = np.maximum.reduceat(y, starts, axis=1)
    lo = np.minimum.reduceat(y, starts, axis=1)
    peaks = np.maximum(hi, -lo)
    return to_db(true_peak_linear(y, np.append(starts, y.shape[1]), peaks))
