"""Side by side with FFmpeg's ebur128 filter (``ebur128=peak=true``) on varied signals and real
recordings: integrated loudness within 0.1 LU, loudness range within 0.5 LU, true peak within 0.3 dB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from checks_helpers import FFMPEG, ffmpeg_ebur128, music_like, tone_sequence, write_wav
from signals import chirp

from audio.checks import loudness

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed (.ci/run installs it)")


def _noise_steps(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Stereo noise in 2 s steps between -45 and -10 dBFS: exercises both gates and LRA."""
    sr = 48000
    levels = rng.uniform(-45, -10, 12)
    env = np.repeat(10 ** (levels / 20), 2 * sr)
    return (rng.standard_normal((2, env.size)) * env / 3).astype(np.float32), sr


def _music(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    return music_like(rng, sr=44100, seconds=30.0), 44100


def _chirp(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    return chirp(30.0, 20000.0, sr=44100, seconds=15.0, amp_dbfs=-12.0, channels=2), 44100


def _mono_speechlike(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Mono, 16 kHz, bursts of band-limited noise with pauses (mono weighting and gating)."""
    sr = 16000
    y = rng.standard_normal(20 * sr)
    env = np.repeat((rng.uniform(0, 1, 40) > 0.35) * rng.uniform(0.05, 0.5, 40), sr // 2)
    return (np.convolve(y, np.ones(8) / 8, "same") * env)[None, :].astype(np.float32), sr


def _hot_master(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Soft-clipped loud mix with inter-sample overs (true peak above the sample peak)."""
    y = music_like(rng, sr=48000, seconds=20.0) * 4.0
    return np.tanh(y).astype(np.float32), 48000


def _tones(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    return tone_sequence(
        [(-30.0, 5.0), (-18.0, 5.0), (-40.0, 5.0), (-24.0, 5.0)], sr=44100, freq=440.0
    ), 44100


SYNTHETIC: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, int]]] = {
    "noise_steps": _noise_steps,
    "music": _music,
    "chirp": _chirp,
    "mono_speechlike": _mono_speechlike,
    "hot_master": _hot_master,
    "tones": _tones,
}


def _compare(y: np.ndarray, sr: int, path: Path) -> None:
    ref = ffmpeg_ebur128(path)
    ours = loudness.loudness_stats(y, sr=sr)
    tp = loudness.true_peak(y, sr=sr)
    assert ours.integrated == pytest.approx(ref["I"], abs=0.1), (ours, ref)
    assert ours.range == pytest.approx(ref["LRA"], abs=0.5), (ours, ref)
    assert tp == pytest.approx(ref["TP"], abs=0.3), (tp, ref)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_matches_ffmpeg_on_synthetic_signals(name: str, rng: np.random.Generator, tmp_path: Path) -> None:
    y, sr = SYNTHETIC[name](rng)
    _compare(y, sr, write_wav(y, sr, tmp_path / f"{name}.wav"))


REAL = [
    "singing/mirdata_samples/vocadito/Audio/vocadito_1.wav",
    "singing/basic_pitch_vocadito/vocadito_14.wav",
    "speech/librispeech-train-clean-100-excerpts/103-1240-0000.flac",
]


@pytest.mark.parametrize("rel", REAL)
def test_matches_ffmpeg_on_real_recordings(rel: str, shared_data: Path) -> None:
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"{rel} not in the shared data")
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    _compare(np.ascontiguousarray(y.T), sr, path)
