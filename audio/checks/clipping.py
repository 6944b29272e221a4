"""Clipping: runs of consecutive samples flat at full scale.

A sample is "at full scale" when it lies within ``clip_tolerance_db`` (0.0001 dB) of the file's
own positive peak, or of its negative peak, taken separately (16-bit PCM clips at +32767 and
-32768). A clip is a run of at least ``clip_min_run`` (3) such samples in any channel. Peaks below
``clip_min_level_dbfs`` (-20 dBFS) are not considered clipped.

Why the file's own peak and not a fixed -0.01 dBFS: three samples within 0.0001 dB of the peak do
not happen in unclipped band-limited audio above ~20 Hz, so a clean sine normalised to 0 dBFS
passes, while audio clipped and then attenuated (flat tops at -3 dBFS) is still caught. Lossy
decoding ripples flat tops by a percent or so, so clipping under MP3/AAC is undercounted.

Reported: number of clips, the longest in samples, and the share of the duration inside clips.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from audio.checks import _kernels
from audio.checks.config import CheckSettings
from audio.checks.scan import RUN_CAPACITY
from audio.errors import InvalidSignal


def clip_levels(hi: float, lo: float, settings: CheckSettings) -> tuple[float, float]:
    """(positive, negative) levels at or beyond which a sample is at full scale.

    Parameters
    ----------
    hi, lo : the signal's largest and smallest sample
    """
    floor = 10.0 ** (settings.clip_min_level_dbfs / 20.0)
    keep = 10.0 ** (-settings.clip_tolerance_db / 20.0)
    pos = hi * keep if hi > floor else math.inf
    neg = lo * keep if -lo > floor else -math.inf
    return pos, neg


@dataclasses.dataclass(frozen=True)
class ClipStats:
    count: int
    longest: int  # samples
    share: float  # of the duration, [0, 1]


# --- streaming ---------------------------------------------------------------------------------

ENVELOPE_BUDGET = 1 << 21  # samples of run envelopes kept for re-grading (2 x 8 MB at most)

Envelope = tuple[np.ndarray, np.ndarray]  # per-sample (max, min) over channels, float32


class ClipTracker:
    """Full-scale runs found block by block, before the file's peak is known.

    The level is ``peak x keep`` and the peak only grows, so a sample at full scale for the final
    level was also at or beyond the level in effect when it was seen: runs found against the
    running peak are a superset. When the peak grows they are re-graded against the new level
    from their kept envelopes, so the result is what one pass with the final level gives.
    Memory stays bounded: beyond ``ENVELOPE_BUDGET`` envelope samples a run keeps only its
    extremes (and is kept whole if a new level cuts through it), and beyond ``RUN_CAPACITY``
    candidates further runs are counted at the level in effect when seen. Both take tens of
    thousands of clipped samples or runs, which fail the check either way.
    """

    def __init__(self, settings: CheckSettings) -> None:
        self._settings = settings
        self._keep = 10.0 ** (-settings.clip_tolerance_db / 20.0)
        self._min_run = int(settings.clip_min_run)
        self.hi, self.lo = -math.inf, math.inf  # sample extremes so far
        self._level = (math.inf, -math.inf)  # (hi, lo) levels in effect
        self._runs = _RunStore()
        self._overflow = [0, 0, 0]  # count, total length, longest (runs past capacity)
        self._state = np.array([-1, 0], np.int64)  # open run start (absolute), rows written
        self._open: list[Envelope] | None = []  # envelope of the open run (None: over budget)
        self._open_len = 0
        self._open_ext = _NO_EXT

    def feed(
        self,
        x: np.ndarray,
        offset: int,
        frames: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Track a block: float32 [shape=(C, m)] starting at absolute sample ``offset``.

        ``frames`` = (relative frame bounds [f+1], per-frame max [C, f], per-frame min [C, f])
        when the scan has them (frames inside the levels are then skipped); the whole block is
        one frame otherwise.

        Raises
        ------
        InvalidSignal : NaN or infinite samples
        """
        m = x.shape[1]
        if m == 0:
            return
        if frames is None:
            frames = (np.array([0, m], np.int64), x.max(axis=1, keepdims=True), x.min(axis=1, keepdims=True))
        bounds, fmax, fmin = frames
        top, bottom = float(fmax.max()), float(fmin.min())
        if not (math.isfinite(top) and math.isfinite(bottom)):
            raise InvalidSignal("the signal contains NaN or infinite samples")
        self.hi, self.lo = max(self.hi, top), min(self.lo, bottom)
        level = (
            self.hi * self._keep if self.hi > 0 else math.inf,
            self.lo * self._keep if self.lo < 0 else -math.inf,
        )
        if level != self._level:
            self._level = level
            self._regrade()
        rows = np.empty((m // 2 + 2, 2), np.int64)
        _kernels.clip_runs(x, bounds, fmax, fmin, level[0], level[1], offset, self._state, rows)
        for k in range(int(self._state[1])):
            start, length = int(rows[k, 0]), int(rows[k, 1])
            end = start + length - offset
            if start < offset:  # closes the run carried over from earlier blocks
                self._extend_open(_envelope(x, 0, end))
                env, ext = self._take_open()
                if length >= self._min_run:
                    self._add(start, length, env, ext)
            elif length >= self._min_run:
                env = _envelope(x, start - offset, end)
                self._add(start, length, env, _extremes(env))
        open_start = int(self._state[0])
        if open_start >= offset:  # a run opened in this block and is still open
            self._take_open()
        if open_start >= 0:
            self._extend_open(_envelope(x, max(open_start - offset, 0), m))

    def result(self, n: int) -> ClipStats:
        """Clip statistics for a signal of ``n`` samples per channel (after the last block)."""
        final = clip_levels(self.hi, self.lo, self._settings)
        if final != self._level:
            self._level = final
            self._regrade()
        open_start = int(self._state[0])
        if open_start >= 0 and n - open_start >= self._min_run:
            self._add(open_start, n - open_start, *self._take_open())
        self._state[0] = -1
        count = len(self._runs) + self._overflow[0]
        if count == 0:
            return ClipStats(0, 0, 0.0)
        lengths = self._runs.lengths()
        longest = max(int(lengths.max(initial=0)), self._overflow[2])
        return ClipStats(count, longest, float((int(lengths.sum()) + self._overflow[1]) / n))

    # -- internals --------------------------------------------------------------------------------

    def _add(
        self, start: int, length: int, env: Envelope | None, ext: tuple[float, float, float, float]
    ) -> None:
        if len(self._runs) >= RUN_CAPACITY:
            self._overflow[0] += 1
            self._overflow[1] += length
            self._overflow[2] = max(self._overflow[2], length)
            return
        self._runs.add(start, length, env, ext)

    def _extend_open(self, env: Envelope) -> None:
        self._open_ext = _merge(self._open_ext, _extremes(env))
        self._open_len += len(env[0])
        if self._open is not None:
            self._open.append(env)
            if self._open_len > ENVELOPE_BUDGET:
                self._open = None

    def _take_open(self) -> tuple[Envelope | None, tuple[float, float, float, float]]:
        """The open run's envelope (None if over budget) and extremes; resets the open run."""
        env: Envelope | None = None
        if self._open is not None:
            env = (
                np.concatenate([p[0] for p in self._open]) if self._open else np.zeros(0, np.float32),
                np.concatenate([p[1] for p in self._open]) if self._open else np.zeros(0, np.float32),
            )
        ext = self._open_ext
        self._open, self._open_len, self._open_ext = [], 0, _NO_EXT
        return env, ext

    def _regrade(self) -> None:
        """Re-grade candidates and the open run against the (higher) levels now in effect."""
        hi, lo = self._level
        runs, self._runs = self._runs, _RunStore()
        for start, length, ext, env in runs:
            fate = _fate(ext, hi, lo)
            if fate == "gone":
                continue
            if fate == "whole" or env is None:  # without an envelope a straddling run stays whole
                self._add(start, length, env, ext)
                continue
            for s, e in _split(env, hi, lo, self._min_run):
                part = (env[0][s:e], env[1][s:e])
                self._add(start + s, e - s, part, _extremes(part))
        open_start = int(self._state[0])
        if open_start < 0:
            return
        fate = _fate(self._open_ext, hi, lo)
        if fate == "gone":
            self._state[0] = -1
            self._take_open()
            return
        if fate == "whole" or self._open is None:  # unchanged (over budget: kept whole)
            return
        env, _ = self._take_open()
        assert env is not None
        qual = _at_full_scale(env, hi, lo)
        misses = np.flatnonzero(~qual)
        tail = int(misses[-1]) + 1 if misses.size else 0  # the open part: after the last miss
        for s, e in _split((env[0][:tail], env[1][:tail]), hi, lo, self._min_run):
            part = (env[0][s:e], env[1][s:e])
            self._add(open_start + s, e - s, part, _extremes(part))
        if tail == len(qual):
            self._state[0] = -1
        else:
            self._state[0] = open_start + tail
            self._extend_open((env[0][tail:], env[1][tail:]))


_NO_EXT = (math.inf, -math.inf, -math.inf, math.inf)


class _RunStore:
    """Candidate runs in flat arrays (a Python object per run would cost ~0.7 kB each): rows of
    (start, length, envelope offset or -1), their extremes, and the envelopes end to end."""

    def __init__(self) -> None:
        self._rows = np.zeros((64, 3), np.int64)
        self._ext = np.zeros((64, 4), np.float64)
        self._hi = np.zeros(1024, np.float32)
        self._lo = np.zeros(1024, np.float32)
        self._k = 0
        self._used = 0  # envelope samples stored

    def __len__(self) -> int:
        return self._k

    def add(
        self, start: int, length: int, env: Envelope | None, ext: tuple[float, float, float, float]
    ) -> None:
        if self._k == len(self._rows):
            self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)])
            self._ext = np.concatenate([self._ext, np.zeros_like(self._ext)])
        at = -1
        if env is not None and self._used + length <= ENVELOPE_BUDGET:
            while self._used + length > len(self._hi):
                self._hi = np.concatenate([self._hi, np.zeros_like(self._hi)])
                self._lo = np.concatenate([self._lo, np.zeros_like(self._lo)])
            at = self._used
            self._hi[at : at + length] = env[0]
            self._lo[at : at + length] = env[1]
            self._used += length
        self._rows[self._k] = (start, length, at)
        self._ext[self._k] = ext
        self._k += 1

    def lengths(self) -> np.ndarray:
        return self._rows[: self._k, 1]

    def __iter__(self):  # type: ignore[no-untyped-def]
        """(start, length, extremes, envelope or None) per run."""
        for i in range(self._k):
            start, length, at = (int(v) for v in self._rows[i])
            env = (self._hi[at : at + length], self._lo[at : at + length]) if at >= 0 else None
            yield start, length, tuple(float(v) for v in self._ext[i]), env


def _envelope(x: np.ndarray, a: int, b: int) -> Envelope:
    part = x[:, a:b]
    return part.max(axis=0), part.min(axis=0)


def _extremes(env: Envelope) -> tuple[float, float, float, float]:
    if len(env[0]) == 0:
        return _NO_EXT
    return float(env[0].min()), float(env[0].max()), float(env[1].max()), float(env[1].min())


def _merge(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    return min(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])


def _fate(ext: tuple[float, float, float, float], hi: float, lo: float) -> str:
    """ "whole": every sample still at full scale; "gone": none is; "split": some are."""
    if ext[0] >= hi or ext[2] <= lo:
        return "whole"
    if ext[1] < hi and ext[3] > lo:
        return "gone"
    return "split"


def _at_full_scale(env: Envelope, hi: float, lo: float) -> np.ndarray:
    # float64 levels, as in the kernel: a float32 comparison would round the level first
    return (env[0] >= np.float64(hi)) | (env[1] <= np.float64(lo))


def _split(env: Envelope, hi: float, lo: float, min_run: int) -> list[tuple[int, int]]:
    """(start, end) of runs of at least ``min_run`` samples at full scale within an envelope."""
    qual = np.concatenate(([False], _at_full_scale(env, hi, lo), [False]))
    edges = np.flatnonzero(np.diff(qual.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    keep = ends - starts >= min_run
    return list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))
