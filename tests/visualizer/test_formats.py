"""Golden files for the byte formats: spectrum frames (ours) and BBC audiowaveform ``.dat`` v1/v2,
parsed byte by byte; round trips; malformed input; and the JavaScript reader run under Node."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from effects import frames_format, waveform
from effects.errors import FormatError, InvalidEffectParams
from effects.spectrum import SpectrumFrames

GOLDEN = Path(__file__).with_name("golden")
READER = Path(__file__).resolve().parents[2] / "api" / "static" / "songgate-frames.js"


def small_frames() -> SpectrumFrames:
    levels = (np.arange(5 * 8) * 7 % 256).astype(np.uint8).reshape(5, 8)
    return SpectrumFrames(
        levels=levels, edges_bin=np.array([1, 2, 3, 5, 8, 13, 21, 34, 55]), sample_rate=8000, fps=25,
        fft_size=2048, smoothing=0.8, min_db=-100.0, max_db=-30.0,
    )  # fmt: skip


# --- spectrum frames -------------------------------------------------------------------------


def test_frames_golden_file_byte_by_byte() -> None:
    data = frames_format.encode(small_frames())
    assert data == (GOLDEN / "frames_v1.bin").read_bytes()
    assert data[0:4] == b"SGVF"
    assert data[4:6] == b"\x01\x00"  # version 1
    assert data[6:8] == b"\x28\x00"  # header_size 40
    assert data[8:12] == (8000).to_bytes(4, "little")
    assert data[12:16] == (5).to_bytes(4, "little")  # frame count
    data_offset = 40 + 9 * 4 + 9 * 2 + 2  # 94 -> padded to 96
    assert data[16:20] == (96).to_bytes(4, "little") and data_offset == 96
    assert data[20:22] == b"\x19\x00"  # fps 25
    assert data[22:24] == b"\x08\x00"  # 8 bands
    assert data[24:26] == b"\x00\x08"  # fft_size 2048
    assert data[26:28] == b"\x00\x00"  # flags
    assert data[28:32] == struct.pack("<f", 0.8)
    assert data[32:36] == struct.pack("<f", -100.0) == bytes.fromhex("0000c8c2")
    assert data[36:40] == struct.pack("<f", -30.0) == bytes.fromhex("0000f0c1")
    assert struct.unpack_from("<9f", data, 40)[1] == 2 * 8000 / 2048  # Hz edges: bin * sr / N
    assert struct.unpack_from("<9H", data, 76) == (1, 2, 3, 5, 8, 13, 21, 34, 55)
    assert data[94:96] == b"\x00\x00"  # padding
    assert data[96:] == small_frames().levels.tobytes() and len(data) == 96 + 40


def test_frames_round_trip_and_json() -> None:
    f = small_frames()
    back = frames_format.decode(frames_format.encode(f))
    np.testing.assert_array_equal(back.levels, f.levels)
    np.testing.assert_array_equal(back.edges_bin, f.edges_bin)
    assert (back.sample_rate, back.fps, back.fft_size, back.min_db, back.max_db) == (
        8000,
        25,
        2048,
        -100.0,
        -30.0,
    )
    assert back.smoothing == pytest.approx(0.8)
    j = json.loads(frames_format.to_json_bytes(f))
    assert j["format"] == "songgate-spectrum-frames" and j["version"] == 1
    assert j["frames"] == f.levels.tolist() and j["edges_bin"] == f.edges_bin.tolist()
    assert j["edges_hz"][1] == 7.812 and j["frame_count"] == 5 and j["band_count"] == 8


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:30],
        lambda d: b"XXXX" + d[4:],
        lambda d: d[:4] + b"\x02\x00" + d[6:],
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: d[:22] + b"\x00\x00" + d[24:],
    ],
)
def test_frames_malformed(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError):
        frames_format.decode(mutate(frames_format.encode(small_frames())))


def test_js_reader_parses_the_golden_file() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the browser tests cover the reader too)")
    script = f"""
      const R = require({json.dumps(str(READER))});
      const buf = require('fs').readFileSync({json.dumps(str(GOLDEN / "frames_v1.bin"))});
      const f = R.parse(new Uint8Array(buf));
      const bins = new Uint8Array(64).map((_, k) => k * 3);
      console.log(JSON.stringify({{
        fps: f.fps, bandCount: f.bandCount, n: f.frameCount, sr: f.sampleRate, fft: f.fftSize,
        minDb: f.minDb, maxDb: f.maxDb, edgesBin: Array.from(f.edgesBin), edgesHz1: f.edgesHz[1],
        frame3: Array.from(f.frame(3)), idx: [f.frameIndexAt(0), f.frameIndexAt(0.04), f.frameIndexAt(0.0399), f.frameIndexAt(99)],
        bands: Array.from(R.bandsFromBins(bins, f.edgesBin)),
        at48k: Array.from(R.binEdgesForRate(f.edgesHz, 2048, 48000)),
      }}));
      let bad = 0; try {{ R.parse(new Uint8Array(buf.subarray(0, 50))); }} catch (e) {{ bad = 1; }}
      console.log(bad);
    """
    out = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    got = json.loads(out[0])
    f = small_frames()
    assert (got["fps"], got["bandCount"], got["n"], got["sr"], got["fft"]) == (25, 8, 5, 8000, 2048)
    assert (got["minDb"], got["maxDb"]) == (-100, -30) and got["edgesHz1"] == 7.8125
    assert got["edgesBin"] == f.edges_bin.tolist() and got["frame3"] == f.levels[3].tolist()
    assert got["idx"] == [0, 1, 0, 4]
    e = f.edges_bin
    bins = np.arange(64) * 3
    assert got["bands"] == [
        int((bins[e[b] : e[b + 1]].sum() + (e[b + 1] - e[b]) // 2) // (e[b + 1] - e[b])) for b in range(8)
    ]
    assert got["at48k"][0] == 0 or got["at48k"] == sorted(set(got["at48k"]))
    assert out[1] == "1"


# --- audiowaveform .dat / JSON ---------------------------------------------------------------

MONO = np.array([0, 0.5, -0.5, 0.25, 1.0, -1.0, 0.125, -0.125, 0.75, -0.75], dtype=np.float32)
# rint(x * 32767) per pixel of 4 samples (last pixel partial): min, max
MONO_16 = [(-16384, 16384), (-32767, 32767), (-24575, 24575)]
RIGHT_16 = [(-8192, 8192), (-16384, 16384), (-12288, 12288)]


def test_dat_v1_8bit_golden_byte_by_byte() -> None:
    wf = waveform.peaks(MONO, sr=44100, samples_per_pixel=4)
    assert wf.data[:, 0].tolist() == [list(p) for p in MONO_16]
    data = waveform.encode_dat(wf, bits=8)
    assert data == (GOLDEN / "waveform_v1_8bit.dat").read_bytes()
    assert data[0:4] == b"\x01\x00\x00\x00"  # version 1
    assert data[4:8] == b"\x01\x00\x00\x00"  # flags: 8-bit
    assert data[8:12] == (44100).to_bytes(4, "little")
    assert data[12:16] == (4).to_bytes(4, "little")  # samples per pixel
    assert data[16:20] == (3).to_bytes(4, "little")  # length
    # value / 256 truncated toward zero, as C does: -32767 / 256 = -127.996 -> -127
    assert list(struct.unpack("<6b", data[20:])) == [-64, 64, -127, 127, -95, 95]


def test_dat_v2_16bit_golden_byte_by_byte() -> None:
    stereo = np.stack([MONO, -0.5 * MONO])
    wf = waveform.peaks(stereo, sr=48000, samples_per_pixel=4)
    data = waveform.encode_dat(wf, bits=16)
    assert data == (GOLDEN / "waveform_v2_16bit.dat").read_bytes()
    assert struct.unpack_from("<iIiiIi", data, 0) == (2, 0, 48000, 4, 3, 2)
    values = struct.unpack("<12h", data[24:])
    expect = [v for left, right in zip(MONO_16, RIGHT_16, strict=True) for v in (*left, *right)]
    assert list(values) == expect  # interleaved: min, max of channel 0, then channel 1, per pixel
    assert len(data) == 24 + 3 * 2 * 2 * 2


def test_waveform_json_like_audiowaveform() -> None:
    mono = waveform.to_json_dict(waveform.peaks(MONO, sr=44100, samples_per_pixel=4), bits=8)
    assert mono == {"version": 1, "sample_rate": 44100, "samples_per_pixel": 4, "bits": 8, "length": 3,
                    "data": [-64, 64, -127, 127, -95, 95]}  # fmt: skip
    stereo = waveform.to_json_dict(
        waveform.peaks(np.stack([MONO, -0.5 * MONO]), sr=48000, samples_per_pixel=4), bits=16
    )
    assert list(stereo)[:2] == ["version", "channels"] and stereo["channels"] == 2 and stereo["version"] == 2
    assert stereo["data"][:4] == [-16384, 16384, -8192, 8192]


def audiowaveform_reference(y: np.ndarray, spp: int, split: bool) -> list[list[int]]:
    """WaveformGenerator::process transcribed: short samples, mono = sum / channels (C division)."""
    shorts = np.clip(np.rint(y.astype(np.float64) * 32767), -32768, 32767).astype(int)
    channels, n = shorts.shape
    out_ch = channels if split else 1
    out: list[list[int]] = []
    lo, hi, count = [32767] * out_ch, [-32768] * out_ch, 0
    for i in range(n):
        if split:
            vals = [int(shorts[c, i]) for c in range(channels)]
        else:
            total = int(shorts[:, i].sum())
            vals = [int(total / channels)]  # truncates toward zero
        for c, v in enumerate(vals):
            lo[c], hi[c] = min(lo[c], v), max(hi[c], v)
        count += 1
        if count == spp:
            out.append([x for c in range(out_ch) for x in (lo[c], hi[c])])
            lo, hi, count = [32767] * out_ch, [-32768] * out_ch, 0
    if count:
        out.append([x for c in range(out_ch) for x in (lo[c], hi[c])])
    return out


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("spp", [2, 7, 256])
def test_peaks_match_audiowaveform_generator(rng: np.random.Generator, split: bool, spp: int) -> None:
    y = (rng.standard_normal((2, 3001)) * 0.6).astype(np.float32)  # some samples clip past +-1
    wf = waveform.peaks(y, sr=22050, samples_per_pixel=spp, split_channels=split)
    assert wf.data.reshape(wf.length, -1).tolist() == audiowaveform_reference(y, spp, split)


def test_zoom_levels_derive_exactly(rng: np.random.Generator) -> None:
    y = (rng.standard_normal((2, 44100 * 3 + 123)) * 0.3).astype(np.float32)
    base = waveform.peaks(y, sr=44100, samples_per_pixel=256)
    for spp in (512, 1024, 2048, 4096):
        direct = waveform.peaks(y, sr=44100, samples_per_pixel=spp)
        derived = waveform.rescale(base, samples_per_pixel=spp)
        np.testing.assert_array_equal(derived.data, direct.data)
        assert derived.length == -(-y.shape[1] // spp)
        for bits in (8, 16):  # and 8-bit from 16-bit is exact as well
            assert waveform.encode_dat(derived, bits=bits) == waveform.encode_dat(direct, bits=bits)
    with pytest.raises(InvalidEffectParams):
        waveform.rescale(base, samples_per_pixel=300)


def test_dat_round_trip_and_malformed() -> None:
    wf = waveform.peaks(np.stack([MONO, -MONO]), sr=8000, samples_per_pixel=2)
    for bits in (8, 16):
        back, got_bits = waveform.decode_dat(waveform.encode_dat(wf, bits=bits))
        assert got_bits == bits and back.channels == 2 and back.length == wf.length
        if bits == 16:
            np.testing.assert_array_equal(back.data, wf.data)
    good = waveform.encode_dat(wf, bits=16)
    for bad in (good[:10], b"\x03\x00\x00\x00" + good[4:], good[:-2], good + b"\x00\x00"):
        with pytest.raises(FormatError):
            waveform.decode_dat(bad)
    with pytest.raises(InvalidEffectParams):
        waveform.encode_dat(wf, bits=12)
    with pytest.raises(InvalidEffectParams):
        waveform.encode_dat(wf, bits=8, version=1)  # v1 holds one channel
    with pytest.raises(InvalidEffectParams):
        waveform.peaks(MONO, sr=8000, samples_per_pixel=1)
