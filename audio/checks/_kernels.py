"""Numba kernels: the one pass over the samples that every check reads from, full-scale runs,
and 4x interpolation. All of them run block by block with their state carried between calls.

Why numba: the checks need the K-weighted energy, raw energy, extrema, sums and digital-zero runs
of every 10 ms frame. Done with scipy/numpy that is a dozen passes over the signal (``sosfilt``
alone is latency-bound at ~130 ms for 4 min of stereo); fused here it is one pass of ~60 ms with
both channels' filter chains interleaved, and no signal-sized temporaries. Full-scale runs are a
second kernel because their level is only known per block (see :mod:`audio.checks.clipping`);
it skips frames whose extrema stay inside the level, so it reads almost no samples.

The kernels are compiled on first use (~8 s of CPU once) and cached next to this file, or in
NUMBA_CACHE_DIR / the user cache when the install is read-only.
All filtering runs in float64 (the K-weighting high-pass pole sits at r ~ 0.995).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _njit(*, fastmath: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit`` cached on disk; compiled per process where no cache location is writable
    (a read-only install without a writable home or NUMBA_CACHE_DIR), instead of failing at import."""

    def wrap(fn: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=fastmath)(fn)
        except RuntimeError:
            return numba.njit(cache=False, nogil=True, boundscheck=False, fastmath=fastmath)(fn)

    return wrap


# state slots (int64) carried between calls
ZERO_START = 0  # absolute start of the open digital-zero run, -1 when none
N_ZERO = 1  # zero runs recorded so far (may exceed capacity: then only counted)
DEC_COUNT = 2  # samples in the current decimation bucket
DEC_INDEX = 3  # next output index into this call's ``dec`` (reset by the caller per call)
STATE_SIZE = 4
# float state (float64) carried between calls: K-weighting biquad states, decimation accumulator
FSTATE_SIZE = 9  # p11 p12 p21 p22 (left / mono), q11 q12 q21 q22 (right), dacc


@_njit()
def _record(runs, k, start, length):  # pragma: no cover - compiled
    if k < runs.shape[0]:
        runs[k, 0] = start
        runs[k, 1] = length


@_njit()
def scan_stereo(
    xl,
    xr,
    bounds,
    sos,
    min_zero,
    dec_factor,
    kpow,
    rpow,
    fmax,
    fmin,
    sums,
    state,
    fstate,
    offset,
    zero_runs,
    dec,
):  # pragma: no cover - compiled
    """One pass over a stereo signal.

    Parameters
    ----------
    xl, xr : float32 [shape=(n,)] left and right channel
    bounds : int64 [shape=(F+1,)] frame boundaries in samples (first 0, last n)
    sos : float64 [shape=(2, 6)] K-weighting biquads (b0 b1 b2 a0 a1 a2, a0 == 1)
    min_zero : shortest digital-zero run recorded, samples
    dec_factor : boxcar decimation factor for the mono hum signal (0: none)
    kpow, rpow : float64 [shape=(2, F)] out: sum of squared K-weighted / raw samples per frame
    fmax, fmin : float32 [shape=(2, F)] out: extrema per frame
    sums : float64 [shape=(4,)] in/out: sum L, sum R, sum (L-R)^2 are added to, unused
    state : int64 [shape=(STATE_SIZE,)] in/out, carried between calls
    fstate : float64 [shape=(FSTATE_SIZE,)] in/out, carried between calls
    offset : absolute index of ``xl[0]`` (runs are recorded in absolute samples)
    zero_runs : int64 [shape=(cap, 2)] out: (start, length) of digital-zero runs
    dec : float32 [shape=((n + DEC_COUNT) // dec_factor,)] out: boxcar mean of (L+R)/2

    Called block by block with the states carried over, the result is that of one call on the
    concatenated signal (blocks end on frame boundaries).
    """
    b10, b11, b12, a11, a12 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b20, b21, b22, a21, a22 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    p11, p12, p21, p22 = fstate[0], fstate[1], fstate[2], fstate[3]
    q11, q12, q21, q22 = fstate[4], fstate[5], fstate[6], fstate[7]
    dacc = fstate[8]
    zs = state[ZERO_START]
    nz = state[N_ZERO]
    dcount = state[DEC_COUNT]
    didx = state[DEC_INDEX]
    suml = 0.0
    sumr = 0.0
    side = 0.0
    for f in range(bounds.shape[0] - 1):
        kl = 0.0
        kr = 0.0
        rl = 0.0
        rr = 0.0
        mxl = np.float32(-np.inf)
        mnl = np.float32(np.inf)
        mxr = np.float32(-np.inf)
        mnr = np.float32(np.inf)
        for i in range(bounds[f], bounds[f + 1]):
            a = xl[i]
            b = xr[i]
            v = np.float64(a)
            w = np.float64(b)
            # K-weighting, direct form II transposed, both channels interleaved for ILP
            y1 = b10 * v + p11
            u1 = b10 * w + q11
            p11 = b11 * v - a11 * y1 + p12
            q11 = b11 * w - a11 * u1 + q12
            p12 = b12 * v - a12 * y1
            q12 = b12 * w - a12 * u1
            y2 = b20 * y1 + p21
            u2 = b20 * u1 + q21
            p21 = b21 * y1 - a21 * y2 + p22
            q21 = b21 * u1 - a21 * u2 + q22
            p22 = b22 * y1 - a22 * y2
            q22 = b22 * u1 - a22 * u2
            kl += y2 * y2
            kr += u2 * u2
            rl += v * v
            rr += w * w
            suml += v
            sumr += w
            d = v - w
            side += d * d
            mxl = max(mxl, a)
            mnl = min(mnl, a)
            mxr = max(mxr, b)
            mnr = min(mnr, b)
            if a == 0.0 and b == 0.0:
                if zs < 0:
                    zs = offset + i
            elif zs >= 0:
                if offset + i - zs >= min_zero:
                    _record(zero_runs, nz, zs, offset + i - zs)
                    nz += 1
                zs = -1
            if dec_factor > 0:
                dacc += v + w
                dcount += 1
                if dcount == dec_factor:
                    if didx < dec.shape[0]:
                        dec[didx] = dacc / (2.0 * dec_factor)
                    didx += 1
                    dacc = 0.0
                    dcount = 0
        kpow[0, f] = kl
        kpow[1, f] = kr
        rpow[0, f] = rl
        rpow[1, f] = rr
        fmax[0, f] = mxl
        fmin[0, f] = mnl
        fmax[1, f] = mxr
        fmin[1, f] = mnr
    sums[0] += suml
    sums[1] += sumr
    sums[2] += side
    fstate[0], fstate[1], fstate[2], fstate[3] = p11, p12, p21, p22
    fstate[4], fstate[5], fstate[6], fstate[7] = q11, q12, q21, q22
    fstate[8] = dacc
    state[ZERO_START] = zs
    state[N_ZERO] = nz
    state[DEC_COUNT] = dcount
    state[DEC_INDEX] = didx


@_njit()
def scan_mono(
    x,
    bounds,
    sos,
    min_zero,
    dec_factor,
    kpow,
    rpow,
    fmax,
    fmin,
    sums,
    state,
    fstate,
    offset,
    zero_runs,
    dec,
):  # pragma: no cover - compiled
    """One pass over one channel; same outputs as :func:`scan_stereo` with one row.

    With ``min_zero <= 0`` no runs are tracked (used per channel for >2 channels, where runs are
    found on an envelope instead).
    """
    b10, b11, b12, a11, a12 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b20, b21, b22, a21, a22 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    p11, p12, p21, p22 = fstate[0], fstate[1], fstate[2], fstate[3]
    dacc = fstate[8]
    zs = state[ZERO_START]
    nz = state[N_ZERO]
    dcount = state[DEC_COUNT]
    didx = state[DEC_INDEX]
    track_zero = min_zero > 0
    total = 0.0
    for f in range(bounds.shape[0] - 1):
        k = 0.0
        r = 0.0
        mx = np.float32(-np.inf)
        mn = np.float32(np.inf)
        for i in range(bounds[f], bounds[f + 1]):
            a = x[i]
            v = np.float64(a)
            y1 = b10 * v + p11
            p11 = b11 * v - a11 * y1 + p12
            p12 = b12 * v - a12 * y1
            y2 = b20 * y1 + p21
            p21 = b21 * y1 - a21 * y2 + p22
            p22 = b22 * y1 - a22 * y2
            k += y2 * y2
            r += v * v
            total += v
            mx = max(mx, a)
            mn = min(mn, a)
            if track_zero:
                if a == 0.0:
                    if zs < 0:
                        zs = offset + i
                elif zs >= 0:
                    if offset + i - zs >= min_zero:
                        _record(zero_runs, nz, zs, offset + i - zs)
                        nz += 1
                    zs = -1
            if dec_factor > 0:
                dacc += v
                dcount += 1
                if dcount == dec_factor:
                    if didx < dec.shape[0]:
                        dec[didx] = dacc / dec_factor
                    didx += 1
                    dacc = 0.0
                    dcount = 0
        kpow[0, f] = k
        rpow[0, f] = r
        fmax[0, f] = mx
        fmin[0, f] = mn
    sums[0] += total
    fstate[0], fstate[1], fstate[2], fstate[3] = p11, p12, p21, p22
    fstate[8] = dacc
    state[ZERO_START] = zs
    state[N_ZERO] = nz
    state[DEC_COUNT] = dcount
    state[DEC_INDEX] = didx


@_njit()
def clip_runs(x, bounds, fmax, fmin, hi, lo, offset, state, rows):  # pragma: no cover - compiled
    """Runs where some channel is >= ``hi`` or <= ``lo``, one call per block.

    Frames whose extrema (from the scan) stay inside the levels are skipped without reading
    their samples, so ordinary audio costs next to nothing here.

    Parameters
    ----------
    x : float32 [shape=(C, m)]
    bounds : int64 [shape=(f+1,)] frame boundaries relative to the block (0 ... m)
    fmax, fmin : float32 [shape=(C, f)] per-frame extrema
    hi, lo : levels (inf / -inf: that side off)
    offset : absolute index of ``x[:, 0]``
    state : int64 [shape=(2,)] in/out: absolute start of the run open at the block end (-1: none),
        rows written by this call
    rows : int64 [shape=(m // 2 + 2, 2)] out: (start, length) of runs closed in this block
    """
    c = x.shape[0]
    start = state[0]
    k = 0
    for f in range(bounds.shape[0] - 1):
        inside = True
        for ch in range(c):
            if fmax[ch, f] >= hi or fmin[ch, f] <= lo:
                inside = False
        if inside:
            if start >= 0:
                rows[k, 0] = start
                rows[k, 1] = offset + bounds[f] - start
                k += 1
                start = -1
            continue
        for i in range(bounds[f], bounds[f + 1]):
            hit = False
            for ch in range(c):
                v = x[ch, i]
                if v >= hi or v <= lo:
                    hit = True
                    break
            if hit:
                if start < 0:
                    start = offset + i
            elif start >= 0:
                rows[k, 0] = start
                rows[k, 1] = offset + i - start
                k += 1
                start = -1
    state[0] = start
    state[1] = k


INTERP_BLOCK = 4096


@_njit(fastmath=True)
def _interp_block(
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, coef, out
):  # pragma: no cover - compiled
    """out[j] = max(|S| + |D|, |P|) for aligned windows a_k[j] = x[n - k]; see :func:`interp_peak`.

    Contiguous per-tap slices and no reduction in this loop let LLVM vectorise it (AVX2/512):
    about 3.5x faster than indexing ``x[n - k]`` directly.
    """
    c0, c1, c2, c3, c4, c5, c6, c7 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
    d0, d1, d2, d3, d4, d5, d6, d7 = (
        coef[8],
        coef[9],
        coef[10],
        coef[11],
        coef[12],
        coef[13],
        coef[14],
        coef[15],
    )
    e0, e1, e2, e3, e4, e5, e6, e7 = (
        coef[16],
        coef[17],
        coef[18],
        coef[19],
        coef[20],
        coef[21],
        coef[22],
        coef[23],
    )
    for j in range(out.shape[0]):
        x0 = a0[j]
        x1 = a1[j]
        x2 = a2[j]
        x3 = a3[j]
        x4 = a4[j]
        x5 = a5[j]
        x6 = a6[j]
        x7 = a7[j]
        x8 = a8[j]
        x9 = a9[j]
        x10 = a10[j]
        x11 = a11[j]
        x12 = a12[j]
        x13 = a13[j]
        x14 = a14[j]
        x15 = a15[j]
        u0 = x0 + x15
        u1 = x1 + x14
        u2 = x2 + x13
        u3 = x3 + x12
        u4 = x4 + x11
        u5 = x5 + x10
        u6 = x6 + x9
        u7 = x7 + x8
        s = c0 * u0 + c1 * u1 + c2 * u2 + c3 * u3 + c4 * u4 + c5 * u5 + c6 * u6 + c7 * u7
        d = (
            d0 * (x0 - x15)
            + d1 * (x1 - x14)
            + d2 * (x2 - x13)
            + d3 * (x3 - x12)
            + d4 * (x4 - x11)
            + d5 * (x5 - x10)
            + d6 * (x6 - x9)
            + d7 * (x7 - x8)
        )
        p = e0 * u0 + e1 * u1 + e2 * u2 + e3 * u3 + e4 * u4 + e5 * u5 + e6 * u6 + e7 * u7
        out[j] = max(abs(s) + abs(d), abs(p))


@_njit(fastmath=True)
def interp_peak(x, coef, start, stop):  # pragma: no cover - compiled
    """Largest |value| of the three fractional phases of a 4x polyphase interpolator.

    The prototype is a symmetric 65-tap Nyquist filter (16 taps per phase), so phase 0 reproduces
    the samples and phases 1 and 3 are mirror images. With pairs ``u_k = x[n-k] + x[n-15+k]`` and
    ``v_k = x[n-k] - x[n-15+k]`` (k < 8): phase 1 = S + D and phase 3 = S - D, so their larger
    magnitude is |S| + |D|, and phase 2 = P, where S, D and P are 8-tap sums: 24 multiplies per
    input sample instead of 48.

    Parameters
    ----------
    x : float32 [shape=(n,)]; ``x[start-15 : stop]`` must exist
    coef : float32 [shape=(24,)] c0..c7 (S), d0..d7 (D), e0..e7 (P)
    start, stop : output range; output n interpolates between x[n-8] and x[n-7]
    """
    buf = np.empty(INTERP_BLOCK, np.float32)
    m = np.float32(0.0)
    for s in range(start, stop, INTERP_BLOCK):
        e = min(stop, s + INTERP_BLOCK)
        out = buf[: e - s]
        _interp_block(
            x[s:e],
            x[s - 1 : e - 1],
            x[s - 2 : e - 2],
            x[s - 3 : e - 3],
            x[s - 4 : e - 4],
            x[s - 5 : e - 5],
            x[s - 6 : e - 6],
            x[s - 7 : e - 7],
            x[s - 8 : e - 8],
            x[s - 9 : e - 9],
            x[s - 10 : e - 10],
            x[s - 11 : e - 11],
            x[s - 12 : e - 12],
            x[s - 13 : e - 13],
            x[s - 14 : e - 14],
            x[s - 15 : e - 15],
            coef,
            out,
        )
        top = out.max()
        if top > m:
            m = top
    return m
