"""Synthetic voices and a deterministic spectral embedder implementing the SpeakerEmbedder protocol,
so the service can be tested end to end without the real model.

A *voice* is a glottal pulse train at a speaker's pitch through the speaker's formant resonators
(vowel-like), spoken in syllables separated by short pauses. The *embedder* averages the log power
spectrum of its input over frames, pools it into log-spaced bands, removes the mean level and
projects it with a fixed seeded matrix: different formants and pitch give different vectors; two
utterances of one voice (different jitter, syllable timing, noise, level) give close ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.signal import lfilter

from audio.errors import InvalidSampleRate
from voiceprint.errors import TooLittleSpeech

SR = 16000
MODEL_ID = "fake-spectral@1"


@dataclasses.dataclass(frozen=True)
class Voice:
    f0: float
    formants: tuple[float, float, float]
    bandwidths: tuple[float, float, float] = (80.0, 110.0, 160.0)


def random_voice(rng: np.random.Generator) -> Voice:
    return Voice(
        f0=float(rng.uniform(90, 240)),
        formants=(
            float(rng.uniform(300, 900)),
            float(rng.uniform(950, 2400)),
            float(rng.uniform(2500, 3600)),
        ),
    )


def speak(
    voice: Voice,
    rng: np.random.Generator,
    *,
    seconds: float = 4.0,
    snr_db: float = 40.0,
    peak: float = 0.5,
    pause_s: float = 0.12,
) -> np.ndarray:
    """An utterance of ``voice``: float32 (n,) at 16 kHz, syllables of 0.2-0.4 s with pauses."""
    n = int(seconds * SR)
    y = np.zeros(n)
    t = 0
    while t < n:
        syl = int(rng.uniform(0.2, 0.4) * SR)
        f0 = voice.f0 * rng.uniform(0.95, 1.05)
        period = SR / f0
        pulses = np.zeros(min(syl, n - t))
        pos = rng.uniform(0, period)
        while pos < pulses.size:
            pulses[int(pos)] = 1.0
            pos += period * rng.uniform(0.98, 1.02)  # jitter
        sig = pulses
        for f, bw in zip(voice.formants, voice.bandwidths, strict=False):
            r = np.exp(-np.pi * bw / SR)
            sig = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], sig)
        env = np.hanning(sig.size) ** 0.5
        y[t : t + sig.size] = sig * env * rng.uniform(0.7, 1.0)
        t += syl + int(pause_s * SR)
    y = y / (np.max(np.abs(y)) + 1e-12) * peak
    noise_rms = np.sqrt(np.mean(y[y != 0] ** 2)) * 10 ** (-snr_db / 20)
    y = y + rng.standard_normal(n) * noise_rms
    return y.astype(np.float32)


class FakeEmbedder:
    """Deterministic spectral-envelope embedder (SpeakerEmbedder protocol)."""

    sample_rate = SR
    dimension = 32
    min_duration_s = 1.0
    model_id = MODEL_ID
    n_fft = 512
    n_bands = 40

    def __init__(self, model_id: str = MODEL_ID, seed: int = 7) -> None:
        self.model_id = model_id
        rng = np.random.default_rng(seed)
        self._proj = rng.standard_normal((self.n_bands, self.dimension)) / np.sqrt(self.n_bands)
        mel = np.linspace(2595 * np.log10(1 + 100 / 700), 2595 * np.log10(1 + 7600 / 700), self.n_bands + 1)
        edges = 700 * (10 ** (mel / 2595) - 1)  # mel-spaced: every band holds FFT bins
        freqs = np.fft.rfftfreq(self.n_fft, 1 / SR)
        self._bands = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
        self.calls = 0

    def embed(self, y: np.ndarray, *, sr: int) -> np.ndarray:
        if sr != SR:
            raise InvalidSampleRate(f"needs {SR} Hz")
        y = np.asarray(y, dtype=np.float32)
        if y.size / SR < self.min_duration_s:
            raise TooLittleSpeech(
                f"{y.size / SR:.2f} s of speech",
                speech_s=round(y.size / SR, 3),
                min_speech_s=self.min_duration_s,
            )
        self.calls += 1
        frames = y[: (y.size // self.n_fft) * self.n_fft].reshape(-1, self.n_fft) * np.hanning(self.n_fft)
        power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
        bands = np.log(np.array([power[m].mean() + 1e-10 for m in self._bands]))
        idx = np.arange(self.n_bands)
        bands = bands - np.polyval(np.polyfit(idx, bands, 2), idx)  # drop level and tilt: keep formants
        v = bands @ self._proj
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed_batch(self, ys, *, sr):  # type: ignore[no-untyped-def]
        return np.stack([self.embed(y, sr=sr) for y in ys])
