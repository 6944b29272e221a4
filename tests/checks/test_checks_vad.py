"""Voice activity: the spectral detector against silero-vad on real speech, negatives, inputs."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from signals import tone, white_noise

from audio.checks import report_check, report_value, run_checks
from audio.checks.vad import speech_duration, speech_segments
from audio.errors import EmptyAudio, InvalidSampleRate, InvalidSignal
from core.errors import InvalidRequest

SPEECH = "speech/librispeech-train-clean-100-excerpts"


def _frames(segments: list[tuple[float, float]], duration: float) -> np.ndarray:
    m = np.zeros(int(duration * 100) + 1, bool)
    for s, e in segments:
        m[int(s * 100) : int(e * 100)] = True
    return m


def _load(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(path, dtype="float32")
    return y, sr


@pytest.fixture(scope="module")
def speech_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / SPEECH).glob("*.flac"))
    if len(files) < 6:
        pytest.skip("LibriSpeech excerpts not in the shared data")
    return files[:6]  # held out from tuning (which used excerpts 40-79)


def test_agrees_with_silero_on_real_speech(speech_files: list[Path]) -> None:
    pytest.importorskip("silero_vad")
    agree = total = 0
    for path in speech_files:
        y, sr = _load(path)  # 16 kHz mono, 1-D
        ours = speech_segments(y, sr=sr)
        ref = speech_segments(y, sr=sr, backend="silero")
        a, b = _frames(ours, len(y) / sr), _frames(ref, len(y) / sr)
        agree += int((a == b).sum())
        total += len(a)
        assert ours and all(0.0 <= s < e <= len(y) / sr + 1e-6 for s, e in ours)
        assert all(ours[i][1] < ours[i + 1][0] for i in range(len(ours) - 1))  # sorted, disjoint
    assert agree / total >= 0.9


def test_speech_with_noise_is_still_found(speech_files: list[Path], rng: np.random.Generator) -> None:
    y, sr = _load(speech_files[0])
    clean = speech_duration(speech_segments(y, sr=sr))
    noise = rng.standard_normal(len(y)) * np.sqrt(np.mean(y.astype(np.float64) ** 2) / 10)  # 10 dB SNR
    noisy = speech_duration(speech_segments((y + noise).astype(np.float32), sr=sr))
    assert noisy >= 0.8 * clean


@pytest.mark.parametrize("name", ["white", "brown", "hum", "silence"])
def test_no_voice_in_noise(name: str, rng: np.random.Generator) -> None:
    sr = 16000
    y = {
        "white": lambda: white_noise(rng, sr=sr, seconds=10.0, amp_dbfs=-20.0)[0],
        "brown": lambda: np.cumsum(rng.standard_normal(10 * sr)).astype(np.float32) * 1e-3,
        "hum": lambda: (
            tone(50.0, sr=sr, seconds=10.0, amp_dbfs=-30.0)[0]
            + white_noise(rng, sr=sr, seconds=10.0, amp_dbfs=-60.0)[0]
        ),
        "silence": lambda: np.zeros(10 * sr, np.float32),
    }[name]()
    found = speech_duration(speech_segments(y - y.mean(), sr=sr))
    if name == "brown":  # a random walk's band level jumps; a short false segment can slip through
        assert found <= 0.05 * 10.0
    else:
        assert found == 0.0


def test_rates_and_layouts_agree(speech_files: list[Path]) -> None:
    """16 kHz mono, the same at 44.1 kHz, and as dual-mono stereo give the same segments (+-40 ms)."""
    from audio.resample import resample

    y, sr = _load(speech_files[1])
    base = speech_segments(y, sr=sr)
    up = resample(y[None, :], orig_sr=sr, target_sr=44100)
    for other in (speech_segments(up, sr=44100), speech_segments(np.repeat(up, 2, axis=0), sr=44100)):
        assert len(other) == len(base)
        for (s0, e0), (s1, e1) in zip(base, other, strict=True):
            assert abs(s0 - s1) <= 0.04 and abs(e0 - e1) <= 0.04


@pytest.mark.parametrize(
    ("y", "sr", "backend", "expect"),
    [
        (np.zeros(16000, np.float32), 16000, "spectral", nullcontext()),
        (np.zeros(100, np.float32), 16000, "spectral", nullcontext()),  # shorter than one frame
        (np.full(16000, np.nan, np.float32), 16000, "spectral", pytest.raises(InvalidSignal)),
        (np.zeros((2, 2, 10), np.float32), 16000, "spectral", pytest.raises(InvalidSignal)),
        (np.zeros(0, np.float32), 16000, "spectral", pytest.raises(EmptyAudio)),
        (np.zeros(16000, np.float32), 0, "spectral", pytest.raises(InvalidSampleRate)),
        (np.zeros(16000, np.float32), 16000, "webrtc", pytest.raises(InvalidRequest)),
    ],
)
def test_inputs(y: np.ndarray, sr: int, backend: str, expect: AbstractContextManager[Any]) -> None:
    with expect:
        assert speech_segments(y, sr=sr, backend=backend) == []


def test_vocal_activity_in_the_report(speech_files: list[Path], rng: np.random.Generator) -> None:
    y, sr = _load(speech_files[2])
    report = run_checks(y, sr=sr, kind="vocal")
    share = report_value(report, "vocal.activity")
    assert 0.5 <= share <= 1.0 and report_check(report, "vocal.activity")["verdict"] == "pass"
    assert report_value(report, "vocal.active_duration") == pytest.approx(share * len(y) / sr, abs=0.01)
    noise = run_checks(white_noise(rng, sr=sr, seconds=5.0, amp_dbfs=-20.0), sr=sr, kind="vocal")
    assert report_value(noise, "vocal.activity") == 0.0
    assert report_check(noise, "vocal.activity")["verdict"] == "fail"
