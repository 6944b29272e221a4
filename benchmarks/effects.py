"""Visualizer effects benchmark: songgate's artifacts vs a straightforward librosa approach, side by side.

A synthetic 4-minute stereo 44.1 kHz song (chords, a kick at 120 BPM, hi-hat noise, a vocal-like
sweep) is already decoded; we measure CPU seconds (``time.process_time``, one thread) beyond decoding:

* songgate: ``effects.compute_default_artifacts`` (spectrum frames 30 fps x 64 bands, waveform .dat
  at 256 samples/pixel, beats JSON) - everything stored on upload;
* librosa baseline: the same three products the obvious way - ``librosa.resample`` to 22,050 Hz,
  ``melspectrogram`` (64 mels, hop 512) + ``power_to_db`` + per-frame resampling of every band to the
  30 fps frame times (``np.interp``) + byte scaling, the same waveform peaks, and
  ``librosa.beat.beat_track(y=...)`` with its own onset envelope.

Each side runs once to warm up (imports, numba JIT: reported separately), then ``--repeats`` times;
the table reports the median and the best run, and the ratio of medians.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/effects.py [--repeats 5] [--seconds 240] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SR = 44100
FPS = 30
BANDS = 64


def synth_song(seconds: float, *, sr: int = SR, seed: int = 7) -> np.ndarray:
    """float32 (2, n): a pop-like texture with structure in time and frequency."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    bar = (t // 2.0).astype(int) % 4
    roots = np.array([220.0, 174.6, 196.0, 164.8])[bar]
    phase = np.cumsum(roots) / sr
    chord = sum(0.08 * np.sin(2 * np.pi * m * phase) for m in (1.0, 1.26, 1.5, 2.0))
    beat = (t % 0.5) / 0.5
    kick = 0.45 * np.exp(-beat * 10) * np.sin(2 * np.pi * (55 + 70 * np.exp(-beat * 25)) * t)
    hat_env = np.exp(-((t % 0.25) / 0.25) * 30)
    hats = 0.05 * hat_env * rng.standard_normal(t.size)
    vib = 5 * np.sin(2 * np.pi * 5.5 * t)
    voice = 0.06 * np.sin(2 * np.pi * np.cumsum(440 + 80 * np.sin(2 * np.pi * 0.1 * t) + vib) / sr)
    left = chord + kick + hats + voice
    right = chord + kick + 0.7 * hats + 0.8 * voice
    return np.stack([left, right]).astype(np.float32)


def songgate_effects(y: np.ndarray, sr: int) -> dict[str, int]:
    from effects import compute_default_artifacts

    arts = compute_default_artifacts(y, sr=sr)
    return {a.kind: len(a.data) for a in arts}


def librosa_effects(y: np.ndarray, sr: int) -> dict[str, int]:
    import librosa

    mono = y.mean(axis=0)
    y22 = librosa.resample(mono, orig_sr=sr, target_sr=22050)
    mel = librosa.feature.melspectrogram(y=y22, sr=22050, n_fft=2048, hop_length=512, n_mels=BANDS)
    db = librosa.power_to_db(mel, ref=np.max)
    frame_times = librosa.frames_to_time(np.arange(db.shape[1]), sr=22050, hop_length=512)
    out_times = np.arange(int(y.shape[1] / sr * FPS) + 1) / FPS
    per_frame = np.stack([np.interp(out_times, frame_times, band) for band in db], axis=1)
    levels = np.clip((per_frame + 80.0) / 80.0 * 255, 0, 255).astype(np.uint8)
    n = y.shape[1]
    full = n // 256
    blocks = y[:, : full * 256].reshape(y.shape[0], full, 256)
    peaks = np.stack([blocks.min(axis=2), blocks.max(axis=2)], axis=-1)
    wave = np.clip(np.rint(peaks * 32767), -32768, 32767).astype(np.int16)
    tempo, beats = librosa.beat.beat_track(y=y22, sr=22050, units="time")
    onset = librosa.onset.onset_strength(y=y22, sr=22050)
    beats_json = json.dumps(
        {"tempo": float(np.atleast_1d(tempo)[0]), "beats": beats.tolist(), "onset": onset.tolist()}
    )
    return {"spectrum": levels.nbytes, "waveform": wave.nbytes, "beats": len(beats_json)}


def _spectrum_only_songgate(y: np.ndarray, sr: int) -> None:
    from effects import frames_format
    from effects.spectrum import band_levels

    frames_format.encode(band_levels(y, sr=sr, fps=FPS, bands=BANDS))


def _spectrum_only_librosa(y: np.ndarray, sr: int) -> None:
    import librosa

    y22 = librosa.resample(y.mean(axis=0), orig_sr=sr, target_sr=22050)
    db = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y22, sr=22050, n_fft=2048, hop_length=512, n_mels=BANDS)
    )
    times = librosa.frames_to_time(np.arange(db.shape[1]), sr=22050, hop_length=512)
    out = np.arange(int(y.shape[1] / sr * FPS) + 1) / FPS
    np.stack([np.interp(out, times, band) for band in db], axis=1).astype(np.uint8)


def cpu(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()

    y = synth_song(args.seconds)
    warm = {"songgate": cpu(songgate_effects, y, SR), "librosa": cpu(librosa_effects, y, SR)}
    runs: dict[str, list[float]] = {
        "songgate": [],
        "librosa": [],
        "songgate_spectrum": [],
        "librosa_spectrum": [],
    }
    for _ in range(args.repeats):  # interleaved, so machine load hits both sides alike
        runs["songgate"].append(cpu(songgate_effects, y, SR))
        runs["librosa"].append(cpu(librosa_effects, y, SR))
        runs["songgate_spectrum"].append(cpu(_spectrum_only_songgate, y, SR))
        runs["librosa_spectrum"].append(cpu(_spectrum_only_librosa, y, SR))
    sizes = songgate_effects(y, SR)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "audio_seconds": args.seconds,
        "repeats": args.repeats,
        "cpu_s_median": {k: round(v, 4) for k, v in med.items()},
        "cpu_s_best": {k: round(min(v), 4) for k, v in runs.items()},
        "first_call_cpu_s": {k: round(v, 3) for k, v in warm.items()},
        "ratio_all_effects": round(med["librosa"] / med["songgate"], 2),
        "ratio_spectrum_only": round(med["librosa_spectrum"] / med["songgate_spectrum"], 2),
        "artifact_bytes": sizes,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"visualizer effects, {args.seconds:.0f} s stereo {SR} Hz, CPU seconds beyond decoding "
          f"(median / best of {args.repeats}, one thread)")  # fmt: skip
    print(f"  songgate all effects   {med['songgate']:.3f} / {min(runs['songgate']):.3f}")
    print(f"  librosa  all effects   {med['librosa']:.3f} / {min(runs['librosa']):.3f}")
    print(f"  ratio (librosa / songgate), all effects: {result['ratio_all_effects']:.2f}x")
    print(f"  songgate spectrum only {med['songgate_spectrum']:.3f}   librosa spectrum only "
          f"{med['librosa_spectrum']:.3f}   ratio {result['ratio_spectrum_only']:.2f}x")  # fmt: skip
    print(
        f"  first call (imports, numba JIT): songgate {warm['songgate']:.2f} s, librosa {warm['librosa']:.2f} s"
    )
    print(f"  artifact bytes: {sizes}")


if __name__ == "__main__":
    main()
