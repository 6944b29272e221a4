"""Embedding throughput: the project's ECAPA embedder vs speechbrain's own encode_batch, same CPU.

Both sides use the same weights (one ``EncoderClassifier`` loaded offline from the model registry;
the project's embedder wraps it), the same torch thread count and the same utterances: seeded
3-10 s excerpts of the LibriSpeech files in ../shared/data. Modes, run interleaved in rounds (the
order rotates each round) so that load from other processes hits all of them alike:

- ``ref_single``   speechbrain ``encode_batch(wav[None])`` per utterance (its documented usage)
- ``ref_batch8``   speechbrain ``encode_batch(wavs, wav_lens)`` on zero-padded batches of 8
- ``ours_single``  ``EcapaEmbedder.embed`` per utterance
- ``ours_batch``   ``EcapaEmbedder.embed_batch`` on all utterances (packed, no padding)
- ``ours_fp32``    ``embed_batch`` with the float32 graph (isolates the bf16 contribution)

Speedup = median over rounds of (reference time / ours time) within the same round, and the ratio
of best-of-rounds times (robust when other processes load the machine). Cosine
similarity is against ``ref_single`` per utterance. Also: latency of speech_only + embed for one
5-second utterance (the service's verification path minus HTTP and decoding).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/voiceprint.py --n 40 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "speech" / "librispeech-train-clean-100-excerpts"


def utterances(n: int, seed: int) -> list[np.ndarray]:
    """``n`` seeded 3-10 s excerpts (16 kHz float32) from distinct LibriSpeech files."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    files = sorted(DATA.glob("*.flac"))
    out = []
    for path in rng.permutation(files):
        y, sr = sf.read(path, dtype="float32")
        if sr != 16000 or len(y) < 3 * sr:
            continue
        length = int(rng.uniform(3.0, min(10.0, len(y) / sr)) * sr)
        start = int(rng.integers(0, len(y) - length + 1))
        out.append(np.ascontiguousarray(y[start : start + length]))
        if len(out) == n:
            break
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="utterances")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fp32", action="store_true", help="skip the float32-graph mode")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from core.settings import Settings
    from voiceprint.config import VoiceprintSettings
    from voiceprint.embedders import load_embedder
    from voiceprint.embedders.ecapa_graph import EcapaGraph
    from voiceprint.speech import embed_recording

    model_dir = args.model_dir or Settings().resolved_model_dir
    ours = load_embedder("ecapa", model_dir=model_dir, settings=VoiceprintSettings())
    classifier = ours.classifier  # speechbrain's own object, same weights
    ours_fp32 = None
    if not args.no_fp32:
        # Same embedder with a float32 graph (weights shared with the classifier).
        import copy

        ours_fp32 = copy.copy(ours)
        ours_fp32._graph = EcapaGraph(classifier.mods.embedding_model, dtype=torch.float32)
    ys = utterances(args.n, args.seed)
    audio_s = sum(len(y) for y in ys) / 16000
    print(
        f"{len(ys)} utterances, {audio_s:.1f} s audio, torch threads {torch.get_num_threads()}, "
        f"ours dtype {ours.dtype}",
        file=sys.stderr,
    )

    def ref_single() -> np.ndarray:
        with torch.no_grad():
            return np.stack(
                [classifier.encode_batch(torch.from_numpy(y)[None]).reshape(-1).numpy() for y in ys]
            )

    def ref_batch8() -> np.ndarray:
        rows = []
        with torch.no_grad():
            for i in range(0, len(ys), 8):
                chunk = ys[i : i + 8]
                longest = max(len(y) for y in chunk)
                wavs = torch.zeros(len(chunk), longest)
                for j, y in enumerate(chunk):
                    wavs[j, : len(y)] = torch.from_numpy(y)
                lens = torch.tensor([len(y) / longest for y in chunk])
                rows.append(classifier.encode_batch(wavs, lens)[:, 0].numpy())
        return np.concatenate(rows)

    modes = {
        "ref_single": ref_single,
        "ref_batch8": ref_batch8,
        "ours_single": lambda: np.stack([ours.embed(y, sr=16000) for y in ys]),
        "ours_batch": lambda: ours.embed_batch(ys, sr=16000),
    }
    if ours_fp32 is not None:
        modes["ours_fp32"] = lambda: ours_fp32.embed_batch(ys, sr=16000)

    # Warm-up (oneDNN primitive creation, lazy imports), then interleaved timed rounds.
    outputs = {name: fn() for name, fn in modes.items()}
    wall: dict[str, list[float]] = {name: [] for name in modes}
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            modes[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in wall.items()), file=sys.stderr)

    ref = outputs["ref_single"]
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "utterances": len(ys),
        "audio_s": round(audio_s, 1),
        "rounds": args.rounds,
        "ours_dtype": str(ours.dtype).removeprefix("torch."),
        "modes": {},
        "speedup_vs_ref_single": {},
        "speedup_vs_ref_batch8": {},
    }
    for name in modes:
        med = statistics.median(wall[name])
        cos = cosine_rows(outputs[name], ref)
        result["modes"][name] = {
            "wall_s_median": round(med, 3),
            "wall_s_min": round(min(wall[name]), 3),
            "cpu_s_median": round(statistics.median(cpu[name]), 3),
            "audio_x_realtime": round(audio_s / med, 1),
            "cosine_vs_ref_single_min": round(float(cos.min()), 6),
            "cosine_vs_ref_single_mean": round(float(cos.mean()), 6),
        }
    result["speedup_best_of_rounds"] = {}
    for base in ("ref_single", "ref_batch8"):
        for name in modes:
            if name.startswith("ours"):
                ratios = [b / o for b, o in zip(wall[base], wall[name], strict=False)]
                result[f"speedup_vs_{base}"][name] = round(statistics.median(ratios), 2)
                result["speedup_best_of_rounds"][f"{name}_vs_{base}"] = round(
                    min(wall[base]) / min(wall[name]), 2
                )

    # Verification-path latency: VAD + embed of one 5 s utterance (median of 15).
    five = next(y for y in ys if len(y) >= 5 * 16000)[: 5 * 16000]
    lat = []
    for _ in range(16):
        t0 = time.perf_counter()
        embed_recording(ours, five, sr=16000)
        lat.append(time.perf_counter() - t0)
    result["verify_5s_vad_plus_embed_ms_median"] = round(1000 * statistics.median(lat[1:]), 1)

    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
