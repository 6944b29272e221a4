"""Degradations applied to evaluation audio (both sides of every trial), at 16 kHz mono.

- ``clean``: unchanged.
- ``crop3``: a 3-second window at a seeded random offset (short-utterance condition).
- ``aac32-noise10``: pink noise at 10 dB SNR (over the whole clip), then an AAC-LC round trip at
  32 kbit/s (FFmpeg's native encoder through PyAV), as a noisy phone upload would arrive.
- ``tel8k``: telephone band: 300-3400 Hz band-pass, 8 kHz, G.711 mu-law, back to 16 kHz.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from audio.resample import resample

SR = 16000
CROP_S = 3.0
SNR_DB = 10.0
AAC_BIT_RATE = 32_000


def crop(y: np.ndarray, *, rng: np.random.Generator, seconds: float = CROP_S) -> np.ndarray:
    """A ``seconds`` window of ``y`` [shape=(n,)] at a random offset (all of ``y`` if shorter)."""
    n = int(round(seconds * SR))
    if len(y) <= n:
        return y
    start = int(rng.integers(0, len(y) - n + 1))
    return y[start : start + n]


def pink_noise(n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f power) Gaussian noise, float32, shape (n,)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


def add_noise(y: np.ndarray, *, rng: np.random.Generator, snr_db: float = SNR_DB) -> np.ndarray:
    """``y`` plus pink noise scaled to ``snr_db`` below the clip's mean power."""
    power = float(np.mean(y.astype(np.float64) ** 2))
    if power == 0.0:
        return y
    noise = pink_noise(len(y), rng=rng) * np.sqrt(power / 10 ** (snr_db / 10))
    out = y + noise
    peak = float(np.max(np.abs(out)))
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def aac_roundtrip(y: np.ndarray, *, bit_rate: int = AAC_BIT_RATE) -> np.ndarray:
    """Encode ``y`` [shape=(n,)] 16 kHz mono to AAC-LC (ADTS) at ``bit_rate`` and decode it back."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=SR, layout="mono")
        stream.bit_rate = bit_rate
        block = 1024 * 16
        for start in range(0, len(y), block):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(y[None, start : start + block], dtype=np.float32),
                format="fltp",
                layout="mono",
            )
            frame.sample_rate = SR
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r", format="adts") as inp:
        for frame in inp.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    decoded = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    # The encoder primes 1024 samples of delay; align and keep the original length.
    decoded = decoded[1024 : 1024 + len(y)]
    if len(decoded) < len(y):
        decoded = np.pad(decoded, (0, len(y) - len(decoded)))
    return decoded


def mulaw(y: np.ndarray, *, mu: int = 255) -> np.ndarray:
    """G.711-style mu-law companding to 8 bits and back."""
    y = np.clip(y, -1.0, 1.0)
    code = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    code = np.round((code + 1) / 2 * mu) / mu * 2 - 1  # 256 levels
    return (np.sign(code) * ((1 + mu) ** np.abs(code) - 1) / mu).astype(np.float32)


_TEL_SOS = sps.butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")


def telephone(y: np.ndarray) -> np.ndarray:
    """300-3400 Hz band-pass, down to 8 kHz, mu-law, back up to 16 kHz (length kept)."""
    band = sps.sosfilt(_TEL_SOS, y).astype(np.float32)
    narrow = mulaw(resample(band, orig_sr=SR, target_sr=8000))
    wide = resample(narrow, orig_sr=8000, target_sr=SR)
    return wide[: len(y)] if len(wide) >= len(y) else np.pad(wide, (0, len(y) - len(wide)))


CONDITIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "clean": lambda y, rng: y,
    "crop3": lambda y, rng: crop(y, rng=rng),
    "aac32-noise10": lambda y, rng: aac_roundtrip(add_noise(y, rng=rng)),
    "tel8k": lambda y, rng: telephone(y),
}


def apply(condition: str, y: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Apply a named condition to 16 kHz mono float32 ``y``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return np.ascontiguousarray(CONDITIONS[condition](y, rng), dtype=np.float32)
