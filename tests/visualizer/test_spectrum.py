"""Spectrum frames against a direct float64 transcription of the Web Audio AnalyserNode definition,
plus band edges, timing, smoothing, levels of known signals and input validation."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from effects.config import EffectSettings
from effects.errors import InvalidEffectParams, InvalidSignal
from effects.signal import webaudio_mono
from effects.spectrum import analyser_bytes, band_edges, band_levels, blackman


def reference_bins(y: np.ndarray, *, sr: int, fps: int, n_fft: int = 2048, tau: float = 0.8) -> np.ndarray:
    """getByteFrequencyData polled at i / fps, written out literally (float64, one frame at a time)."""
    mono = y.astype(np.float64).mean(axis=0) if y.shape[0] == 2 else y[0].astype(np.float64)
    n = mono.size
    n_frames = n * fps // sr + 1
    i = np.arange(n_fft)
    window = 0.42 - 0.5 * np.cos(2 * np.pi * i / n_fft) + 0.08 * np.cos(4 * np.pi * i / n_fft)
    prev = np.zeros(n_fft // 2)
    out = np.empty((n_frames, n_fft // 2))
    for f in range(n_frames):
        end = min(n, int(np.ceil(f * sr / fps / 128)) * 128)
        seg = np.zeros(n_fft)
        start = end - n_fft
        seg[max(0, -start) :] = mono[max(0, start) : end]
        mag = np.abs(np.fft.rfft(seg * window))[: n_fft // 2] / n_fft
        prev = tau * prev + (1 - tau) * mag
        with np.errstate(divide="ignore"):
            db = 20 * np.log10(prev)
        out[f] = np.clip(np.floor(255 / 70 * (db + 100)), 0, 255)
    return out


def _bins(y: np.ndarray, *, sr: int, fps: int) -> np.ndarray:
    return np.concatenate(list(analyser_bytes(
        webaudio_mono(y), sr=sr, fps=fps, fft_size=2048, smoothing=0.8, min_db=-100, max_db=-30, k_stop=1024,
    )))  # fmt: skip


@pytest.mark.parametrize(("sr", "fps"), [(44100, 30), (48000, 60), (22050, 24), (8000, 1)])
def test_bins_match_literal_reference(rng: np.random.Generator, sr: int, fps: int) -> None:
    t = np.arange(int(sr * 2.3)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.5), 0.05 * rng.standard_normal(t.size)]).astype(
        np.float32
    )
    ours = _bins(y, sr=sr, fps=fps)
    ref = reference_bins(y, sr=sr, fps=fps)
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float32 vs float64 at a floor() boundary, at most


def test_band_levels_are_rounded_means_of_bins(rng: np.random.Generator) -> None:
    sr = 44100
    y = (0.1 * rng.standard_normal((1, sr * 2))).astype(np.float32)
    frames = band_levels(y, sr=sr, fps=30, bands=64)
    ref = reference_bins(y, sr=sr, fps=30)
    e = frames.edges_bin
    expect = np.stack([np.floor((ref[:, e[b]:e[b + 1]].sum(1) + (e[b + 1] - e[b]) // 2) / (e[b + 1] - e[b]))
                       for b in range(64)], axis=1)  # fmt: skip
    assert frames.levels.dtype == np.uint8 and frames.levels.shape == (61, 64)
    assert np.abs(frames.levels.astype(int) - expect).max() <= 1


def test_known_level_of_a_sine_at_a_bin_centre() -> None:
    """A -40 dBFS sine on bin 32 reads 20 log10(0.01 * 0.42 / 2) = -53.56 dB: byte 169 (steady state)."""
    sr, k = 48000, 32
    t = np.arange(sr * 3) / sr
    y = (0.01 * np.sin(2 * np.pi * k * sr / 2048 * t)).astype(np.float32)[None, :]
    bins = _bins(y, sr=sr, fps=30)
    assert bins[-1, k] == 169
    assert bins[-1, k + 8] < 20  # Blackman sidelobes are far down


def test_frame_i_describes_time_i_over_fps() -> None:
    """Frame 30 (t = 1.0 s) analyses the 2048 samples ending at the render quantum boundary at or
    after 44,100: 345 * 128 = 44,160. An impulse at its window centre shows in frame 30, not 29."""
    sr = 44100
    y = np.zeros((1, sr * 2), dtype=np.float32)
    y[0, 44160 - 1024] = 1.0
    levels = band_levels(y, sr=sr, fps=30, bands=32).levels
    assert levels[:30].max() == 0
    # flat spectrum: (1 - tau) * w[1024] / N = 0.2 * 1.0 / 2048 = -80.2 dB: byte floor(255/70 * 19.8) = 72
    assert set(np.unique(levels[30])) == {72}


def test_smoothing_decays_by_tau_per_frame() -> None:
    """After the tone stops, magnitude falls by 0.8 per frame: 20 log10(0.8) = -1.94 dB = 7.07 levels."""
    sr = 48000
    t = np.arange(sr * 2) / sr
    y = (0.01 * np.sin(2 * np.pi * 32 * sr / 2048 * t) * (t < 1.0)).astype(np.float32)[None, :]
    col = _bins(y, sr=sr, fps=30)[:, 32].astype(int)
    steps = -np.diff(col[33:45])  # the analysis window has fully left the tone from frame 32 on
    assert np.all((steps >= 6) & (steps <= 8)), col[28:45]


def test_silence_and_cancelling_stereo_are_zero() -> None:
    sr = 22050
    x = np.sin(np.arange(sr) * 0.3).astype(np.float32)
    assert band_levels(np.zeros((2, sr), np.float32), sr=sr, fps=30, bands=64).levels.max() == 0
    assert band_levels(np.stack([x, -x]), sr=sr, fps=30, bands=64).levels.max() == 0  # 0.5 (L + R)


def test_four_minutes_fit_in_500_kb(rng: np.random.Generator) -> None:
    from effects import frames_format

    sr = 22050  # the byte size does not depend on the rate
    y = (0.1 * rng.standard_normal((1, sr * 240))).astype(np.float32)
    data = frames_format.encode(band_levels(y, sr=sr, fps=30, bands=64))
    assert len(data) <= 500_000
    assert len(data) == 7201 * 64 + 432


@settings(max_examples=60, deadline=None)
@given(
    sr=st.sampled_from([8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]),
    bands=st.integers(8, 128),
)
def test_band_edges_are_valid(sr: int, bands: int) -> None:
    edges = band_edges(sr=sr, fft_size=2048, bands=bands, fmin=40.0, fmax=16000.0)
    df = sr / 2048
    assert edges.shape == (bands + 1,)
    assert np.all(np.diff(edges) >= 1)
    assert edges[0] == max(1, int(np.ceil(40 / df)))
    assert edges[-1] == min(1023, int(np.floor(min(16000, sr / 2) / df))) + 1
    widths = np.diff(edges)
    assert np.all(np.diff(widths[widths > 1]) >= -1)  # log spacing: widths grow (up to rounding)


def test_band_edges_refuses_too_many_bands() -> None:
    with pytest.raises(InvalidEffectParams):
        band_edges(sr=44100, fft_size=2048, bands=100, fmin=1000, fmax=2000)


def test_blackman_is_the_periodic_window() -> None:
    w = blackman(2048)
    assert w[0] == pytest.approx(0.0, abs=1e-7) and w[1024] == pytest.approx(1.0)
    assert w.dtype == np.float32 and w[1] == pytest.approx(w[-1])


OK = nullcontext()


@pytest.mark.parametrize(
    ("y", "sr", "fps", "bands", "expect"),
    [
        (np.zeros((1, 4000), np.float32), 8000, 30, 64, OK),
        (np.zeros(4000, np.float64), 8000, 30, 64, OK),
        (np.zeros((1, 4000), np.int16), 8000, 30, 64, pytest.raises(InvalidSignal)),
        (np.zeros((1, 1, 4000), np.float32), 8000, 30, 64, pytest.raises(InvalidSignal)),
        (np.zeros((1, 0), np.float32), 8000, 30, 64, pytest.raises(InvalidSignal)),
        (np.full((1, 4000), np.nan, np.float32), 8000, 30, 64, pytest.raises(InvalidSignal)),
        (np.zeros((1, 4000), np.float32), 1000, 30, 64, pytest.raises(InvalidSignal)),
        (np.zeros((1, 4000), np.float32), 44100.0, 30, 64, pytest.raises(InvalidSignal)),
        (np.zeros((1, 4000), np.float32), 8000, 0, 64, pytest.raises(InvalidEffectParams)),
        (np.zeros((1, 4000), np.float32), 8000, 61, 64, pytest.raises(InvalidEffectParams)),
        (np.zeros((1, 4000), np.float32), 8000, True, 64, pytest.raises(InvalidEffectParams)),
        (np.zeros((1, 4000), np.float32), 8000, 30, 7, pytest.raises(InvalidEffectParams)),
        (np.zeros((1, 4000), np.float32), 8000, 30, 129, pytest.raises(InvalidEffectParams)),
    ],
)
def test_input_validation(y, sr, fps, bands, expect) -> None:  # type: ignore[no-untyped-def]
    with expect:
        band_levels(y, sr=sr, fps=fps, bands=bands, settings=EffectSettings())
