"""Shared helpers for the recording-check tests: EBU test sequences, FFmpeg's ebur128 as a reference,
and small defect generators. Signals are float32 (channels, n), levels in peak dBFS per channel."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from signals import db_to_amp, tone

FFMPEG = shutil.which("ffmpeg")


def tone_sequence(
    parts: list[tuple[float, float]], *, sr: int = 48000, freq: float = 1000.0, channels: int = 2
) -> np.ndarray:
    """Back-to-back sine sections: ``parts`` = [(level dBFS, seconds), ...] (EBU Tech 3341/3342).

    The phase runs on across sections so the joins carry no clicks.
    """
    total = sum(int(round(s * sr)) for _, s in parts)
    t = np.arange(total, dtype=np.float64) / sr
    amp = np.concatenate([np.full(int(round(s * sr)), db_to_amp(level)) for level, s in parts])
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(y[None, :], channels, axis=0)


def true_peak_sine(sr: int, freq: float, phase_deg: float, amp: float, seconds: float = 2.0) -> np.ndarray:
    """EBU Tech 3341 true-peak case: stereo sine with a 20 ms raised-cosine fade at both ends."""
    n = np.arange(int(sr * seconds))
    y = amp * np.sin(2 * np.pi * freq * n / sr + np.deg2rad(phase_deg))
    ramp = np.minimum(1.0, np.minimum(n, n[::-1]) / (0.02 * sr))
    y = y * (0.5 - 0.5 * np.cos(np.pi * ramp))
    return np.repeat(y[None, :], 2, axis=0).astype(np.float32)


def ffmpeg_ebur128(path: str | Path) -> dict[str, float]:
    """FFmpeg's ebur128 summary for a file: I (LUFS), LRA (LU), TP (dBTP, 4x+ oversampled)."""
    if FFMPEG is None:
        raise RuntimeError("ffmpeg CLI not found")
    proc = subprocess.run(
        [
            FFMPEG,
            "-nostats",
            "-hide_banner",
            "-i",
            str(path),
            "-filter_complex",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = proc.stderr[proc.stderr.rindex("Summary:") :]

    def grab(label: str) -> float:
        m = re.search(rf"{label}:\s+(-?[\d.]+|-inf)", summary)
        if m is None:
            raise ValueError(f"no {label} in ffmpeg summary:\n{summary}")
        return float(m.group(1))

    return {"I": grab("I"), "LRA": grab("LRA"), "TP": grab("Peak")}


def write_wav(y: np.ndarray, sr: int, path: Path) -> Path:
    """Float WAV: exact, so FFmpeg and we read the same samples."""
    sf.write(path, y.T, sr, subtype="FLOAT")
    return path


def music_like(rng: np.random.Generator, *, sr: int, seconds: float, channels: int = 2) -> np.ndarray:
    """A crude song: kick and snare hits (human timing, +-4 ms), a bass line, chords and noisy hats,
    with a quieter bridge, slightly different left/right. Peak normalised to -1 dBFS."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    y = np.zeros((channels, n))
    beat = 0.5
    bass_notes = [55.0, 73.42, 65.41, 82.41]
    for k, start in enumerate(np.arange(0, seconds, beat)):
        i = min(max(int((start + rng.normal(0, 0.004)) * sr), 0), n - 1)
        seg = np.arange(min(int(0.3 * sr), n - i)) / sr
        kick = np.sin(2 * np.pi * (55 + 80 * np.exp(-seg * 30)) * seg) * np.exp(-seg * 12)
        y[:, i : i + len(seg)] += 0.8 * kick
        if k % 2 == 1:
            snare = rng.standard_normal(len(seg)) * np.exp(-seg * 25)
            y[:, i : i + len(seg)] += 0.3 * snare
        hat = rng.standard_normal(min(int(0.05 * sr), n - i)) * np.exp(
            -np.arange(min(int(0.05 * sr), n - i)) / sr * 80
        )
        y[:, i : i + len(hat)] += 0.1 * np.diff(np.concatenate(([0], hat)))
        f0 = bass_notes[(k // 8) % 4]
        y[:, i : i + len(seg)] += 0.3 * np.sin(2 * np.pi * f0 * seg) * np.exp(-seg * 3)
    chord = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((261.6, 0), (329.6, 1), (392.0, 2)))
    y[0] += 0.08 * chord
    y[-1] += 0.08 * np.roll(chord, int(0.01 * sr))
    # a quieter bridge gives the loudness range something to measure
    env = np.ones(n)
    a, b = int(n * 0.45), int(n * 0.6)
    env[a:b] = 0.25
    y *= env
    y /= np.abs(y).max() / db_to_amp(-1.0)
    return y.astype(np.float32)


def drum_loop(*, sr: int, seconds: float, kick_hz: float = 50.0, bpm: float = 120.0) -> np.ndarray:
    """A sample-exact drum-machine loop (stereo): its kick makes a comb of spectral lines every
    bpm/60 Hz, one of them right on 50 Hz; a hum detector must not call that hum."""
    n = int(sr * seconds)
    y = np.zeros(n)
    period = int(round(sr * 60.0 / bpm))
    seg = np.arange(int(0.4 * sr)) / sr
    kick = np.sin(2 * np.pi * (kick_hz + 60 * np.exp(-seg * 40)) * seg) * np.exp(-seg * 6)
    for i in range(0, n, period):
        m = min(len(kick), n - i)
        y[i : i + m] += 0.7 * kick[:m]
    return np.repeat(y[None, :], 2, axis=0).astype(np.float32)


__all__ = [
    "FFMPEG",
    "drum_loop",
    "ffmpeg_ebur128",
    "music_like",
    "tone",
    "tone_sequence",
    "true_peak_sine",
    "write_wav",
]
