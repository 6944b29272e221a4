"""Decoding: round trips for every format, limits enforced while decoding, typed errors for bad input."""

from __future__ import annotations

import struct
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from signals import chirp, encode, tone, white_noise

from audio.decode import decode_file, probe_file
from audio.errors import (
    CorruptAudio,
    EmptyAudio,
    InvalidSampleRate,
    TooLarge,
    TooLong,
    TooManyChannels,
    UnsupportedFormat,
)
from audio.limits import AudioLimits

FORMATS = ["wav", "flac", "mp3", "m4a", "ogg", "opus"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_duration_rate_channels(tmp_path: Path, fmt: str, channels: int) -> None:
    sr = 44100
    y = chirp(100, 8000, sr=sr, seconds=2.5, channels=channels)
    path = encode(y, sr=sr, path=tmp_path / f"x.{fmt}")
    out = decode_file(path)
    expected_sr = 48000 if fmt == "opus" else sr
    assert out.sample_rate == expected_sr
    assert out.channels == channels
    assert out.samples.dtype == np.float32
    assert out.samples.shape[0] == channels
    # Lossy codecs add encoder delay/padding of a few frames; never more than 60 ms here.
    assert abs(out.duration_s - 2.5) < 0.06
    assert np.isfinite(out.samples).all()
    assert np.abs(out.samples).max() <= 1.01


def test_lossless_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    y = white_noise(rng, sr=16000, seconds=1.0, channels=2)
    q = np.round(y * 32767) / 32767  # what PCM_16 can hold
    for fmt in ("wav", "flac"):
        out = decode_file(encode(q, sr=16000, path=tmp_path / f"n.{fmt}"))
        np.testing.assert_allclose(out.samples, q, atol=1.5 / 32768)


def test_resample_and_mono_for_voiceprints(tmp_path: Path) -> None:
    path = encode(tone(440, sr=44100, seconds=2, channels=2), sr=44100, path=tmp_path / "a.m4a")
    out = decode_file(path, sr=16000, mono=True)
    assert out.sample_rate == 16000 and out.channels == 1
    assert abs(out.samples.shape[1] - 32000) < 16000 * 0.06
    spectrum = np.abs(np.fft.rfft(out.samples[0, 4000:20000]))
    peak_hz = np.argmax(spectrum) * 16000 / 16000
    assert abs(peak_hz - 440) < 2


def test_extension_is_ignored(tmp_path: Path) -> None:
    wav_named_mp3 = encode(tone(440, sr=22050, seconds=1), sr=22050, path=tmp_path / "song.mp3", fmt="wav")
    out = decode_file(wav_named_mp3)
    assert out.info.container == "wav" and out.info.codec == "pcm_s16le"


def test_non_ascii_file_name(tmp_path: Path) -> None:
    path = encode(tone(440, sr=22050, seconds=1), sr=22050, path=tmp_path / "我的歌 – café.flac")
    assert decode_file(path).info.container == "flac"


def _wav_header(*, channels: int, sr: int, data_bytes: int, bits: int = 16, fmt_tag: int = 1) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, sr, sr * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _truncated(tmp_path: Path, fmt: str) -> Path:
    full = encode(tone(440, sr=44100, seconds=6, channels=2), sr=44100, path=tmp_path / f"full.{fmt}")
    data = full.read_bytes()
    return _write(tmp_path, f"cut.{fmt}", data[: len(data) // 3])


def _nan_wav(tmp_path: Path) -> Path:
    import soundfile as sf

    y = np.zeros((1000, 1), dtype=np.float32)
    y[500] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    return p


BAD_INPUTS = [
    ("empty", lambda t: _write(t, "empty.wav", b""), EmptyAudio),
    ("random", lambda t: _write(t, "random.mp3", np.random.default_rng(1).bytes(20000)), UnsupportedFormat),
    ("text", lambda t: _write(t, "notes.wav", "这不是音频 at all\n".encode() * 50), UnsupportedFormat),
    ("truncated_mp3", lambda t: _truncated(t, "mp3"), CorruptAudio),
    ("truncated_m4a", lambda t: _truncated(t, "m4a"), CorruptAudio),
    ("nan_wav", _nan_wav, CorruptAudio),
    (
        "8_channels",
        lambda t: _write(t, "8ch.wav", _wav_header(channels=8, sr=48000, data_bytes=1600) + bytes(1600)),
        TooManyChannels,
    ),
    (
        "384_khz",
        lambda t: _write(t, "hi.wav", _wav_header(channels=1, sr=384000, data_bytes=7680) + bytes(7680)),
        InvalidSampleRate,
    ),
    (
        "claims_10_hours",
        lambda t: _write(
            t,
            "liar.wav",
            _wav_header(channels=1, sr=44100, data_bytes=44100 * 2 * 36000 % 2**32 or 1) + bytes(10000),
        ),
        TooLong,
    ),
    (
        "header_only_wav",
        lambda t: _write(t, "hdr.wav", _wav_header(channels=1, sr=16000, data_bytes=0)),
        EmptyAudio,
    ),
    ("valid", lambda t: encode(tone(440, sr=16000, seconds=1), sr=16000, path=t / "ok.wav"), None),
]


@pytest.mark.parametrize("make,error", [(m, e) for _, m, e in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_bad_inputs_raise_typed_errors(tmp_path: Path, make, error) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(error) if error else nullcontext():
        decode_file(path)


def test_header_claiming_hours_is_refused_before_reading(tmp_path: Path) -> None:
    # 10 hours of 44.1 kHz stereo 16-bit would be 6.35 GB: declared in the header of a 10 KB file.
    data_bytes = 44100 * 4 * 36000
    path = _write(
        tmp_path,
        "claim.wav",
        _wav_header(channels=2, sr=44100, data_bytes=data_bytes % 2**32) + bytes(10_000),
    )
    limits = AudioLimits(max_duration_s=900)
    with pytest.raises((TooLong, CorruptAudio)):
        probe_file(path, limits=limits)
    with pytest.raises((TooLong, CorruptAudio)):
        decode_file(path, limits=limits)


def test_header_overclaim_under_limit_is_corrupt(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "over.wav", _wav_header(channels=1, sr=16000, data_bytes=16000 * 2 * 60) + bytes(3200)
    )
    with pytest.raises(CorruptAudio, match="declares"):
        decode_file(path)


def test_decompression_bomb_stops_at_duration_limit(tmp_path: Path) -> None:
    """Silence compresses extremely well: a small FLAC that decodes to far more than the limit."""
    import tracemalloc

    sr = 8000
    path = encode(np.zeros((1, sr * 120), dtype=np.float32), sr=sr, path=tmp_path / "bomb.flac")
    assert path.stat().st_size < 200_000
    limits = AudioLimits(max_duration_s=10)
    tracemalloc.start()
    with pytest.raises(TooLong):
        decode_file(path, limits=limits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Never more than the limit's worth of samples (10 s * 8 kHz * 4 B = 320 kB) plus one block.
    assert peak < 10 * sr * 4 + 65536 * 4 * 2 + 1_000_000


def test_compressed_bomb_stops_at_duration_limit(tmp_path: Path) -> None:
    path = encode(np.zeros((1, 8000 * 60), dtype=np.float32), sr=8000, path=tmp_path / "bomb.mp3")
    with pytest.raises(TooLong):
        decode_file(path, limits=AudioLimits(max_duration_s=5))


def test_file_over_byte_limit(tmp_path: Path) -> None:
    path = encode(tone(440, sr=16000, seconds=2), sr=16000, path=tmp_path / "a.wav")
    with pytest.raises(TooLarge):
        decode_file(path, limits=AudioLimits(max_upload_bytes=1000))


def test_errors_carry_stable_codes() -> None:
    assert TooLong.code == "too_long" and TooLarge.status == 413 and UnsupportedFormat.status == 415
    assert CorruptAudio("x").to_problem()["type"].endswith("/corrupt_audio")
