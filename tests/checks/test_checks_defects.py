"""Every non-loudness check: one signal that must be flagged and one that must pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from checks_helpers import FFMPEG, drum_loop, music_like
from signals import encode, tone, white_noise

from audio.checks import report_check, report_value, run_checks
from audio.decode import decode_file
from audio.resample import resample

SR = 44100


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return music_like(np.random.default_rng(7), sr=SR, seconds=20.0)


def verdict(report: dict, code: str) -> str:
    return report_check(report, code)["verdict"]


# --- bandwidth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bit_rate", "expected_hz", "tolerance_hz", "want"),
    [
        (128_000, 17000.0, 500.0, "warn"),
        (64_000, 11000.0, 800.0, "fail"),
    ],
)
def test_mp3_transcode_shows_its_lowpass(
    rng: np.random.Generator,
    tmp_path: Path,
    bit_rate: int,
    expected_hz: float,
    tolerance_hz: float,
    want: str,
) -> None:
    noise = white_noise(rng, sr=SR, seconds=8.0, amp_dbfs=-6.0, channels=2)
    decoded = decode_file(encode(noise, sr=SR, path=tmp_path / "noise.mp3", bit_rate=bit_rate))
    report = run_checks(decoded.samples, sr=decoded.sample_rate)
    assert report_value(report, "bandwidth.cutoff") == pytest.approx(expected_hz, abs=tolerance_hz)
    assert verdict(report, "bandwidth.cutoff") == want


def test_upsampled_file_is_flagged_and_native_one_passes(music: np.ndarray) -> None:
    low = music_like(np.random.default_rng(8), sr=22050, seconds=20.0)
    up = run_checks(resample(low, orig_sr=22050, target_sr=SR), sr=SR)
    assert report_value(up, "bandwidth.cutoff") == pytest.approx(11025.0, abs=500.0)
    assert verdict(up, "bandwidth.cutoff") == "fail"
    native = run_checks(music, sr=SR)
    assert report_value(native, "bandwidth.cutoff") == SR / 2
    assert verdict(native, "bandwidth.cutoff") == "pass"


def test_a_lone_tone_is_not_a_cliff() -> None:
    report = run_checks(tone(1000.0, sr=SR, seconds=12.0, amp_dbfs=-20.0, channels=2), sr=SR)
    assert verdict(report, "bandwidth.cutoff") == "pass"


# --- hum ---------------------------------------------------------------------------------------------


def _vocal_bed(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Sung-vowel-like harmonic bursts with pauses over faint room noise (a home vocal take)."""
    n = int(SR * seconds)
    t = np.arange(n) / SR
    f0 = 220.0 * 2 ** (np.repeat(rng.integers(0, 12, int(seconds)), SR)[:n] / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(h * phase) / h for h in range(1, 8))
    env = np.repeat((rng.uniform(0, 1, int(seconds * 2)) > 0.3).astype(float), SR // 2)[:n]
    room = rng.standard_normal(n) * 10 ** (-65 / 20)
    return (0.1 * voice * env * (1 + 0.1 * np.sin(2 * np.pi * 5 * t)) + room)[None, :].astype(np.float32)


@pytest.mark.parametrize("base", [50.0, 60.0])
def test_hum_at_minus_40_dbfs_is_found(rng: np.random.Generator, base: float) -> None:
    bed = _vocal_bed(rng, 20.0)
    hummed = (
        bed
        + tone(base, sr=SR, seconds=20.0, amp_dbfs=-40.0)
        + tone(3 * base, sr=SR, seconds=20.0, amp_dbfs=-50.0)
    )
    report = run_checks(hummed, sr=SR, kind="vocal")
    assert report_value(report, "hum.frequency") == base
    assert report_value(report, "hum.level") == pytest.approx(-39.6, abs=1.0)  # -40 and -50 dBFS summed
    assert verdict(report, "hum.level") == "fail"
    clean = run_checks(bed, sr=SR, kind="vocal")
    assert report_value(clean, "hum.level") is None and verdict(clean, "hum.level") == "pass"


@pytest.mark.parametrize("seconds", [3.0, 5.0, 9.0])
def test_hum_in_short_vocal_clips(rng: np.random.Generator, seconds: float) -> None:
    """Short takes analyse shorter segments (coarser bins); the hum must still be found, also off
    the bin grid (mains drifts: 59.8 Hz)."""
    bed = _vocal_bed(rng, seconds)
    hummed = bed + tone(59.8, sr=SR, seconds=seconds, amp_dbfs=-40.0)
    assert report_value(run_checks(hummed, sr=SR, kind="vocal"), "hum.frequency") == 60.0
    assert report_value(run_checks(bed, sr=SR, kind="vocal"), "hum.level") is None


def test_a_drum_machine_kick_on_50_hz_is_not_hum() -> None:
    report = run_checks(drum_loop(sr=SR, seconds=20.0), sr=SR)
    assert report_value(report, "hum.level") is None


def test_hum_found_in_a_real_recording(shared_data: Path) -> None:
    import soundfile as sf

    y, sr = sf.read(
        shared_data / "singing/mirdata_samples/vocadito/Audio/vocadito_1.wav", dtype="float32", always_2d=True
    )
    y = np.ascontiguousarray(y.T)
    assert report_value(run_checks(y, sr=sr, kind="vocal"), "hum.level") is None
    hum = tone(50.0, sr=sr, seconds=y.shape[1] / sr + 1, amp_dbfs=-50.0)[:, : y.shape[1]]
    assert report_value(run_checks(y + hum, sr=sr, kind="vocal"), "hum.level") == pytest.approx(
        -50.0, abs=1.0
    )


# --- clipping ------------------------------------------------------------------------------------------


def test_clipped_sine_is_counted(tmp_path: Path) -> None:
    sine = tone(441.0, sr=SR, seconds=2.0, amp_dbfs=3.5, channels=2)  # 100 samples per cycle
    clipped = np.clip(sine, -1.0, 1.0)
    report = run_checks(clipped, sr=SR)
    # each half cycle above 1.0 is one run: 2 per cycle, 882 cycles (first/last may be partial)
    assert report_value(report, "clipping.count") == pytest.approx(2 * 882, abs=2)
    assert report_value(report, "clipping.longest_run") == 27
    assert verdict(report, "clipping.count") == "fail"
    # the same through 16-bit PCM (+32767 / -32768: asymmetric full scale)
    pcm = decode_file(encode(clipped, sr=SR, path=tmp_path / "clip.wav"))
    assert report_value(run_checks(pcm.samples, sr=SR), "clipping.count") == pytest.approx(2 * 882, abs=2)
    # clipped, then attenuated by 6 dB: flat tops at the file's own peak
    assert report_value(run_checks(clipped * np.float32(0.5), sr=SR), "clipping.count") == pytest.approx(
        2 * 882, abs=2
    )


@pytest.mark.parametrize("freq", [50.0, 100.0, 1000.0])
def test_a_clean_sine_at_full_scale_is_not_clipped(freq: float) -> None:
    report = run_checks(tone(freq, sr=SR, seconds=12.0, amp_dbfs=0.0, channels=2), sr=SR)
    assert report_value(report, "clipping.count") == 0
    assert verdict(report, "clipping.count") == "pass"


# --- silence and dropouts ------------------------------------------------------------------------------


def test_leading_and_trailing_silence(music: np.ndarray) -> None:
    padded = np.concatenate(
        [np.zeros((2, 12 * SR), np.float32), music, np.zeros((2, 11 * SR), np.float32)], axis=1
    )
    report = run_checks(padded, sr=SR)
    assert report_value(report, "silence.leading") == pytest.approx(12.0, abs=0.02)
    assert report_value(report, "silence.trailing") == pytest.approx(11.0, abs=0.02)
    assert verdict(report, "silence.leading") == "warn"
    assert report_value(report, "silence.share") == pytest.approx(23 / 43, abs=0.01)
    assert report_value(report, "dropouts.count") == 0  # leading/trailing silence is not a dropout
    clean = run_checks(music, sr=SR)
    assert report_value(clean, "silence.leading") < 0.05 and verdict(clean, "silence.share") == "pass"


@pytest.mark.parametrize(("ms", "kind"), [(2.0, "zeros"), (20.0, "zeros"), (100.0, "gap")])
def test_dropouts_are_found(music: np.ndarray, ms: float, kind: str) -> None:
    y = music.copy()
    a = 5 * SR
    b = a + int(ms / 1000 * SR)
    if kind == "zeros":
        y[:, a:b] = 0.0
    else:
        y[:, a:b] *= np.float32(1e-4)  # a sudden -80 dB hole, not digital zero
    report = run_checks(y, sr=SR)
    assert report_value(report, "dropouts.count") == 1
    assert report_value(report, "dropouts.longest") == pytest.approx(ms / 1000, abs=0.011)
    assert verdict(report, "dropouts.count") == "warn"
    assert report_value(run_checks(music, sr=SR), "dropouts.count") == 0


def test_a_musical_pause_is_not_a_dropout(music: np.ndarray) -> None:
    """A 400 ms break with a 50 ms fade: longer than a glitch and not sudden."""
    y = music.copy()
    a, b = 6 * SR, int(6.4 * SR)
    fade = np.linspace(1.0, 0.0, int(0.05 * SR), dtype=np.float32)
    y[:, a - len(fade) : a] *= fade
    y[:, a:b] = 0.0
    assert report_value(run_checks(y, sr=SR), "dropouts.count") == 0


# --- DC, stereo, noise, format ---------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "want"), [(0.0, "pass"), (0.05, "warn"), (0.2, "fail")])
def test_dc_offset(music: np.ndarray, offset: float, want: str) -> None:
    report = run_checks(music * np.float32(0.7) + np.float32(offset), sr=SR)
    assert report_value(report, "dc.offset") == pytest.approx(offset, abs=0.005)
    assert verdict(report, "dc.offset") == want


def test_false_stereo_and_channel_faults(music: np.ndarray) -> None:
    assert verdict(run_checks(music, sr=SR), "format.false_stereo") == "pass"
    dual = run_checks(np.repeat(music[:1], 2, axis=0), sr=SR)
    assert report_value(dual, "format.false_stereo") == -120.0
    assert verdict(dual, "format.false_stereo") == "warn"
    # a tiny difference (a lossy joint-stereo side channel of a mono source) is still false stereo
    nearly = np.stack([music[0], music[0] * np.float32(1.001)])
    assert verdict(run_checks(nearly, sr=SR), "format.false_stereo") == "warn"
    inverted = run_checks(np.stack([music[0], -music[0]]), sr=SR)
    assert verdict(inverted, "format.false_stereo") == "warn"
    dead = run_checks(np.stack([music[0], np.zeros_like(music[0])]), sr=SR)
    assert verdict(dead, "format.channel_imbalance") == "fail"
    mono = run_checks(music[:1], sr=SR)
    assert (
        report_value(mono, "format.false_stereo") is None and verdict(mono, "format.false_stereo") == "pass"
    )


def test_noise_floor_and_snr_for_a_vocal_take(rng: np.random.Generator) -> None:
    bed = _vocal_bed(rng, 20.0)
    clean = run_checks(bed, sr=SR, kind="vocal")
    assert report_value(clean, "noise.floor") < -60.0
    assert report_value(clean, "noise.snr") > 30.0 and verdict(clean, "noise.snr") == "pass"
    noisy = bed + white_noise(rng, sr=SR, seconds=20.0, amp_dbfs=-20.0)
    report = run_checks(noisy, sr=SR, kind="vocal")
    assert report_value(report, "noise.floor") == pytest.approx(
        -24.8, abs=1.5
    )  # uniform noise RMS = peak - 4.8 dB
    assert verdict(report, "noise.snr") == "fail" and verdict(report, "noise.floor") == "fail"


def test_format_bounds() -> None:
    short = run_checks(tone(440.0, sr=SR, seconds=3.0, amp_dbfs=-20.0, channels=2), sr=SR)
    assert verdict(short, "format.duration") == "fail"  # a mix shorter than 10 s
    assert (
        verdict(
            run_checks(tone(440.0, sr=SR, seconds=3.0, amp_dbfs=-20.0), sr=SR, kind="vocal"),
            "format.duration",
        )
        == "pass"
    )
    low = run_checks(tone(440.0, sr=16000, seconds=12.0, amp_dbfs=-20.0, channels=2), sr=16000)
    assert verdict(low, "format.sample_rate") == "fail"
    mid = run_checks(tone(440.0, sr=32000, seconds=12.0, amp_dbfs=-20.0, channels=2), sr=32000)
    assert verdict(mid, "format.sample_rate") == "warn"
    many = run_checks(tone(440.0, sr=SR, seconds=12.0, amp_dbfs=-20.0, channels=3), sr=SR)
    assert verdict(many, "format.channels") == "fail"


def test_three_channels_get_the_same_runs_as_stereo(music: np.ndarray) -> None:
    """The >2-channel path (envelopes) finds the same clips and dropouts as the fused stereo kernel."""
    y = np.clip(music * np.float32(2.0), -1.0, 1.0)
    y[:, 3 * SR : 3 * SR + 441] = 0.0
    two = run_checks(y, sr=SR)
    three = run_checks(np.concatenate([y, y[:1]]), sr=SR)
    for code in ("clipping.count", "clipping.longest_run", "dropouts.count", "loudness.integrated"):
        if code == "loudness.integrated":
            assert report_value(three, code) > report_value(two, code)  # a third channel adds energy
        else:
            assert report_value(three, code) == report_value(two, code), code


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed")
def test_aac_round_trip_passes(music: np.ndarray, tmp_path: Path) -> None:
    decoded = decode_file(encode(music, sr=SR, path=tmp_path / "song.m4a", bit_rate=256_000))
    report = run_checks(decoded.samples, sr=decoded.sample_rate)
    assert report_value(report, "clipping.count") == 0
    assert report_value(report, "dropouts.count") == 0
