"""Benchmark of the recording checks, side by side with two peers on the same files.

    python benchmarks/checks.py                 # 4-min 44.1 kHz stereo AAC: ours vs peers, + 10-min RSS
    python benchmarks/checks.py --vad-eval      # spectral VAD vs silero-vad on ../shared/data

Peers:
  (a) a straightforward librosa + pyloudnorm implementation of the same checks (below: pyloudnorm's
      K-weighting and integrated loudness, numpy block energies for momentary / short-term / LRA,
      librosa.resample 4x for true peak, librosa RMS frames for silence / noise, librosa.stft for
      the spectrum, scipy welch for hum), run on the same decoded array;
  (b) FFmpeg as a subprocess: ``ebur128=peak=true,astats,silencedetect`` on the file (it decodes too).

"ours" is ``audio.checks.run_checks`` after one warm-up call (numba kernels loaded from cache);
the cold first call in a fresh process is reported separately. CPU seconds are process CPU time
(user + system, all threads; children for FFmpeg). The test file is synthesised (drums, bass,
chords, a sung melody, noise), mastered loud so the true-peak search cannot skip much.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


# --- the test file ---------------------------------------------------------------------------------


def synth_song(seconds: float, *, sr: int = 44100, seed: int = 1) -> np.ndarray:
    """A loud synthetic pop-like mix, float32 (2, n)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros((2, n), np.float32)
    beat = 60 / 96
    seg = np.arange(int(0.35 * sr)) / sr
    kick = (np.sin(2 * np.pi * (48 + 90 * np.exp(-seg * 25)) * seg) * np.exp(-seg * 9)).astype(np.float32)
    snare = (rng.standard_normal(seg.size) * np.exp(-seg * 22)).astype(np.float32)
    for k, start in enumerate(np.arange(0, seconds - 0.4, beat)):
        i = int((start + rng.normal(0, 0.003)) * sr)
        if i < 0:
            continue
        m = min(seg.size, n - i)
        y[:, i : i + m] += 0.9 * kick[:m]
        if k % 2:
            y[:, i : i + m] += 0.35 * snare[:m]
    roots = [55.0, 43.65, 49.0, 41.2]
    bar = 4 * beat
    f0 = np.array([roots[int(tt // bar) % 4] for tt in np.arange(0, seconds, 0.01)])
    f0 = np.repeat(f0, int(0.01 * sr))[:n]
    f0 = np.pad(f0, (0, n - f0.size), mode="edge")
    phase = 2 * np.pi * np.cumsum(f0) / sr
    bass = 0.35 * np.tanh(2 * np.sin(phase))
    chords = sum(0.06 * np.sin(r * phase * 4 + i) for i, r in enumerate((1.0, 1.26, 1.5, 2.0)))
    melody_f = 220 * 2 ** (rng.integers(0, 8, int(seconds / 0.4) + 1) / 12)
    mf = np.repeat(melody_f, int(0.4 * sr))[:n]
    mphase = 2 * np.pi * np.cumsum(mf * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / sr
    voice = sum(np.sin(h * mphase) / h**1.5 for h in range(1, 10)) * 0.12
    hats = np.diff(rng.standard_normal(n + 1)).astype(np.float32) * 0.02
    y[0] += (bass + chords + voice * 0.9 + hats).astype(np.float32)
    y[1] += (bass + np.roll(chords, 300) + voice * 1.1 + np.roll(hats, 17)).astype(np.float32)
    y = np.tanh(1.3 * y)  # "mastering": loud and dense, peaks normalised to -0.5 dBFS
    return (y / np.abs(y).max() * 10 ** (-0.5 / 20)).astype(np.float32)


def encode_aac(y: np.ndarray, sr: int, path: Path) -> Path:
    import soundfile as sf

    wav = path.with_suffix(".wav")
    sf.write(wav, y.T, sr, subtype="FLOAT")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "192k", str(path)],
        check=True,
    )
    wav.unlink()
    return path


# --- peer (a): librosa + pyloudnorm --------------------------------------------------------------------


def peer_librosa(y: np.ndarray, sr: int) -> dict[str, float | None]:
    """The same checks written the straightforward way with librosa, pyloudnorm, numpy and scipy."""
    import librosa
    import pyloudnorm
    import scipy.signal

    from audio.checks.bandwidth import find_cliff

    out: dict[str, float | None] = {}
    data = y.T.astype(np.float64)
    meter = pyloudnorm.Meter(sr)
    out["loudness.integrated"] = meter.integrated_loudness(data)
    # K-weighted signal with pyloudnorm's filters, then 100 ms block energies
    kw = data.copy()
    for f in meter._filters.values():  # apply_filter filters along the last axis: per channel
        for ch in range(kw.shape[1]):
            kw[:, ch] = f.apply_filter(kw[:, ch])
    seg = int(sr * 0.1)
    nseg = kw.shape[0] // seg
    energy = (kw[: nseg * seg] ** 2).reshape(nseg, seg, -1).mean(axis=1).sum(axis=1)
    csum = np.concatenate(([0.0], np.cumsum(energy)))

    def blocks(k: int) -> np.ndarray:
        return (csum[k:] - csum[:-k]) / k

    with np.errstate(divide="ignore"):
        mom = -0.691 + 10 * np.log10(blocks(4))
        st = -0.691 + 10 * np.log10(blocks(30))
    out["loudness.momentary_max"] = float(mom.max())
    out["loudness.short_term_max"] = float(st.max())
    gated = st[st > -70]
    rel = -0.691 + 10 * np.log10(np.mean(10 ** ((gated + 0.691) / 10))) - 20
    lra = gated[gated > rel]
    out["loudness.range"] = float(np.percentile(lra, 95) - np.percentile(lra, 10))
    up = librosa.resample(y, orig_sr=sr, target_sr=4 * sr)
    out["peak.true"] = float(20 * np.log10(np.abs(up).max()))
    out["peak.sample"] = float(20 * np.log10(np.abs(y).max()))
    # clipping: runs of >= 3 samples at the peak
    peak = np.abs(y).max()
    mask = (np.abs(y) >= peak * (1 - 1e-5)).any(axis=0)
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    out["clipping.count"] = int((runs >= 3).sum())
    # silence and dropouts from 10 ms RMS frames
    rms = librosa.feature.rms(
        y=librosa.to_mono(y), frame_length=sr // 100, hop_length=sr // 100, center=False
    )[0]
    db = 20 * np.log10(np.maximum(rms, 1e-12))
    loud = np.flatnonzero(db >= -60)
    out["silence.leading"] = float(loud[0] / 100) if loud.size else None
    out["silence.share"] = float((db < -60).mean())
    zero = (y == 0).all(axis=0)
    edges = np.diff(np.concatenate(([0], zero.astype(np.int8), [0])))
    zr = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    out["dropouts.count"] = int((zr >= int(0.002 * sr)).sum())
    out["dc.offset"] = float(np.abs(y.mean(axis=1)).max())
    rms50 = librosa.feature.rms(
        y=librosa.to_mono(y), frame_length=sr // 20, hop_length=sr // 20, center=False
    )[0]
    lv = 20 * np.log10(rms50[rms50 > 0])
    out["noise.floor"] = float(np.percentile(lv, 10))
    out["noise.snr"] = float(np.percentile(lv, 95) - np.percentile(lv, 10))
    side = ((y[0] - y[1]) ** 2).sum() / max(((y[0] + y[1]) ** 2).sum(), 1e-30)
    out["format.false_stereo"] = float(10 * np.log10(max(side, 1e-12)))
    spec = np.abs(librosa.stft(librosa.to_mono(y), n_fft=4096, hop_length=4096)) ** 2
    power = 10 * np.log10(np.maximum(spec.mean(axis=1), 1e-30))
    cliff = find_cliff(
        librosa.fft_frequencies(sr=sr, n_fft=4096), power, sr=sr, width_hz=1000, min_drop_db=30
    )
    out["bandwidth.cutoff"] = cliff[0] if cliff else sr / 2
    f, p = scipy.signal.welch(librosa.to_mono(y), fs=sr, nperseg=4 * sr)
    out["hum.50"] = float(10 * np.log10(p[np.argmin(np.abs(f - 50))]))
    return out


# --- peer (b): FFmpeg ---------------------------------------------------------------------------------


def peer_ffmpeg(path: Path) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of FFmpeg measuring loudness, stats and silence of ``path``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            "ffmpeg",
            "-nostats",
            "-hide_banner",
            "-threads",
            "1",
            "-i",
            str(path),
            "-filter_complex",
            "ebur128=peak=true,astats=metadata=0,silencedetect=noise=-60dB:d=0.5",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


# --- measurement --------------------------------------------------------------------------------------


def timed(fn, *args, repeat: int = 1):  # type: ignore[no-untyped-def]
    cpus, walls = [], []
    result = None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn(*args)
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return result, statistics.median(cpus), statistics.median(walls)


def cold_start(path: Path) -> dict[str, float]:
    """A fresh interpreter: import time and the first run_checks (numba cache load)."""
    code = f"""
import time, json
t0 = time.perf_counter(); c0 = time.process_time()
from audio.decode import decode_file
from audio.checks import run_checks
t1 = time.perf_counter(); c1 = time.process_time()
d = decode_file({str(path)!r})
t2 = time.perf_counter(); c2 = time.process_time()
run_checks(d.samples, sr=d.sample_rate)
t3 = time.perf_counter(); c3 = time.process_time()
run_checks(d.samples, sr=d.sample_rate)
t4 = time.perf_counter(); c4 = time.process_time()
print(json.dumps({{"import_s": t1 - t0, "first_checks_cpu_s": c3 - c2, "second_checks_cpu_s": c4 - c3}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_child(kind: str, arg: str) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process running the checks on a 10-minute file.

    Read from /proc/self/status VmHWM: ``ru_maxrss`` of a child would include the high-water mark
    of this (large) parent, which Linux carries across fork + exec.
    """
    code = f"""
import json, sys, numpy as np
from audio.checks import check_file, run_checks
from audio.decode import decode_file
def mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
run_checks(np.zeros((2, 44100 * 5), np.float32), sr=44100)  # load kernels
base = mb()
if {kind!r}.startswith("stream"):
    report, _ = check_file({arg!r}, kind="vocal" if {kind!r} == "stream-vocal" else "mix")
    print(json.dumps({{"imports_mb": base, "after_load_mb": base, "peak_mb": mb(), "input_mb": 0.0,
                      "scipy_signal": "scipy.signal" in sys.modules, "torch": "torch" in sys.modules}}))
    raise SystemExit
if {kind!r} == "npy":
    y, sr = np.load({arg!r}), 44100
else:
    d = decode_file({arg!r}); y, sr = d.samples, d.sample_rate
loaded = mb()
run_checks(y, sr=sr)
print(json.dumps({{"imports_mb": base, "after_load_mb": loaded, "peak_mb": mb(), "input_mb": y.nbytes / 2**20}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main_benchmark(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="songgate-bench-") as tmp:
        _benchmark(args, Path(tmp))


def _benchmark(args: argparse.Namespace, tmp: Path) -> None:
    from audio.checks import check_file, report_value, run_checks
    from audio.decode import decode_file

    sr = 44100
    print(f"synthesising {args.seconds:.0f} s test song ...", flush=True)
    song = synth_song(args.seconds, sr=sr)
    aac = encode_aac(song, sr, tmp / "song.m4a")
    decoded, dec_cpu, dec_wall = timed(decode_file, aac, repeat=args.repeat)
    y = decoded.samples
    print(
        f"file: {aac.name} {aac.stat().st_size / 1e6:.1f} MB, decoded {y.shape} {y.dtype}; decode {dec_cpu:.3f} s CPU"
    )

    run_checks(y[:, : sr * 5], sr=sr)  # warm-up: numba kernels
    report, ours_cpu, ours_wall = timed(lambda a: run_checks(a, sr=sr), y, repeat=args.repeat)
    _, vocal_cpu, vocal_wall = timed(lambda a: run_checks(a, sr=sr, kind="vocal"), y, repeat=args.repeat)
    _, stream_cpu, stream_wall = timed(lambda p: check_file(p), aac, repeat=args.repeat)
    peer, lib_cpu, lib_wall = timed(peer_librosa, y, sr, repeat=args.peer_repeat)
    ff_runs = [peer_ffmpeg(aac) for _ in range(args.peer_repeat)]
    ff_wall = statistics.median(r[0] for r in ff_runs)
    ff_cpu = statistics.median(r[1] for r in ff_runs)
    cold = cold_start(aac)

    print("\n## timings (median)")
    print("| what | CPU s | wall s | ours faster by (CPU) |")
    print("|---|---|---|---|")
    print(f"| ours: run_checks (decoded array) | {ours_cpu:.3f} | {ours_wall:.3f} | - |")
    print(f"| ours: decode_file + run_checks | {dec_cpu + ours_cpu:.3f} | {dec_wall + ours_wall:.3f} | - |")
    print(f"| ours: run_checks kind=vocal (+ spectral VAD) | {vocal_cpu:.3f} | {vocal_wall:.3f} | - |")
    print(
        f"| ours: check_file (decode and check block by block) | {stream_cpu:.3f} | {stream_wall:.3f} | "
        f"{stream_cpu - dec_cpu:.3f} s beyond decode_file alone |"
    )
    print(
        f"| (a) librosa + pyloudnorm (decoded array) | {lib_cpu:.3f} | {lib_wall:.3f} | {lib_cpu / ours_cpu:.1f}x |"
    )
    print(
        f"| (b) ffmpeg ebur128+astats+silencedetect (file) | {ff_cpu:.3f} | {ff_wall:.3f} | "
        f"{ff_cpu / (dec_cpu + ours_cpu):.1f}x incl. our decode, {ff_cpu / ours_cpu:.1f}x checks only |"
    )
    print(
        f"\ncold start (fresh process): imports {cold['import_s']:.2f} s, first run_checks "
        f"{cold['first_checks_cpu_s']:.3f} s CPU (numba cache load), second {cold['second_checks_cpu_s']:.3f} s"
    )

    print("\n## values side by side (ours | librosa+pyloudnorm)")
    for code in (
        "loudness.integrated",
        "loudness.range",
        "loudness.momentary_max",
        "loudness.short_term_max",
        "peak.true",
        "peak.sample",
        "clipping.count",
        "silence.share",
        "noise.snr",
        "bandwidth.cutoff",
    ):
        theirs = peer.get(code)
        print(
            f"  {code:26s} {report_value(report, code)!s:>10} | {theirs if theirs is None else round(theirs, 2)}"
        )
    print(f"  ffmpeg summary: {_ffmpeg_summary(ff_runs[0][2])}")
    print(
        f"  our LUFS/LRA/TP: {report_value(report, 'loudness.integrated')} / "
        f"{report_value(report, 'loudness.range')} / {report_value(report, 'peak.true')}"
    )

    if args.rss:
        print("\n## peak RSS, 10-minute 44.1 kHz stereo (fresh process each)")
        long = np.concatenate([song, song, song[:, : int(sr * (600 - 2 * args.seconds))]], axis=1)
        npy = tmp / "long.npy"
        np.save(npy, long)
        aac10 = encode_aac(long, sr, tmp / "long.m4a")
        del long
        flac10 = tmp / "long.flac"
        import soundfile as sf

        sf.write(flac10, np.load(npy).T, sr, subtype="PCM_16")
        for kind, arg, label in (
            ("stream", str(aac10), "check_file(AAC): decoded and checked block by block"),
            ("stream-vocal", str(aac10), "check_file(AAC, kind=vocal)"),
            ("stream", str(flac10), "check_file(FLAC 16-bit)"),
            ("npy", str(npy), "array loaded from .npy, then run_checks"),
            ("file", str(aac10), "decode_file(AAC) + run_checks"),
        ):
            r = rss_child(kind, arg)
            print(
                f"| {label} | imports {r['imports_mb']:.0f} MB | input {r['input_mb']:.0f} MB | "
                f"after load {r['after_load_mb']:.0f} MB | peak {r['peak_mb']:.0f} MB | "
                f"checks added {r['peak_mb'] - r['after_load_mb']:.0f} MB |"
            )


def _ffmpeg_summary(stderr: str) -> str:
    import re

    s = stderr[stderr.rindex("Summary:") :]
    vals = {k: re.search(rf"{k}:\s+(-?[\d.]+)", s) for k in ("I", "LRA", "Peak")}
    return " / ".join(f"{k} {m.group(1) if m else '?'}" for k, m in vals.items())


# --- VAD evaluation ------------------------------------------------------------------------------------


def _frames(segments: list[tuple[float, float]], duration: float, hop: float = 0.01) -> np.ndarray:
    m = np.zeros(int(np.ceil(duration / hop)) + 1, bool)
    for s, e in segments:
        m[int(round(s / hop)) : int(round(e / hop))] = True
    return m


def vad_eval(args: argparse.Namespace) -> None:
    """Frame agreement (10 ms) of the spectral VAD with silero-vad, clean and with added noise."""
    import soundfile as sf

    from audio.checks.vad import speech_segments

    speech = sorted((SHARED / "speech" / "librispeech-train-clean-100-excerpts").glob("*.flac"))
    # excerpts 40-79 tuned the detector's thresholds (audio/checks/vad.py): held out by default
    files = speech[40:80] if args.dev else speech[:40] + speech[80:]
    if not args.dev:
        files += sorted((SHARED / "singing").rglob("vocadito_*.wav"))
    if not files:
        print(f"no shared data at {SHARED}: nothing to evaluate")
        return
    files = files[: args.limit] if args.limit else files
    rng = np.random.default_rng(0)
    conditions = ("clean", "white 10 dB", "pink 5 dB")
    tallies = {c: np.zeros(4) for c in conditions}  # tp fp fn tn
    cpu = {"spectral": 0.0, "silero": 0.0}
    audio_s = 0.0
    for path in files:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = np.ascontiguousarray(y.T[:1])
        dur = y.shape[1] / sr
        for cond in conditions:
            z = y
            if cond != "clean":
                noise = rng.standard_normal(y.shape[1])
                if cond.startswith("pink"):
                    spec = np.fft.rfft(noise)
                    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(noise.size, 1 / sr), 20.0))
                    noise = np.fft.irfft(spec, noise.size)
                snr = float(cond.split()[1])
                p_sig = float(np.mean(y.astype(np.float64) ** 2))
                noise *= np.sqrt(p_sig / np.mean(noise**2) / 10 ** (snr / 10))
                z = (y + noise[None, :]).astype(np.float32)
            c0 = time.process_time()
            ours = speech_segments(z, sr=sr)
            c1 = time.process_time()
            ref = speech_segments(z, sr=sr, backend="silero")
            c2 = time.process_time()
            cpu["spectral"] += c1 - c0
            cpu["silero"] += c2 - c1
            a, b = _frames(ours, dur), _frames(ref, dur)
            tallies[cond] += [(a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()]
        audio_s += dur * len(conditions)
    split = "tuning split (LibriSpeech 40-79)" if args.dev else "held out (tuning files 40-79 excluded)"
    print(
        f"{len(files)} files, {split}, {audio_s / len(conditions):.0f} s of audio per condition; "
        "reference = silero-vad"
    )
    print("| condition | agreement | precision | recall | spectral active | silero active |")
    print("|---|---|---|---|---|---|")
    for cond, (tp, fp, fn, tn) in tallies.items():
        total = tp + fp + fn + tn
        print(
            f"| {cond} | {(tp + tn) / total:.3f} | {tp / max(tp + fp, 1):.3f} | {tp / max(tp + fn, 1):.3f} | "
            f"{(tp + fp) / total:.3f} | {(tp + fn) / total:.3f} |"
        )
    print(
        f"CPU per minute of audio: spectral {cpu['spectral'] / audio_s * 60:.3f} s, "
        f"silero {cpu['silero'] / audio_s * 60:.3f} s"
    )
    # negatives: no voice at all
    from audio.checks.vad import speech_duration

    neg = {
        "white noise -20 dBFS": (rng.standard_normal((1, 16000 * 20)) * 0.1).astype(np.float32),
        "brown noise (random walk)": np.cumsum(rng.standard_normal((1, 16000 * 20)), axis=1).astype(
            np.float32
        )
        * 1e-3,
        "silence": np.zeros((1, 16000 * 20), np.float32),
    }
    for name, z in neg.items():
        z = z - z.mean()
        print(
            f"negative '{name}': spectral {speech_duration(speech_segments(z, sr=16000)):.2f} s, "
            f"silero {speech_duration(speech_segments(z, sr=16000, backend='silero')):.2f} s of voice in 20 s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=240.0, help="test song length (default 4 min)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of ours (median)")
    parser.add_argument("--peer-repeat", type=int, default=2, help="runs of each peer (median)")
    parser.add_argument("--no-rss", dest="rss", action="store_false", help="skip the 10-minute RSS runs")
    parser.add_argument("--vad-eval", action="store_true", help="evaluate the VAD instead")
    parser.add_argument("--limit", type=int, default=0, help="VAD eval: first N files only")
    parser.add_argument("--dev", action="store_true", help="VAD eval: the tuning files instead")
    args = parser.parse_args()
    if args.vad_eval:
        vad_eval(args)
    else:
        main_benchmark(args)


if __name__ == "__main__":
    main()
