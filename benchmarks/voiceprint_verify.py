"""Verification latency end to end through the API, with the real model: median under 300 ms for a
5-second utterance is the target.

Starts the app (the real lifespan: migrations, worker pool, the installed ECAPA embedder) under
uvicorn on a loopback port, enrolls one reader from three LibriSpeech segments, then times
``POST /v1/voiceprints/{user}/verifications`` (multipart upload of a 5 s FLAC + challenge id: upload,
decode in the worker pool, VAD, embedding, scoring, storage). Each request sends different bytes
(a new segment, or a copy with one LSB changed), since byte-identical audio is refused as a replay.
The challenge request is timed separately. As a peer, the same work is timed in-process without HTTP
or the database (decode + VAD + embed + cosine), so the API's own overhead is visible as a ratio.

Usage::

    .venv/bin/python benchmarks/voiceprint_verify.py --requests 30 [--json]

Needs ``songgate models pull`` (ECAPA in ./var/models) and ../shared/data/speech.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIBRI = ROOT.parent / "shared" / "data" / "speech" / "librispeech-train-clean-100-excerpts"


def flac_bytes(y: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def segments(seconds: float) -> list[tuple[str, np.ndarray]]:
    import soundfile as sf

    out = []
    n = int(seconds * 16000)
    for path in sorted(LIBRI.glob("*.flac")):
        y, sr = sf.read(path, dtype="float32")
        if sr != 16000:
            continue
        speaker = path.name.split("-")[0]
        out += [(speaker, y[i * n : (i + 1) * n]) for i in range(y.size // n)]
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2, help="API worker pool size (process mode)")
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="voiceprint.torch_threads for the API process (0: torch's default)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # The lifespan loads the embedder with the process settings: make them carry the thread count.
    os.environ["SONGGATE_VOICEPRINT__TORCH_THREADS"] = str(args.torch_threads)
    import httpx
    import uvicorn

    from core.settings import get_settings

    get_settings.cache_clear()

    from api.app import create_app
    from core.settings import Settings
    from db import keys
    from voiceprint.config import ModelThresholds

    segs = segments(args.seconds)
    by_speaker: dict[str, list[np.ndarray]] = {}
    for spk, y in segs:
        by_speaker.setdefault(spk, []).append(y)
    reader, own = max(by_speaker.items(), key=lambda kv: len(kv[1]))
    if len(own) < 3:
        raise SystemExit(f"need a reader with at least 3 segments of {args.seconds} s")
    # Latency is the point: test segments are the reader's own (held out when the reading is long
    # enough, else the enrollment segments with one LSB changed, which the replay check lets through).
    tests = own[3:] or own

    tmp = Path(tempfile.mkdtemp(prefix="sg-verify-bench-"))
    base = Settings(
        env="test",
        data_dir=tmp,
        model_dir=ROOT / "var" / "models",
        workers=args.workers,
        worker_mode="process",
        load_models=True,
    )
    # Thresholds: the registry's calibration when present; a fallback so an uncalibrated install runs.
    from voiceprint.embedders import load_embedder

    model_id = load_embedder("ecapa", model_dir=base.resolved_model_dir).model_id
    vp = base.voiceprint.model_copy(
        update={
            "torch_threads": args.torch_threads,
            "thresholds": {model_id: ModelThresholds(cosine=0.35)},
            "verify_rate_limit": 10_000,
            "challenge_rate_limit": 10_000,
            "enroll_min_snr_db": 10.0,
            "cohort_source": "none",
        }
    )
    settings = base.model_copy(update={"voiceprint": vp})
    app = create_app(settings)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    app.state.pool.warm_up()
    with app.state.session_factory() as s, s.begin():
        _, key = keys.create_key(s, name="bench", scopes=["admin"])
    headers = {"Authorization": f"Bearer {key}"}
    url = f"http://127.0.0.1:{port}/v1/voiceprints/{reader}"

    with httpx.Client(timeout=120) as c:
        for i, y in enumerate(own[:3]):
            r = c.post(f"{url}/enrollments", headers=headers, files={"file": (f"e{i}.flac", flac_bytes(y))})
            r.raise_for_status()
        verify_ms, challenge_ms, decisions = [], [], []
        for i in range(args.requests + 2):
            y = tests[i % len(tests)].copy()
            y[i % y.size] += np.float32(1 / 32768) * (1 + i // len(tests))  # new bytes, same audio
            body = flac_bytes(y)
            t0 = time.perf_counter()
            ch = c.post(f"{url}/challenges", headers=headers)
            t1 = time.perf_counter()
            ch.raise_for_status()
            r = c.post(
                f"{url}/verifications",
                headers=headers,
                data={"challenge_id": ch.json()["challenge_id"]},
                files={"file": ("v.flac", body)},
            )
            t2 = time.perf_counter()
            r.raise_for_status()
            if i >= 2:  # the first two warm the worker processes and the VAD
                challenge_ms.append((t1 - t0) * 1e3)
                verify_ms.append((t2 - t1) * 1e3)
                decisions.append(r.json()["decision"])
    server.should_exit = True
    thread.join(timeout=30)

    # Peer: the same work in-process, no HTTP, no database.
    from audio.decode import decode_file
    from voiceprint.service import embed_samples, speech_of

    embedder = app.state.embedder  # the very instance the API used (same precision)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)  # as the pool workers do: no oversubscription
    enrolled = np.mean([embed_samples(embedder, speech_of(y, vp)) for y in own[:3]], axis=0)
    peer_ms = []
    f = tmp / "peer.flac"
    for i in range(args.requests):
        f.write_bytes(flac_bytes(tests[i % len(tests)]))
        t0 = time.perf_counter()
        y = decode_file(f, sr=16000, mono=True).samples[0]
        v = embed_samples(embedder, speech_of(y, vp))
        float(v @ enrolled)
        peer_ms.append((time.perf_counter() - t0) * 1e3)

    report = {
        "utterance_s": args.seconds,
        "requests": len(verify_ms),
        "model_id": model_id,
        "verify_median_ms": round(statistics.median(verify_ms), 1),
        "verify_p90_ms": round(pct(verify_ms, 90), 1),
        "challenge_median_ms": round(statistics.median(challenge_ms), 1),
        "peer_in_process_median_ms": round(statistics.median(peer_ms), 1),
        "api_over_peer": round(statistics.median(verify_ms) / statistics.median(peer_ms), 2),
        "accepts": decisions.count("accept"),
        "workers": args.workers,
        "torch_threads": args.torch_threads,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:>26}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
