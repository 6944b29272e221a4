"""Checks fed block by block: the same report as the whole array, in bounded memory."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from checks_helpers import music_like

from audio.checks import CheckSettings, CheckStream, _kernels, check_blocks, check_file, run_checks
from audio.checks.bandwidth import MAX_FRAMES, SpectrumSampler
from audio.checks.clipping import ClipTracker, clip_levels
from audio.checks.scan import frame_bounds
from audio.checks.truepeak import HISTORY, TruePeakTracker, interpolator, true_peak
from audio.decode import decode_file
from audio.errors import CorruptAudio, EmptyAudio, InvalidSignal, TooLong
from audio.limits import AudioLimits


def _split(
    y: np.ndarray, rng: np.random.Generator, *, smallest: int = 1, largest: int = 50000
) -> list[np.ndarray]:
    """``y`` cut at random points (blocks of 1 sample up to ``largest``), each block contiguous."""
    out, pos, n = [], 0, y.shape[1]
    while pos < n:
        m = int(rng.integers(smallest, largest))
        out.append(np.ascontiguousarray(y[:, pos : pos + m]))
        pos += m
    return out


def _defective_song(rng: np.random.Generator, *, sr: int, seconds: float, channels: int) -> np.ndarray:
    y = music_like(rng, sr=sr, seconds=seconds, channels=channels)
    n = y.shape[1]
    y[:, : sr // 2] = 0.0  # leading silence
    y[:, n // 3 : n // 3 + sr // 50] = 0.0  # a dropout
    y[:, n // 2 : n // 2 + 40] = y[:, n // 2 : n // 2 + 40].max()  # a flat top at the peak
    y += (0.002 * np.sin(2 * np.pi * 50 * np.arange(n) / sr)).astype(np.float32)  # hum
    return y.astype(np.float32)


@pytest.mark.parametrize(
    ("sr", "channels", "kind"),
    [(44100, 2, "mix"), (48000, 1, "vocal"), (11025, 2, "vocal"), (22050, 3, "mix")],
)
def test_blocks_of_any_size_give_the_whole_array_report(sr: int, channels: int, kind: str) -> None:
    rng = np.random.default_rng(sr + channels)
    y = _defective_song(rng, sr=sr, seconds=9.0, channels=channels)
    whole = run_checks(y, sr=sr, kind=kind)
    for seed in range(3):
        blocks = _split(y, np.random.default_rng(seed), largest=[7, 3000, 400000][seed])
        assert check_blocks(blocks, sr=sr, channels=channels, kind=kind) == whole


def test_stream_rejects_bad_blocks() -> None:
    stream = CheckStream(sr=16000, channels=2)
    with pytest.raises(InvalidSignal):
        stream.feed(np.zeros((2, 10), np.float64))
    with pytest.raises(InvalidSignal):
        stream.feed(np.zeros((1, 10), np.float32))
    with pytest.raises(InvalidSignal):
        stream.feed([[0.0], [0.0]])  # type: ignore[arg-type]
    bad = np.zeros((2, 200_000), np.float32)
    bad[1, 150_000] = np.nan
    with pytest.raises(InvalidSignal, match="NaN"):
        stream.feed(bad)
        stream.finish()
    with pytest.raises(EmptyAudio):
        CheckStream(sr=16000, channels=1).finish()
    with pytest.raises(InvalidSignal):
        CheckStream(sr=16000, channels=0)


# --- full-scale runs: the running-peak tracker against a direct computation ------------------------


def _reference_clips(y: np.ndarray, settings: CheckSettings) -> tuple[int, int, int]:
    """(count, longest, total length) of full-scale runs with the final levels, by plain numpy."""
    hi, lo = clip_levels(float(y.max()), float(y.min()), settings)
    y64 = y.astype(np.float64)  # levels compared unrounded, as the kernel does
    hit = ((y64 >= hi) | (y64 <= lo)).any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], hit.astype(np.int8), [0]))))
    lengths = edges[1::2] - edges[0::2]
    lengths = lengths[lengths >= settings.clip_min_run]
    return len(lengths), int(lengths.max(initial=0)), int(lengths.sum())


def _rising_clips(rng: np.random.Generator, channels: int) -> np.ndarray:
    """Flat tops whose level creeps up over time, some by less than the 0.0001 dB tolerance (runs
    then keep only some samples), some straddling block boundaries, on both polarities."""
    n = 60_000
    y = (rng.standard_normal((channels, n)) * 0.05).astype(np.float32)
    level = 0.5
    for start in range(500, n - 200, 900):
        level *= 1.0 + rng.choice([0.0, 2e-6, 8e-6, 1e-3])
        length = int(rng.integers(1, 120))
        top = level * (1.0 - rng.uniform(0.0, 2.5e-5, length))  # ripple around the tolerance
        ch = int(rng.integers(channels))
        y[ch, start : start + length] = top if rng.random() < 0.6 else -top
    return y


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_clip_tracker_matches_the_final_level_computation(channels: int) -> None:
    settings = CheckSettings()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        y = _rising_clips(rng, channels)
        tracker = ClipTracker(settings)
        pos = 0
        for block in _split(y, rng, largest=5000):
            tracker.feed(block, pos)
            pos += block.shape[1]
        got = tracker.result(y.shape[1])
        count, longest, total = _reference_clips(y, settings)
        assert (got.count, got.longest) == (count, longest)
        assert got.share == pytest.approx(total / y.shape[1])
        assert count > 0


def test_clip_tracker_ignores_peaks_below_the_floor_and_rejects_nan() -> None:
    y = np.full((1, 1000), 0.05, np.float32)  # flat, but below -20 dBFS: not clipping
    tracker = ClipTracker(CheckSettings())
    tracker.feed(y, 0)
    assert tracker.result(1000).count == 0
    with pytest.raises(InvalidSignal):
        ClipTracker(CheckSettings()).feed(np.array([[0.1, np.inf]], np.float32), 0)


def test_clip_tracker_memory_is_bounded_for_a_file_of_clips() -> None:
    """A square wave clipped everywhere: tens of thousands of runs, memory stays bounded and the
    count is still exact when the level never moves."""
    sr = 44100
    t = np.arange(sr * 30) / sr
    y = np.clip(3 * np.sin(2 * np.pi * 1000 * t), -1, 1).astype(np.float32)[None, :]
    tracker = ClipTracker(CheckSettings())
    tracemalloc.start()
    for pos in range(0, y.shape[1], 1 << 17):
        tracker.feed(y[:, pos : pos + (1 << 17)], pos)
    stats = tracker.result(y.shape[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stats.count == _reference_clips(y, CheckSettings())[0] == 60_000
    assert peak < 40 * 2**20


# --- true peak ------------------------------------------------------------------------------------


def test_true_peak_tracker_in_blocks_equals_interpolating_everything(rng: np.random.Generator) -> None:
    _, coef, _ = interpolator()
    sr = 48000
    for seed in range(4):
        r = np.random.default_rng(seed)
        y = (r.standard_normal((2, sr * 3)) * 0.1).astype(np.float32)
        y[:, 70000:70016] = np.float32(0.9) * np.sign(r.standard_normal(16)).astype(
            np.float32
        )  # inter-sample overs
        brute = max(float(_kernels.interp_peak(y[ch], coef, HISTORY, y.shape[1])) for ch in range(2))
        brute = max(brute, float(np.abs(y).max()))
        tracker = TruePeakTracker(2)
        pos = 0
        for block in _split(y, r, largest=20000):
            bounds = np.append(np.arange(0, block.shape[1], 480), block.shape[1])
            peaks = np.maximum.reduceat(np.abs(block), bounds[:-1], axis=1)
            tracker.feed(block, pos, bounds, peaks)
            pos += block.shape[1]
        assert tracker.best == pytest.approx(brute, rel=1e-6)
        assert true_peak(y, sr=sr) == pytest.approx(20 * math.log10(brute), abs=1e-4)


# --- bandwidth frames -----------------------------------------------------------------------------


def test_spectrum_sampler_keeps_a_bounded_even_spread_of_real_frames(rng: np.random.Generator) -> None:
    sr = 8000
    y = (rng.standard_normal((2, sr * 120)) * 0.1).astype(np.float32)
    sampler = SpectrumSampler(sr=sr, channels=2, silence_dbfs=-60.0)
    bounds, _ = frame_bounds(y.shape[1], sr)
    pos = 0
    for block in _split(y, rng, smallest=2000, largest=30000):
        starts = bounds[:-1][(bounds[:-1] >= pos) & (bounds[:-1] < pos + block.shape[1])] - pos
        sampler.feed(block, pos, starts, np.zeros(len(starts)))
        assert len(sampler._kept) + len(sampler._pending) <= 2 * MAX_FRAMES
        pos += block.shape[1]
    frames = sampler.frames()
    assert frames is not None and frames.shape == (MAX_FRAMES, 2, sampler.nfft)
    index = [k for k, _ in sampler._kept]
    for k, frame in sampler._kept:  # every kept frame is the signal at its start
        start = int(bounds[k])
        np.testing.assert_array_equal(frame, y[:, start : start + sampler.nfft])
    gaps = np.diff(index)
    assert gaps.min() == gaps.max() == sampler._stride  # evenly spread


# --- files: decoded and checked block by block ----------------------------------------------------


def test_check_file_equals_decode_then_check(tmp_path: Path, rng: np.random.Generator) -> None:
    sr = 44100
    y = _defective_song(rng, sr=sr, seconds=20.0, channels=2)
    path = tmp_path / "song.flac"
    sf.write(path, y.T, sr, subtype="PCM_24")
    report, info = check_file(path, kind="vocal")
    decoded = decode_file(path)
    assert report == run_checks(decoded.samples, sr=decoded.sample_rate, kind="vocal")
    assert (info.container, info.sample_rate, info.channels) == ("flac", sr, 2)


def test_check_file_errors_come_from_the_decoder(tmp_path: Path, rng: np.random.Generator) -> None:
    sr = 16000
    path = tmp_path / "long.flac"
    sf.write(path, (rng.standard_normal(sr * 4) * 0.1).astype(np.float32), sr)
    with pytest.raises(TooLong):
        check_file(path, limits=AudioLimits(max_duration_s=2.0))
    truncated = tmp_path / "cut.flac"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptAudio):
        check_file(truncated)


def test_check_file_memory_grows_far_slower_than_the_decoded_signal(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Stereo 44.1 kHz decodes to 20 MB a minute of float32. Checking a file as it is decoded
    holds per-frame statistics, the ~8.8 kHz mono for hum and fixed-size buffers instead, so the
    traced peak (numpy allocations are traced by tracemalloc) grows by about 2 MB a minute."""
    sr = 44100
    part = (rng.standard_normal((sr * 10, 2)) * 0.1).astype(np.float32)

    def write(minutes: int) -> Path:
        path = tmp_path / f"{minutes}min.flac"
        with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
            for _ in range(minutes * 6):
                f.write(part)
        return path

    def traced_peak_mb(path: Path) -> float:
        tracemalloc.start()
        report, _ = check_file(path)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert report["channels"] == 2
        return peak

    short, long = write(1), write(4)
    traced_peak_mb(short)  # warm-up: lazy imports and caches are not the point here
    per_minute = (traced_peak_mb(long) - traced_peak_mb(short)) / 3
    decoded_per_minute = 60 * sr * 2 * 4 / 2**20
    assert per_minute < decoded_per_minute / 5, f"{per_minute:.1f} MB per minute"
