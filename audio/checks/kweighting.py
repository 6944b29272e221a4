"""ITU-R BS.1770 K-weighting for any sample rate.

The standard tabulates the two biquads only at 48 kHz. Both stages are second-order analog
prototypes (a high shelf of +4 dB around 1.68 kHz modelling the head, and a 38 Hz high-pass, the
"RLB" curve); mapping them with the bilinear transform, pre-warped at each stage's centre
frequency, gives the coefficients at any rate. The prototype parameters below are the ones that
reproduce the 48 kHz table to ~1e-13 (Brecht De Man's derivation, also used by libebur128 and
FFmpeg's ebur128 filter). As in the standard, the high-pass numerator is left as [1, -2, 1]
rather than normalised to unity gain: pyloudnorm normalises it and so reads ~0.04 LU low.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# analog prototypes
SHELF_F0 = 1681.974450955533  # Hz
SHELF_GAIN_DB = 3.999843853973347
SHELF_Q = 0.7071752369554196
SHELF_VB_EXP = 0.4996667741545416  # band gain Vb = Vh ** this
HIGHPASS_F0 = 38.13547087613982  # Hz
HIGHPASS_Q = 0.5003270373238773


def k_weighting_sos(sr: int) -> np.ndarray:
    """K-weighting as second-order sections for ``sr`` Hz.

    Returns
    -------
    sos : np.ndarray [shape=(2, 6)], float64, rows ``b0 b1 b2 1 a1 a2`` (shelf, then high-pass);
        usable with ``scipy.signal.sosfilt``
    """
    return _sos(sr).copy()


@functools.lru_cache(maxsize=32)
def _sos(sr: int) -> np.ndarray:
    k = math.tan(math.pi * SHELF_F0 / sr)
    vh = 10.0 ** (SHELF_GAIN_DB / 20.0)
    vb = vh**SHELF_VB_EXP
    a0 = 1.0 + k / SHELF_Q + k * k
    shelf = [
        (vh + vb * k / SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * HIGHPASS_F0 / sr)
    a0 = 1.0 + k / HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)
