"""Resampling (soxr, high quality) and channel mixing."""

from __future__ import annotations

import numpy as np
import soxr


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` [shape=(channels, n) or (n,)], float32, from ``orig_sr`` to ``target_sr`` Hz."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError("sample rates must be positive")
    if orig_sr == target_sr:
        return y
    if y.ndim == 1:
        return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    out = soxr.resample(np.ascontiguousarray(y.T), orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, n)`` -> ``(1, n)``."""
    if y.ndim != 2:
        raise ValueError("expected (channels, n)")
    if y.shape[0] == 1:
        return y
    return y.mean(axis=0, keepdims=True, dtype=np.float32)
