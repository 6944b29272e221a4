"""Spectrum frames that look exactly like a Web Audio ``AnalyserNode`` polled once per frame.

Per frame ``i`` (time ``t_i = i / fps``) we take the ``fft_size`` samples that end at the first
render-quantum boundary at or after ``t_i``: sample ``128 * ceil(i * sr / (fps * 128))`` (an analyser
only sees whole 128-frame render quanta, and ``OfflineAudioContext.suspend(t_i)`` rounds up to one),
with zeros before the start as in a fresh analyser. Then, following the Web Audio spec / Chromium
``RealtimeAnalyser`` step by step:

1. down-mix to mono like the node's input (``0.5 * (L + R)`` for stereo);
2. Blackman window, alpha = 0.16: ``0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)``;
3. real FFT, magnitude ``|X[k]| / N`` for ``k = 0 .. N/2 - 1`` (frequencyBinCount bins);
4. smoothing across successive frames: ``X_i = tau * X_{i-1} + (1 - tau) * |X_i|`` (tau = 0.8),
   which is what a live analyser does once per ``getByteFrequencyData`` call, i.e. once per drawn
   frame, so precomputed frames at ``fps`` match a live analyser polled at the same ``fps``;
5. ``dB = 20 log10(X)`` and ``byte = floor(255 / (maxDb - minDb) * (dB - minDb))`` clipped to 0..255.

The bin bytes are then averaged into ``bands`` log-spaced bands (mean of the bin bytes of the band,
rounded half up), so a page can compute the same bands from ``getByteFrequencyData`` output.
The band edges are whole FFT bins (see :func:`band_edges`) and are stored in the frame format.

Everything is vectorised over blocks of frames (one batched real FFT per block), which is what makes
this several times faster than a mel spectrogram followed by per-frame resampling.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import scipy.fft

from effects.config import EffectSettings
from effects.errors import InvalidEffectParams
from effects.signal import as_channels, webaudio_mono

#: Frames per FFT block: (256, 2048) float32 is 2 MiB, small enough to stay in cache.
BLOCK_FRAMES = 256
#: Web Audio render quantum (frames): an analyser's input advances by whole quanta.
RENDER_QUANTUM = 128


@dataclasses.dataclass(frozen=True)
class SpectrumFrames:
    """Precomputed band levels.

    Attributes
    ----------
    levels : np.ndarray [shape=(frames, bands)], uint8, AnalyserNode byte scale (0..255)
    edges_bin : np.ndarray [shape=(bands + 1,)], int, band ``b`` covers FFT bins
        ``edges_bin[b] <= k < edges_bin[b + 1]``
    sample_rate : int, Hz of the analysed audio
    fps : int, frames per second; frame ``i`` describes playback time ``i / fps`` s
    fft_size, smoothing, min_db, max_db : the AnalyserNode parameters used
    """

    levels: np.ndarray
    edges_bin: np.ndarray
    sample_rate: int
    fps: int
    fft_size: int
    smoothing: float
    min_db: float
    max_db: float

    @property
    def bands(self) -> int:
        return int(self.levels.shape[1])

    @property
    def frame_count(self) -> int:
        return int(self.levels.shape[0])

    @property
    def edges_hz(self) -> np.ndarray:
        """Band edges in Hz, float64 [shape=(bands + 1,)]: ``edges_bin * sample_rate / fft_size``."""
        return self.edges_bin.astype(np.float64) * self.sample_rate / self.fft_size


def blackman(n: int) -> np.ndarray:
    """The AnalyserNode window: periodic Blackman, alpha 0.16, float32 [shape=(n,)]."""
    x = np.arange(n, dtype=np.float64) / n
    return (0.42 - 0.5 * np.cos(2 * np.pi * x) + 0.08 * np.cos(4 * np.pi * x)).astype(np.float32)


def band_edges(*, sr: int, fft_size: int, bands: int, fmin: float, fmax: float) -> np.ndarray:
    """Log-spaced band edges in whole FFT bins, each band at least one bin wide.

    The usable bins are ``k_lo = max(1, ceil(fmin / df))`` .. ``k_hi = min(N/2 - 1, floor(fmax / df))``
    with ``df = sr / fft_size``. Edges are chosen greedily from the bottom: the next edge is the
    geometric step that would split what is left evenly, ``e * (k_end / e) ** (1 / remaining)``,
    rounded, at least one bin above the previous edge and leaving at least one bin per remaining
    band. Low bands are therefore one bin wide until the log spacing grows wider than a bin.

    Returns
    -------
    np.ndarray [shape=(bands + 1,)], int64, strictly increasing; last edge ``k_hi + 1`` (exclusive)

    Raises
    ------
    InvalidEffectParams : fewer usable bins than bands
    """
    df = sr / fft_size
    k_lo = max(1, math.ceil(fmin / df - 1e-9))
    k_hi = min(fft_size // 2 - 1, math.floor(fmax / df + 1e-9))
    k_end = k_hi + 1
    if k_end - k_lo < bands:
        raise InvalidEffectParams(
            f"{bands} bands need at least {bands} FFT bins between {fmin:g} and {fmax:g} Hz; "
            f"at {sr} Hz with fftSize {fft_size} there are {max(0, k_end - k_lo)}"
        )
    edges = np.empty(bands + 1, dtype=np.int64)
    edges[0] = k_lo
    for b in range(bands):
        remaining = bands - b
        e = int(edges[b])
        target = round(e * (k_end / e) ** (1.0 / remaining))
        edges[b + 1] = min(max(e + 1, target), k_end - remaining + 1)
    return edges


def analyser_bytes(
    mono: np.ndarray,
    *,
    sr: int,
    fps: int,
    fft_size: int,
    smoothing: float,
    min_db: float,
    max_db: float,
    k_stop: int,
) -> Iterator[np.ndarray]:
    """AnalyserNode ``getByteFrequencyData`` output polled at ``fps``, block by block.

    Parameters
    ----------
    mono : np.ndarray [shape=(n,)], float32, already down-mixed
    sr : int, Hz
    k_stop : bins ``0 .. k_stop - 1`` are produced (``<= fft_size // 2``)

    Yields
    ------
    np.ndarray [shape=(<=BLOCK_FRAMES, k_stop)], uint8; frames in order, ``n * fps // sr + 1`` in all
    """
    n = mono.shape[0]
    n_frames = n * fps // sr + 1
    padded = np.concatenate([np.zeros(fft_size, dtype=np.float32), mono])
    windows = np.lib.stride_tricks.sliding_window_view(padded, fft_size)
    # Window of frame i covers original samples [end_i - N, end_i): padded[end_i : end_i + N], with
    # end_i the render-quantum boundary at or after i / fps (exact integer ceil).
    ends = -(-(np.arange(n_frames, dtype=np.int64) * sr) // (fps * RENDER_QUANTUM)) * RENDER_QUANTUM
    ends = np.minimum(ends, n)
    win = blackman(fft_size)
    # (1 - tau) folded into the magnitude scale: X_i = tau * X_{i-1} + (1 - tau) * |X_i| / N.
    scale = np.float32((1.0 - smoothing) / fft_size)
    tau = np.float32(smoothing)
    # byte = floor(255/(max-min) * (20 log10 m - min)) = floor(a * log10 m + c)
    a = np.float32(255.0 * 20.0 / (max_db - min_db))
    c = np.float32(-255.0 * min_db / (max_db - min_db))
    tiny = np.float32(1e-30)  # 20 log10(1e-30) = -600 dB: byte 0, like log10(0) = -inf
    prev = np.zeros(k_stop, dtype=np.float32)  # the analyser's smoothed magnitudes, float like Chromium's
    for start in range(0, n_frames, BLOCK_FRAMES):
        block = windows[ends[start : start + BLOCK_FRAMES]]  # a copy (fancy indexing)
        block *= win
        spec = scipy.fft.rfft(block, axis=1, workers=1, overwrite_x=True)[:, :k_stop]
        mag = np.abs(spec)
        mag *= scale
        # The smoothing recursion runs along frames (a sequential dependency), vectorised over bins;
        # a plain loop in float32 is 4x faster than scipy.signal.lfilter here.
        for j in range(mag.shape[0]):
            prev *= tau
            prev += mag[j]
            mag[j] = prev
        level = np.log10(np.maximum(mag, tiny))
        level *= a
        level += c
        np.floor(level, out=level)
        np.clip(level, 0, 255, out=level)
        yield level.astype(np.uint8)


def band_levels(
    y: np.ndarray,
    *,
    sr: int,
    fps: int,
    bands: int,
    settings: EffectSettings | None = None,
) -> SpectrumFrames:
    """Per-frame band levels of ``y`` at ``fps`` frames per second.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float, native sample rate
    sr : int, Hz
    fps : int, frames per second (settings.min_fps..settings.max_fps)
    bands : int, number of log-spaced bands (settings.min_bands..settings.max_bands)
    settings : analyser parameters and band range; ``EffectSettings()`` when omitted

    Returns
    -------
    SpectrumFrames with ``levels`` uint8 [shape=(n * fps // sr + 1, bands)]

    Raises
    ------
    InvalidSignal, InvalidEffectParams
    """
    s = settings or EffectSettings()
    check_params(fps=fps, bands=bands, settings=s)
    channels = as_channels(y, sr=sr)
    mono = webaudio_mono(channels)
    edges = band_edges(sr=sr, fft_size=s.fft_size, bands=bands, fmin=s.band_min_hz, fmax=s.band_max_hz)
    k0, k_stop = int(edges[0]), int(edges[-1])
    starts = edges[:-1] - k0
    counts = np.diff(edges).astype(np.uint32)
    half = counts // 2
    out = []
    for block in analyser_bytes(
        mono,
        sr=sr,
        fps=fps,
        fft_size=s.fft_size,
        smoothing=s.smoothing,
        min_db=s.min_db,
        max_db=s.max_db,
        k_stop=k_stop,
    ):
        sums = np.add.reduceat(block[:, k0:].astype(np.uint32), starts, axis=1)
        out.append(((sums + half) // counts).astype(np.uint8))
    return SpectrumFrames(
        levels=np.concatenate(out, axis=0),
        edges_bin=edges,
        sample_rate=int(sr),
        fps=int(fps),
        fft_size=s.fft_size,
        smoothing=float(s.smoothing),
        min_db=float(s.min_db),
        max_db=float(s.max_db),
    )


def check_params(*, fps: object, bands: object, settings: EffectSettings) -> None:
    """Raise InvalidEffectParams unless ``fps`` and ``bands`` are integers in the served ranges."""
    for name, value, lo, hi in (
        ("fps", fps, settings.min_fps, settings.max_fps),
        ("bands", bands, settings.min_bands, settings.max_bands),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidEffectParams(f"{name} must be an integer", parameter=name)
        if not lo <= int(value) <= hi:
            raise InvalidEffectParams(f"{name} must be in {lo}..{hi}, got {value}", parameter=name)
