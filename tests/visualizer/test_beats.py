"""Beats on synthetic click tracks (60-180 BPM: tempo within 1 BPM, beats within 20 ms), robustness
to noise, silence and very short input, and the default artifacts computed on upload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from effects import compute_default_artifacts, frames_format, waveform
from effects.artifacts import BEATS, SPECTRUM, WAVEFORM_DAT
from effects.beats import beats, to_json_dict
from effects.config import EffectSettings


def click_track(bpm: float, *, sr: int = 44100, seconds: float = 30.0, offset: float = 0.5,
                rng: np.random.Generator | None = None, noise_dbfs: float | None = None,
                channels: int = 1) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Clicks (20 ms decaying 1.5 kHz bursts) at ``offset + k * 60 / bpm``; returns (y, click times)."""
    n = int(sr * seconds)
    times = np.arange(offset, seconds - 0.1, 60.0 / bpm)
    y = np.zeros(n)
    k = np.arange(int(0.02 * sr))
    burst = np.sin(2 * np.pi * 1500 * k / sr) * np.exp(-k / (0.004 * sr))
    for t in times:
        start = int(round(t * sr))
        y[start : start + burst.size] += 0.5 * burst[: n - start]
    if noise_dbfs is not None and rng is not None:
        y += rng.standard_normal(n) * 10 ** (noise_dbfs / 20)
    return np.tile(y.astype(np.float32), (channels, 1)), times


def _errors(detected: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(worst distance of a detected beat to its nearest click, fraction of clicks found within 20 ms)."""
    worst = float(np.abs(detected[:, None] - truth[None, :]).min(axis=1).max())
    found = float((np.abs(truth[:, None] - detected[None, :]).min(axis=1) <= 0.02).mean())
    return worst, found


@pytest.mark.parametrize("bpm", [60, 72, 87.5, 100, 118, 128, 140, 155.3, 166, 180])
def test_click_tracks_tempo_and_beats(bpm: float) -> None:
    y, truth = click_track(bpm, offset=0.5 + 0.013 * bpm / 60)
    info = beats(y, sr=44100)
    assert info.tempo_bpm is not None and abs(info.tempo_bpm - bpm) <= 1.0, info.tempo_bpm
    worst, found = _errors(info.beats_s, truth)
    assert worst <= 0.020, worst
    assert found >= 0.95, found
    assert np.all(np.diff(info.beats_s) > 0)


@pytest.mark.parametrize(("bpm", "sr"), [(96, 48000), (174, 22050), (63, 16000)])
def test_click_tracks_other_rates_with_noise(rng: np.random.Generator, bpm: float, sr: int) -> None:
    y, truth = click_track(bpm, sr=sr, rng=rng, noise_dbfs=-40, channels=2, seconds=20)
    info = beats(y, sr=sr)
    assert info.tempo_bpm is not None and abs(info.tempo_bpm - bpm) <= 1.0
    worst, found = _errors(info.beats_s, truth)
    assert worst <= 0.020 and found >= 0.9


def test_silence_and_short_input_have_no_beats() -> None:
    silent = beats(np.zeros((2, 44100 * 5), np.float32), sr=44100)
    assert silent.tempo_bpm is None and silent.beats_s.size == 0
    assert silent.onset_envelope.max() == 0
    short, _ = click_track(120, seconds=1.0, offset=0.1)
    info = beats(short, sr=44100)
    assert info.tempo_bpm is None and info.beats_s.size == 0 and info.onset_envelope.size > 0


def test_json_shape() -> None:
    y, _ = click_track(120, seconds=10)
    body = to_json_dict(beats(y, sr=44100))
    assert set(body) == {"version", "tempo_bpm", "beats_s", "onset_envelope"}
    env = body["onset_envelope"]
    assert env["frame_rate_hz"] == pytest.approx(11025 / 256)
    assert len(env["values"]) == 1 + (10 * 11025) // 256
    assert max(env["values"]) == 1.0 and min(env["values"]) >= 0.0
    assert body["beats_s"] == sorted(body["beats_s"])


def test_default_artifacts(rng: np.random.Generator) -> None:
    y, _ = click_track(120, seconds=6, channels=2)
    arts = compute_default_artifacts(y, sr=44100)
    assert [a.kind for a in arts] == [SPECTRUM, WAVEFORM_DAT, BEATS]
    frames = frames_format.decode(arts[0].data)
    assert (frames.fps, frames.bands) == (30, 64) and arts[0].media_type == frames_format.MEDIA_TYPE
    wf, bits = waveform.decode_dat(arts[1].data)
    assert (wf.samples_per_pixel, wf.channels, bits) == (256, 2, 16) and arts[1].data[
        :4
    ] == b"\x02\x00\x00\x00"
    assert json.loads(arts[2].data)["tempo_bpm"] == pytest.approx(120, abs=1)
    again = compute_default_artifacts(y, sr=44100, settings=EffectSettings())
    assert [a.data for a in again] == [a.data for a in arts]  # deterministic: ETags are stable
    assert [a.etag for a in again] == [a.etag for a in arts]
    assert len({a.params_key for a in arts}) == 3
    other = compute_default_artifacts(y, sr=44100, settings=EffectSettings(smoothing=0.5))
    assert other[0].params_key != arts[0].params_key  # settings that change bytes change the key
    assert other[1].params_key == arts[1].params_key


def test_music_like_signal(rng: np.random.Generator) -> None:
    """A kick at 120 BPM under a chord, noise and a sweep: the tempo and a beat grid come out."""
    t = np.arange(44100 * 20) / 44100
    phase = (t % 0.5) / 0.5
    kick = 0.5 * np.exp(-phase * 12) * np.sin(2 * np.pi * (60 + 60 * np.exp(-phase * 20)) * t)
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    y = (kick + chord + 0.03 * rng.standard_normal(t.size)).astype(np.float32)
    info = beats(y, sr=44100)
    assert info.tempo_bpm is not None and abs(info.tempo_bpm - 120) <= 2
    assert len(info.beats_s) >= 30
    assert np.median(np.abs(info.beats_s - np.round(info.beats_s * 2) / 2)) <= 0.05
