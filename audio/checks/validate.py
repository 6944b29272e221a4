"""Input validation shared by every check: one place that turns bad arrays into typed errors."""

from __future__ import annotations

import numbers

import numpy as np

from audio.errors import EmptyAudio, InvalidSampleRate, InvalidSignal

#: Rates the checks accept. Below 8 kHz the K-weighting shelf (1.68 kHz) nears Nyquist.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 8


def check_rate(sr: object) -> int:
    """Return ``sr`` as an int, or raise :class:`InvalidSampleRate`."""
    if isinstance(sr, bool) or not isinstance(sr, numbers.Real):
        raise InvalidSampleRate(f"sample rate must be a number of Hz, got {type(sr).__name__}")
    if not float(sr).is_integer():
        raise InvalidSampleRate(f"sample rate must be a whole number of Hz, got {sr}")
    rate = int(float(sr))
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidSampleRate(
            f"{rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz", sample_rate=rate
        )
    return rate


def as_signal(y: object, *, sr: object) -> tuple[np.ndarray, int]:
    """Validate a signal and its rate (see :func:`as_signal_with_extremes`)."""
    y, rate, _, _ = as_signal_with_extremes(y, sr=sr)
    return y, rate


def as_signal_with_extremes(y: object, *, sr: object) -> tuple[np.ndarray, int, float, float]:
    """Validate a signal and its rate; also return its largest and smallest sample.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], floating point, finite
    sr : sample rate in Hz (integer, 8 kHz to 384 kHz)

    Returns
    -------
    y : np.ndarray [shape=(channels, n)], float32, C-contiguous (a view when ``y`` already is)
    sr : int
    hi, lo : largest and smallest sample (the finiteness check computes them anyway)

    Raises
    ------
    InvalidSignal
        not an array, not floating point, wrong shape, or NaN/inf samples
    EmptyAudio
        no samples
    InvalidSampleRate
        ``sr`` not a whole positive number of Hz in range
    """
    y, rate = as_array(y, sr=sr)
    # max/min propagate NaN and expose inf without allocating a mask over the whole signal.
    hi, lo = float(y.max()), float(y.min())
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise InvalidSignal("the signal contains NaN or infinite samples")
    return y, rate, hi, lo


def as_array(y: object, *, sr: object) -> tuple[np.ndarray, int]:
    """:func:`as_signal_with_extremes` without the pass over the samples for NaN / inf (for
    callers that find them on their own pass, like :class:`audio.checks.report.CheckStream`)."""
    rate = check_rate(sr)
    if not isinstance(y, np.ndarray):
        raise InvalidSignal(f"expected a numpy array, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.floating):
        raise InvalidSignal(f"expected floating-point samples, got {y.dtype}")
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InvalidSignal(f"expected shape (channels, n), got {y.shape}")
    if y.shape[0] == 0 or y.shape[0] > MAX_CHANNELS:
        raise InvalidSignal(
            f"expected shape (channels, n) with 1-{MAX_CHANNELS} channels, got {y.shape}"
            + (" (transposed?)" if y.shape[1] <= MAX_CHANNELS else "")
        )
    if y.shape[1] == 0:
        raise EmptyAudio("the signal has no samples")
    return np.ascontiguousarray(y, dtype=np.float32), rate
