"""Voice activity: where someone speaks or sings.

Two backends:

- ``spectral`` (default): a harmonicity + energy detector, ~25 ms of CPU per minute of audio.
  The mono mix is resampled to 8 kHz (soxr); every 20 ms a 32 ms Hann frame gives
  (a) its level in the 200-3500 Hz band and (b) its voicing, the highest normalised
  autocorrelation at pitch lags 0.75-12.5 ms (80-1333 Hz, speech and singing), computed from the
  band-limited power spectrum and corrected for the window. A frame is voiced when its band level
  is at least ``VOICED_DB`` above the file's noise floor (10th percentile of band levels) and
  above ``ABS_FLOOR_DBFS``, and its voicing is at least ``VOICING``. Segments are then smoothed
  like silero's defaults: gaps shorter than ``MIN_GAP_S`` are bridged (this takes in unvoiced
  consonants), segments shorter than ``MIN_SPEECH_S`` dropped, and ``PAD_S`` added on both sides.
  Limits: pitched music (a backing track bleeding into the microphone) is voiced too.
- ``silero``: silero-vad (weights ship in its wheel, loaded once, offline); ~30x slower on CPU
  and pulls in torch, so it is the reference the spectral detector is evaluated against
  (``python benchmarks/checks.py --vad-eval``; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.fft
import soxr

from audio.checks.scan import Accumulator
from audio.checks.validate import as_signal
from core.errors import InvalidRequest

VAD_RATE = 8000
FRAME = 256  # 32 ms
HOP = 160  # 20 ms
NFFT = 512  # zero-padded so the autocorrelation is linear up to FRAME lags
BAND_HZ = (200.0, 3500.0)
LAG_RANGE = (6, 100)  # samples at 8 kHz: 0.75-12.5 ms
# Tuned on LibriSpeech excerpts 40-79 of ../shared/data (clean, white noise 10 / 0 dB, pink 5 dB)
# against silero-vad, subject to no voice found in 20 s of white or brown noise; reported on
# excerpts 0-39 (docs/benchmarks.md). A lower VOICING (0.25) agrees more under noise but calls
# brown noise voice.
VOICED_DB = 2.0
VOICING = 0.35
ABS_FLOOR_DBFS = -55.0
MIN_GAP_S = 0.3
MIN_SPEECH_S = 0.25
PAD_S = 0.03
CHUNK_FRAMES = 1024  # frames per FFT batch: ~8 MB of temporaries
NOISE_FRAMES = 2000
NOISE_PERCENTILE = 20.0
WHITEN_FLOOR = 1e-3  # x mean in-band noise power: digital silence must not divide by zero
STREAM_BLOCK = 1 << 20

BACKENDS = ("spectral", "silero")


@functools.lru_cache(maxsize=1)
def _window_terms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    window = np.hanning(FRAME).astype(np.float32)
    spec = np.fft.rfft(window, NFFT)
    wacf = np.fft.irfft(np.abs(spec) ** 2, NFFT)[: LAG_RANGE[1] + 1]
    freqs = np.fft.rfftfreq(NFFT, 1.0 / VAD_RATE)
    band = ((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])).astype(np.float32)
    return window, (wacf / wacf[0]).astype(np.float32), band


def frame_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band level (dB re full scale) and voicing ([0, 1]) of each 20 ms hop of 8 kHz mono ``x``.

    Voicing is the autocorrelation peak of the frame's spectrum *whitened by the file's noise
    spectrum* (per-bin 20th percentile over frames): stationary coloured noise (hum-free room
    tone, brown noise, fans) then has a flat spectrum and no autocorrelation peak, while speech
    and singing keep their harmonics.

    Returns
    -------
    level_db, voicing : float64 [shape=(k,)]; frame j starts at ``j * 0.02`` s
    """
    window, wacf, band = _window_terms()
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    wsum = float((window.astype(np.float64) ** 2).sum())
    lo, hi = LAG_RANGE
    # noise spectrum from up to NOISE_FRAMES frames spread over the file
    pick = np.unique(np.linspace(0, len(frames) - 1, min(NOISE_FRAMES, len(frames))).astype(int))
    sample = scipy.fft.rfft(frames[pick] * window, NFFT, axis=1)
    noise = np.percentile(sample.real**2 + sample.imag**2, NOISE_PERCENTILE, axis=0)
    inband = noise[band > 0]
    floor = max(float(inband.mean()) * WHITEN_FLOOR, 1e-20) if inband.size else 1e-20
    whiten = (band / (noise + floor)).astype(np.float32)
    levels = np.empty(len(frames))
    voicing = np.empty(len(frames))
    for s in range(0, len(frames), CHUNK_FRAMES):
        block = frames[s : s + CHUNK_FRAMES] * window
        spec = scipy.fft.rfft(block, NFFT, axis=1)
        power = spec.real**2 + spec.imag**2
        energy = (power * band).sum(axis=1)
        with np.errstate(divide="ignore"):
            levels[s : s + len(block)] = 10.0 * np.log10(2.0 * energy / (wsum * NFFT))
        acf = scipy.fft.irfft(power * whiten, NFFT, axis=1)[:, : hi + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = acf[:, lo : hi + 1] / (acf[:, :1] * wacf[lo : hi + 1])
        voicing[s : s + len(block)] = np.nan_to_num(norm.max(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    return levels, np.clip(voicing, 0.0, 1.0)


def activity_mask(levels: np.ndarray, voicing: np.ndarray) -> np.ndarray:
    """Raw per-hop decision (before segment smoothing), bool [shape=(k,)]."""
    finite = levels[np.isfinite(levels)]
    if finite.size == 0:
        return np.zeros(len(levels), bool)
    floor = float(np.percentile(finite, 10))
    return (levels > ABS_FLOOR_DBFS) & (levels - floor >= VOICED_DB) & (voicing >= VOICING)


def mask_to_segments(mask: np.ndarray, *, hop_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Bridge short gaps, drop short segments, pad; times in seconds."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1) * hop_s
    ends = np.flatnonzero(edges == -1) * hop_s
    segs: list[list[float]] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if segs and s - segs[-1][1] < MIN_GAP_S:
            segs[-1][1] = e
        else:
            segs.append([s, e])
    out: list[tuple[float, float]] = []
    for s, e in segs:
        if e - s < MIN_SPEECH_S:
            continue
        s, e = max(0.0, s - PAD_S), min(duration_s, e + PAD_S)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return [(round(s, 3), round(e, 3)) for s, e in out]


def _spectral_8k(x: np.ndarray, *, duration_s: float) -> list[tuple[float, float]]:
    levels, voicing = frame_features(x)
    mask = activity_mask(levels, voicing)
    # hop j covers [j*HOP, j*HOP + FRAME): mark its centre hop
    return mask_to_segments(mask, hop_s=HOP / VAD_RATE, duration_s=duration_s)


@functools.lru_cache(maxsize=1)
def _silero_model() -> Any:
    import torch
    from silero_vad import load_silero_vad

    torch.set_num_threads(1)
    return load_silero_vad()


def _silero_16k(x: np.ndarray) -> list[tuple[float, float]]:
    import torch
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        _silero_model(),
        sampling_rate=16000,
        return_seconds=False,
    )
    return [(round(s["start"] / 16000, 3), round(s["end"] / 16000, 3)) for s in stamps]


def speech_segments(y: np.ndarray, *, sr: int, backend: str = "spectral") -> list[tuple[float, float]]:
    """Voiced segments of ``y``.

    Parameters
    ----------
    y : np.ndarray [shape=(channels, n) or (n,)], float, any rate from 8 kHz (16 kHz mono works
        as is)
    sr : sample rate, Hz
    backend : "spectral" (default, fast) or "silero"

    Returns
    -------
    list of (start_s, end_s), sorted, non-overlapping, seconds from the start of ``y``

    Raises
    ------
    InvalidSignal, EmptyAudio, InvalidSampleRate, InvalidRequest (unknown backend)
    """
    if backend not in BACKENDS:
        raise InvalidRequest(f"unknown VAD backend {backend!r}; expected one of {BACKENDS}")
    y, sr = as_signal(y, sr=sr)
    feed = VadFeed(sr=sr, backend=backend, expected=y.shape[1])
    for s in range(0, y.shape[1], STREAM_BLOCK):  # the mono mix is made a block at a time
        feed.feed(y[:, s : s + STREAM_BLOCK])
    return feed.segments()


def speech_duration(segments: list[tuple[float, float]]) -> float:
    """Total seconds covered by ``segments``."""
    return float(sum(e - s for s, e in segments))


class VadFeed:
    """The VAD's input collected block by block: the mono mix resampled as it arrives (soxr
    stream), so only the low-rate mono is held (8 kHz: 1.9 MB a minute), never the full signal.

    Parameters
    ----------
    sr : rate of the blocks, Hz
    backend : "spectral" or "silero"
    expected : samples expected in all at ``sr`` (a header's claim; 0: unknown)
    """

    def __init__(self, *, sr: int, backend: str = "spectral", expected: int = 0) -> None:
        if backend not in BACKENDS:
            raise InvalidRequest(f"unknown VAD backend {backend!r}; expected one of {BACKENDS}")
        self.sr, self.backend = sr, backend
        self.rate = VAD_RATE if backend == "spectral" else 16000
        quality = "MQ" if backend == "spectral" else "HQ"
        self._stream = (
            soxr.ResampleStream(sr, self.rate, 1, dtype="float32", quality=quality)
            if sr != self.rate
            else None
        )
        self._mono = Accumulator(int(expected * self.rate / sr) + 64 if expected > 0 else 0)
        self._n = 0

    def feed(self, x: np.ndarray) -> None:
        """x: float32 [shape=(C, m)] at ``sr``."""
        mono = x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0]
        self._n += x.shape[1]
        self._mono.append(mono if self._stream is None else self._stream.resample_chunk(mono))

    def segments(self) -> list[tuple[float, float]]:
        """Voiced segments of everything fed (call once, after the last block)."""
        if self._stream is not None:
            self._mono.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        x = self._mono.result()
        if self.backend == "silero":
            return _silero_16k(x)
        return _spectral_8k(x, duration_s=self._n / self.sr)
