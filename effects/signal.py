"""Input validation and the Web Audio down-mix shared by the effects computations."""

from __future__ import annotations

import numpy as np

from effects.errors import InvalidSignal

#: Sample rates effects/ accepts (the Web Audio range is 3 kHz..768 kHz; decoding allows 8 kHz+).
MIN_SAMPLE_RATE = 3000
MAX_SAMPLE_RATE = 768000


def as_channels(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Validate ``y`` and return it as float32 ``(channels, n)``.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], floating point, finite, n >= 1
    sr : int, sample rate in Hz

    Raises
    ------
    InvalidSignal : non-float dtype, wrong rank, no samples, non-finite values or a bad rate
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise InvalidSignal(f"sample rate must be an integer number of Hz, got {sr!r}")
    if not MIN_SAMPLE_RATE <= int(sr) <= MAX_SAMPLE_RATE:
        raise InvalidSignal(f"sample rate {sr} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.floating):
        raise InvalidSignal("audio must be a floating-point numpy array")
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InvalidSignal(f"audio must have shape (channels, n) or (n,), got {y.shape}")
    if y.shape[0] < 1 or y.shape[0] > 32:
        raise InvalidSignal(f"{y.shape[0]} channels; 1..32 are accepted")
    if y.shape[1] == 0:
        raise InvalidSignal("audio has no samples")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise InvalidSignal("audio contains NaN or infinite samples")
    return y


def webaudio_mono(y: np.ndarray) -> np.ndarray:
    """Down-mix like an AnalyserNode input (channelCount 1, interpretation "speakers").

    Mono is kept, stereo is ``0.5 * (L + R)``, quad ``0.25 * (L + R + SL + SR)``, 5.1 is
    ``sqrt(0.5) * (L + R) + C + 0.5 * (SL + SR)`` (LFE dropped); other channel counts fall back to
    "discrete" mixing, which keeps channel 0 (Web Audio spec, "Channel Up-Mixing and Down-Mixing").

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32

    Returns
    -------
    np.ndarray [shape=(n,)], float32
    """
    c = y.shape[0]
    if c == 1:
        return y[0]
    if c == 2:
        out = y[0] + y[1]
        out *= np.float32(0.5)
        return out
    if c == 4:
        return (y.sum(axis=0, dtype=np.float32) * np.float32(0.25)).astype(np.float32, copy=False)
    if c == 6:
        out = (y[0] + y[1]) * np.float32(np.sqrt(0.5)) + y[2] + (y[4] + y[5]) * np.float32(0.5)
        return out.astype(np.float32, copy=False)
    return y[0].copy()
