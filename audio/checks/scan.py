"""The single pass over the samples: per-10 ms-frame statistics every check reads from.

Frames are 10 ms on a grid ``b_k = round(k * sr / 100)`` so that ten frames make one BS.1770
100 ms segment ``round(j * sr / 10)`` exactly at any rate (also 11.025 kHz, where 100 ms is not a
whole number of samples). A trailing partial frame is kept for the silence checks; loudness uses
complete 100 ms segments only.

:class:`Scanner` runs the pass block by block (the filter and run states are carried over), so
a file is checked as it is decoded, without holding the whole signal; :func:`scan` is one call.
"""

from __future__ import annotations

import dataclasses

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
    b = grid_between(0, n, sr)
    complete = len(b) - 1
    if b[-1] < n:
        b = np.append(b, n)
    return b, complete


def grid_between(start: int, stop: int, sr: int) -> np.ndarray:
    """Frame-grid boundaries ``b_k`` with ``start <= b_k <= stop`` (``start`` must be one)."""
    k0 = (start * FRAME_RATE) // sr
    k = np.arange(k0, (stop * FRAME_RATE) // sr + 2, dtype=np.int64)
    b = (k * sr + FRAME_RATE // 2) // FRAME_RATE
    return b[(b >= start) & (b <= stop)]


def last_boundary(stop: int, sr: int) -> int:
    """The largest frame-grid boundary ``<= stop``."""
    k = (stop * FRAME_RATE) // sr + 1
    while (k * sr + FRAME_RATE // 2) // FRAME_RATE > stop:
        k -= 1
    return int((k * sr + FRAME_RATE // 2) // FRAME_RATE)


def hum_decimation(sr: int) -> int:
    """Boxcar factor taking ``sr`` to roughly 8-11 kHz (1 when already there)."""
    return max(1, sr // 8000)


class Accumulator:
    """A float32 1-D array filled piece by piece (the decimated mono for hum, the VAD's input).

    With a size hint (the file header's duration) it is allocated once; without one, or past
    it, pieces are kept and joined at the end. Either way the peak is at most about twice the
    result, never the 2.5x of a geometrically grown buffer.
    """

    def __init__(self, hint: int = 0) -> None:
        self._data = np.empty(hint, np.float32) if hint > 0 else None
        self._size = 0
        self._parts: list[np.ndarray] = []

    def append(self, x: np.ndarray) -> None:
        m = len(x)
        if self._data is not None and not self._parts and self._size + m <= len(self._data):
            self._data[self._size : self._size + m] = x
            self._size += m
            return
        if self._data is not None and not self._parts:  # past the hint: keep what is filled
            self._parts.append(self._data[: self._size])
        self._parts.append(np.array(x, np.float32))

    def result(self) -> np.ndarray:
        """Everything appended, float32 [shape=(n,)] (call once)."""
        if not self._parts:
            return self._data[: self._size] if self._data is not None else np.zeros(0, np.float32)
        out = np.concatenate(self._parts)
        self._parts, self._data = [], None
        return out


@dataclasses.dataclass(frozen=True)
class Block:
    """What :meth:`Scanner.feed` learned about one block (frame arrays cover its frames only)."""

    offset: int  # absolute index of the block's first sample
    bounds: np.ndarray  # int64 [shape=(f+1,)] frame boundaries relative to the block
    rpow: np.ndarray  # float64 [shape=(C, f)]
    fmax: np.ndarray  # float32 [shape=(C, f)] largest sample per frame
    fmin: np.ndarray  # float32 [shape=(C, f)] smallest sample per frame

    @property
    def peak(self) -> np.ndarray:
        """float32 [shape=(C, f)] max |sample| per frame."""
        return np.maximum(self.fmax, -self.fmin)

    @property
    def finite(self) -> bool:
        """No NaN or infinite sample in the block (they make the frame energies NaN or inf)."""
        return bool(np.isfinite(self.rpow.sum()))


class Scanner:
    """The fused pass, block by block.

    Each :meth:`feed` must end on the frame grid (:func:`last_boundary`) except the last one;
    the statistics then equal those of one pass over the concatenated signal.

    Parameters
    ----------
    sr : sample rate, Hz
    channels : channel count
    min_zero : track all-channel digital-zero runs at least this many samples (0: off)
    hum : also produce the boxcar-decimated mono for the hum check
    expected : samples per channel expected in all (a header's claim; 0: unknown), to allocate
        the decimated mono once
    """

    def __init__(
        self, *, sr: int, channels: int, min_zero: int = 0, hum: bool = False, expected: int = 0
    ) -> None:
        self.sr, self.channels, self.min_zero = sr, channels, int(min_zero)
        self._sos = k_weighting_sos(sr)
        self._dec_factor = hum_decimation(sr) if hum else 0
        self._n = 0
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in ("kpow", "rpow", "fmax", "fmin")}
        self._hum = Accumulator(expected // self._dec_factor + 16 if self._dec_factor and expected > 0 else 0)
        self._bounds: list[np.ndarray] = [np.zeros(1, np.int64)]
        self._sums = np.zeros(max(4, channels))
        self._zero_runs = np.zeros((RUN_CAPACITY, 2), np.int64)
        # per-lane kernel states: stereo and mono use one lane; >2 channels one per channel,
        # one for the zero-run envelope and one for the hum mix
        lanes = 1 if channels <= 2 else channels + 2
        self._state = np.zeros((lanes, _kernels.STATE_SIZE), np.int64)
        self._state[:, _kernels.ZERO_START] = -1
        self._fstate = np.zeros((lanes, _kernels.FSTATE_SIZE))

    @property
    def n(self) -> int:
        """Samples per channel fed so far."""
        return self._n

    def feed(self, y: np.ndarray, *, last: bool = False) -> Block:
        """Scan a block.

        Parameters
        ----------
        y : float32 [shape=(channels, m)], finite; each row contiguous
        last : the final block (may end off the grid: its last frame is then partial)
        """
        c, m = y.shape
        offset = self._n
        grid = grid_between(offset, offset + m, self.sr)
        if grid[-1] != offset + m:
            if not last:
                raise ValueError("a block that is not the last must end on the frame grid")
            grid = np.append(grid, offset + m)
        bounds = grid - offset
        f = len(bounds) - 1
        kpow, rpow = np.empty((c, f)), np.empty((c, f))
        fmax, fmin = np.empty((c, f), np.float32), np.empty((c, f), np.float32)
        dec = self._dec_buffer(m)
        if c == 2:
            self._state[0, _kernels.DEC_INDEX] = 0
            _kernels.scan_stereo(
                y[0], y[1], bounds, self._sos, self.min_zero, self._dec_factor,
                kpow, rpow, fmax, fmin, self._sums, self._state[0], self._fstate[0], offset,
                self._zero_runs, dec,
            )  # fmt: skip
            produced = int(self._state[0, _kernels.DEC_INDEX])
        elif c == 1:
            self._state[0, _kernels.DEC_INDEX] = 0
            _kernels.scan_mono(
                y[0], bounds, self._sos, self.min_zero, self._dec_factor,
                kpow, rpow, fmax, fmin, self._sums, self._state[0], self._fstate[0], offset,
                self._zero_runs, dec,
            )  # fmt: skip
            produced = int(self._state[0, _kernels.DEC_INDEX])
        else:
            produced = self._feed_many(y, bounds, offset, kpow, rpow, fmax, fmin, dec)
        for key, arr in (("kpow", kpow), ("rpow", rpow), ("fmax", fmax), ("fmin", fmin)):
            self._parts[key].append(arr)
        if self._dec_factor:
            self._hum.append(dec[:produced])
        self._bounds.append(grid[1:])
        self._n += m
        return Block(offset, bounds, rpow, fmax, fmin)

    def result(self) -> FrameStats:
        """The statistics of everything fed (call once, after the last block)."""
        n, sr, c = self._n, self.sr, self.channels
        bounds = np.concatenate(self._bounds)
        complete = int(np.searchsorted(bounds, last_boundary(n, sr), side="right")) - 1
        lane = 0 if c <= 2 else c
        zs = int(self._state[lane, _kernels.ZERO_START])
        nz = int(self._state[lane, _kernels.N_ZERO])
        if zs >= 0 and self.min_zero > 0 and n - zs >= self.min_zero:  # close a run open at the end
            if nz < RUN_CAPACITY:
                self._zero_runs[nz] = (zs, n - zs)
            nz += 1

        def cat(key: str, dtype: type) -> np.ndarray:
            parts = self._parts[key]
            return np.concatenate(parts, axis=-1) if parts else np.zeros((c, 0), dtype)

        hum = self._hum.result() if self._dec_factor else None
        return FrameStats(
            sr=sr,
            n=n,
            bounds=bounds,
            complete=complete,
            kpow=cat("kpow", np.float64),
            rpow=cat("rpow", np.float64),
            fmax=cat("fmax", np.float32),
            fmin=cat("fmin", np.float32),
            channel_sums=self._sums[:c].copy(),
            side_energy=float(self._sums[2]) if c == 2 else 0.0,
            zero_runs=Runs(self._zero_runs[: min(nz, RUN_CAPACITY)].copy(), nz),
            hum=hum,
            hum_sr=sr / self._dec_factor if self._dec_factor else 0.0,
        )

    def _dec_buffer(self, m: int) -> np.ndarray:
        if not self._dec_factor:
            return np.zeros(0, np.float32)
        lane = 0 if self.channels <= 2 else self.channels + 1
        pending = int(self._state[lane, _kernels.DEC_COUNT])
        return np.empty((pending + m) // self._dec_factor, np.float32)

    def _feed_many(self, y, bounds, offset, kpow, rpow, fmax, fmin, dec) -> int:  # type: ignore[no-untyped-def]
        """More than two channels: per-channel statistics, zero runs on the envelope max |x|
        (0 iff every channel is 0) and hum on the mix. Rare (uploads are limited to two channels
        by default), so clarity beats speed here."""
        c, f = kpow.shape
        k1, r1 = np.empty((1, f)), np.empty((1, f))
        mx1, mn1 = np.empty((1, f), np.float32), np.empty((1, f), np.float32)
        no_runs = np.zeros((1, 2), np.int64)
        empty = np.zeros(0, np.float32)
        one = np.zeros(4)
        for ch in range(c):
            one[:] = 0.0
            _kernels.scan_mono(
                y[ch], bounds, self._sos, 0, 0, k1, r1, mx1, mn1, one,
                self._state[ch], self._fstate[ch], offset, no_runs, empty,
            )  # fmt: skip
            kpow[ch], rpow[ch], fmax[ch], fmin[ch] = k1[0], r1[0], mx1[0], mn1[0]
            self._sums[ch] += one[0]
        _kernels.scan_mono(
            np.abs(y).max(axis=0), bounds, self._sos, self.min_zero, 0, k1, r1, mx1, mn1, one,
            self._state[c], self._fstate[c], offset, self._zero_runs, empty,
        )  # fmt: skip
        if not self._dec_factor:
            return 0
        self._state[c + 1, _kernels.DEC_INDEX] = 0
        _kernels.scan_mono(
            y.mean(axis=0, dtype=np.float32), bounds, self._sos, 0, self._dec_factor,
            k1, r1, mx1, mn1, one, self._state[c + 1], self._fstate[c + 1], offset, no_runs, dec,
        )  # fmt: skip
        return int(self._state[c + 1, _kernels.DEC_INDEX])


def scan(y: np.ndarray, *, sr: int, min_zero: int = 0, hum: bool = False) -> FrameStats:
    """Run the fused pass over a whole validated signal in one call.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n)], float32, C-contiguous, finite (see validate.as_signal)
    sr : sample rate, Hz
    min_zero : track all-channel digital-zero runs at least this many samples (0: off)
    hum : also produce the boxcar-decimated mono for the hum check
    """
    scanner = Scanner(sr=sr, channels=y.shape[0], min_zero=min_zero, hum=hum)
    scanner.feed(y, last=True)
    return scanner.result()
