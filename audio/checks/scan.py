"""The single pass over the samples: per-10 ms-frame statistics every check reads from.

Frames are 10 ms on a grid ``b_k = round(k * sr / 100)`` so that ten frames make one BS.1770
100 ms segment ``round(j * sr / 10)`` exactly at any rate (also 11.025 kHz, where 100 ms is not a
whole number of samples). A trailing partial frame is kept for the silence checks; loudness uses
complete 100 ms segments only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from audio.checks import _kernels
from audio.checks.kweighting import k_weighting_sos

FRAME_RATE = 100  # frames per second (10 ms)
RUN_CAPACITY = 65536  # runs recorded individually; more are only counted


@dataclasses.dataclass(frozen=True)
class Runs:
    """Runs of samples, as ``(start, length)`` rows in samples; ``count`` may exceed ``len(rows)``."""

    rows: np.ndarray  # int64 [shape=(k, 2)]
    count: int


@dataclasses.dataclass(frozen=True)
class FrameStats:
    """Per-frame statistics of a signal.

    Attributes
    ----------
    sr : sample rate, Hz
    n : samples per channel
    bounds : int64 [shape=(F+1,)] frame boundaries in samples (0 ... n)
    complete : number of complete 10 ms frames (the last frame may be partial)
    kpow : float64 [shape=(C, F)] sum of squared K-weighted samples per frame
    rpow : float64 [shape=(C, F)] sum of squared samples per frame
    fmax, fmin : float32 [shape=(C, F)] sample extrema per frame
    channel_sums : float64 [shape=(C,)] sum of samples per channel
    side_energy : float, sum of (L-R)^2 (stereo only, else 0)
    zero_runs : runs where every channel is exactly 0, at least ``min_zero`` samples
    clip_runs : runs where some channel is >= ``clip_hi`` or <= ``clip_lo``
    clip_hi, clip_lo : the levels used for ``clip_runs`` (+inf / -inf: not tracked)
    hum : float32 [shape=(m,)] boxcar-decimated mono at ``hum_sr`` Hz (None when not requested)
    hum_sr : float, Hz
    """

    sr: int
    n: int
    bounds: np.ndarray
    complete: int
    kpow: np.ndarray
    rpow: np.ndarray
    fmax: np.ndarray
    fmin: np.ndarray
    channel_sums: np.ndarray
    side_energy: float
    zero_runs: Runs
    clip_runs: Runs
    clip_hi: float
    clip_lo: float
    hum: np.ndarray | None
    hum_sr: float

    @property
    def channels(self) -> int:
        return int(self.kpow.shape[0])

    @property
    def frame_len(self) -> np.ndarray:
        """int64 [shape=(F,)] samples per frame."""
        return np.diff(self.bounds)

    @property
    def peak(self) -> np.ndarray:
        """float32 [shape=(C, F)] max |sample| per frame."""
        return np.maximum(self.fmax, -self.fmin)


def frame_bounds(n: int, sr: int) -> tuple[np.ndarray, int]:
    """10 ms frame boundaries ``round(k * sr / 100)`` up to ``n``, plus a partial last frame.

    Returns
    -------
    bounds : int64 [shape=(F+1,)]
    complete : number of complete frames
    """
    k = np.arange((n * FRAME_RATE) // sr + 2, dtype=np.int64)
    b = (k * sr + FRAME_RATE // 2) // FRAME_RATE
    b = b[b <= n]
    complete = len(b) - 1
    if b[-1] < n:
        b = np.append(b, n)
    return b, complete


def hum_decimation(sr: int) -> int:
    """Boxcar factor taking ``sr`` to roughly 8-11 kHz (1 when already there)."""
    return max(1, sr // 8000)


def scan(
    y: np.ndarray,
    *,
    sr: int,
    clip_hi: float = math.inf,
    clip_lo: float = -math.inf,
    min_clip: int = 1,
    min_zero: int = 0,
    hum: bool = False,
) -> FrameStats:
    """Run the fused pass over a validated signal.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32, C-contiguous, finite (see validate.as_signal)
    sr : sample rate, Hz
    clip_hi, clip_lo : track runs where some channel is >= clip_hi or <= clip_lo (+-inf: off)
    min_clip : ... of at least this many samples
    min_zero : track all-channel digital-zero runs at least this many samples (0: off)
    hum : also produce the boxcar-decimated mono for the hum check
    """
    c, n = y.shape
    bounds, complete = frame_bounds(n, sr)
    f = len(bounds) - 1
    sos = k_weighting_sos(sr)
    kpow = np.empty((c, f))
    rpow = np.empty((c, f))
    fmax = np.empty((c, f), np.float32)
    fmin = np.empty((c, f), np.float32)
    sums = np.zeros(4)
    state = np.zeros(_kernels.STATE_SIZE, np.int64)
    state[_kernels.ZERO_START] = state[_kernels.CLIP_START] = -1
    zero_runs = np.zeros((RUN_CAPACITY, 2), np.int64)
    clip_runs = np.zeros((RUN_CAPACITY, 2), np.int64)
    dec_factor = hum_decimation(sr) if hum else 0
    dec = np.zeros(n // dec_factor if dec_factor else 0, np.float32)
    channel_sums = np.zeros(c)
    side = 0.0
    if c == 2:
        _kernels.scan_stereo(
            y[0],
            y[1],
            bounds,
            sos,
            float(clip_hi),
            float(clip_lo),
            int(min_clip),
            int(min_zero),
            dec_factor,
            kpow,
            rpow,
            fmax,
            fmin,
            sums,
            state,
            zero_runs,
            clip_runs,
            dec,
        )
        channel_sums[:] = sums[:2]
        side = float(sums[2])
    elif c == 1:
        _kernels.scan_mono(
            y[0],
            bounds,
            sos,
            float(clip_hi),
            float(clip_lo),
            int(min_clip),
            int(min_zero),
            dec_factor,
            kpow,
            rpow,
            fmax,
            fmin,
            sums,
            state,
            zero_runs,
            clip_runs,
            dec,
        )
        channel_sums[0] = sums[0]
    else:
        state = _scan_many(
            y,
            bounds,
            sos,
            clip_hi,
            clip_lo,
            min_clip,
            min_zero,
            dec_factor,
            kpow,
            rpow,
            fmax,
            fmin,
            channel_sums,
            zero_runs,
            clip_runs,
            dec,
        )
    # close runs still open at the end of the signal
    zs, cs = int(state[_kernels.ZERO_START]), int(state[_kernels.CLIP_START])
    nz, nc = int(state[_kernels.N_ZERO]), int(state[_kernels.N_CLIP])
    if zs >= 0 and n - zs >= min_zero:
        if nz < RUN_CAPACITY:
            zero_runs[nz] = (zs, n - zs)
        nz += 1
    if cs >= 0 and n - cs >= min_clip:
        if nc < RUN_CAPACITY:
            clip_runs[nc] = (cs, n - cs)
        nc += 1
    return FrameStats(
        sr=sr,
        n=n,
        bounds=bounds,
        complete=complete,
        kpow=kpow,
        rpow=rpow,
        fmax=fmax,
        fmin=fmin,
        channel_sums=channel_sums,
        side_energy=side,
        zero_runs=Runs(zero_runs[: min(nz, RUN_CAPACITY)].copy(), nz),
        clip_runs=Runs(clip_runs[: min(nc, RUN_CAPACITY)].copy(), nc),
        clip_hi=float(clip_hi),
        clip_lo=float(clip_lo),
        hum=dec if hum else None,
        hum_sr=sr / dec_factor if dec_factor else 0.0,
    )


def _scan_many(
    y,
    bounds,
    sos,
    clip_hi,
    clip_lo,
    min_clip,
    min_zero,
    dec_factor,
    kpow,
    rpow,
    fmax,
    fmin,
    channel_sums,
    zero_runs,
    clip_runs,
    dec,
):  # type: ignore[no-untyped-def]
    """More than two channels: per-channel statistics, then runs on envelopes and hum on the mix.

    Rare (uploads are limited to two channels by default), so clarity beats speed here.
    """
    c, f = kpow.shape
    one = np.zeros(4)
    no_runs = np.zeros((1, 2), np.int64)
    empty = np.zeros(0, np.float32)

    def fresh() -> np.ndarray:
        st = np.zeros(_kernels.STATE_SIZE, np.int64)
        st[_kernels.ZERO_START] = st[_kernels.CLIP_START] = -1
        return st

    k1, r1 = np.empty((1, f)), np.empty((1, f))
    mx1, mn1 = np.empty((1, f), np.float32), np.empty((1, f), np.float32)
    for ch in range(c):
        _kernels.scan_mono(
            y[ch],
            bounds,
            sos,
            np.inf,
            -np.inf,
            1,
            0,
            0,
            k1,
            r1,
            mx1,
            mn1,
            one,
            fresh(),
            no_runs,
            no_runs,
            empty,
        )
        kpow[ch], rpow[ch], fmax[ch], fmin[ch] = k1[0], r1[0], mx1[0], mn1[0]
        channel_sums[ch] = one[0]
    # envelopes: max |x| is 0 iff every channel is 0; "clipped" is 1 iff some channel is
    zeros_state = fresh()
    _kernels.scan_mono(
        np.abs(y).max(axis=0),
        bounds,
        sos,
        np.inf,
        -np.inf,
        1,
        int(min_zero),
        0,
        k1,
        r1,
        mx1,
        mn1,
        one,
        zeros_state,
        zero_runs,
        no_runs,
        empty,
    )
    clip_state = fresh()
    clipped = ((y >= clip_hi) | (y <= clip_lo)).any(axis=0).astype(np.float32)
    _kernels.scan_mono(
        clipped,
        bounds,
        sos,
        1.0,
        -np.inf,
        int(min_clip),
        0,
        0,
        k1,
        r1,
        mx1,
        mn1,
        one,
        clip_state,
        no_runs,
        clip_runs,
        empty,
    )
    if dec_factor:
        _kernels.scan_mono(
            y.mean(axis=0, dtype=np.float32),
            bounds,
            sos,
            np.inf,
            -np.inf,
            1,
            0,
            dec_factor,
            k1,
            r1,
            mx1,
            mn1,
            one,
            fresh(),
            no_runs,
            no_runs,
            dec,
        )
    state = zeros_state
    for slot in (_kernels.CLIP_START, _kernels.N_CLIP):
        state[slot] = clip_state[slot]
    return state
