"""Voice search benchmark: recall@10 against exact search and single-query latency at 100k voiceprints.

Runs the service's own :class:`voiceprint.search.VoiceIndex` (its default at this size, ``pq``: 4-bit
PQ fast-scan + exact re-rank; and ``hnsw`` for comparison) and,
side by side on the same vectors and queries, an exact faiss ``IndexFlatIP`` as the peer. Queries are
issued one at a time, as the API does, and timed end to end through ``VoiceIndex.search`` (Python
overhead, tombstone filter and result mapping included).

Data (no real voiceprints of 100k people exist here, so two synthetic stand-ins):

* ``anisotropic`` (default): 192-d vectors whose variance decays like a real speaker-embedding
  space (a few dozen strong directions), plus 5 % "multi-account" users who share a voice with
  another user (a near-duplicate vector) -- the case the search exists for;
* ``isotropic``: uniform on the sphere, the hardest case for a graph index (no structure at all).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/voice_search.py --n 100000 --queries 2000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceprint.search import IndexParams, VoiceIndex  # noqa: E402


def make_data(kind: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "isotropic":
        x = rng.standard_normal((n, d))
    else:
        scales = 1.0 / np.sqrt(1.0 + np.arange(d) / 4.0)  # variance decays over the directions
        basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
        x = (rng.standard_normal((n, d)) * scales) @ basis.T
        dup = rng.choice(n, n // 20, replace=False)  # 5 % share a voice with another account
        src = rng.integers(0, n, dup.size)
        x[dup] = x[src] + 0.15 * rng.standard_normal((dup.size, d)) * scales.mean()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def make_queries(x: np.ndarray, q: int, rng: np.random.Generator) -> np.ndarray:
    """Half: an existing user's voice re-recorded (near an entry); half: fresh random voices."""
    near = x[rng.choice(x.shape[0], q // 2, replace=False)] + 0.05 * rng.standard_normal((q // 2, x.shape[1]))
    fresh = make_data("anisotropic", q - q // 2, x.shape[1], rng)
    out = np.concatenate([near, fresh]).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def latencies(fn, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Wall-clock and this thread's CPU time per query, ms. On a shared machine the wall tail is
    mostly preemption by other processes; CPU time shows the work itself."""
    for v in queries[:50]:  # warm-up
        fn(v)
    wall = np.empty(len(queries))
    cpu = np.empty(len(queries))
    for i, v in enumerate(queries):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(v)
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return wall * 1e3, cpu * 1e3


def summary(ms: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    wall, cpu = ms
    return {
        "p50_ms": round(float(np.percentile(wall, 50)), 4),
        "p99_ms": round(float(np.percentile(wall, 99)), 4),
        "mean_ms": round(float(wall.mean()), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--data", choices=["anisotropic", "isotropic"], default="anisotropic")
    ap.add_argument("--kinds", nargs="+", choices=["pq", "hnsw"], default=["pq", "hnsw"])
    ap.add_argument("--refine-factor", type=int, default=IndexParams().refine_factor)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[128])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]

    import faiss

    rng = np.random.default_rng(args.seed)
    x = make_data(args.data, args.n, args.dim, rng)
    queries = make_queries(x, args.queries, rng)
    users = [f"user{i}" for i in range(args.n)]

    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    _, truth = exact.search(queries, args.k)
    exact_ms = latencies(lambda v: exact.search(v[None, :], args.k), queries)

    pos = {u: i for i, u in enumerate(users)}

    def measure(index: VoiceIndex, label: str, **extra: object) -> dict[str, object]:
        got = index.search(queries, k=args.k)
        recall = float(
            np.mean(
                [
                    len({pos[h.user_id] for h in g} & set(t.tolist())) / args.k
                    for g, t in zip(got, truth, strict=False)
                ]
            )
        )
        ms = latencies(lambda v: index.search(v, k=args.k), queries)
        return {"index": label, **extra, f"recall_at_{args.k}": round(recall, 4), **summary(ms)}

    results = []
    for kind in args.kinds:
        if kind == "pq":
            params = IndexParams(kind="pq", refine_factor=args.refine_factor)
        else:
            params = IndexParams(
                kind="hnsw", hnsw_m=args.m, ef_construction=args.ef_construction, ef_search=args.ef_search[0]
            )
        index = VoiceIndex("bench@1", args.dim, params)
        t0 = time.perf_counter()
        index.upsert(users, users, x)
        build_s = round(time.perf_counter() - t0, 2)
        if kind == "pq":
            results.append(
                measure(
                    index,
                    f"pq4 fast-scan + exact re-rank x{args.refine_factor} (service default)",
                    build_s=build_s,
                )
            )
            continue
        for ef in args.ef_search:
            index.tune(ef_search=ef)
            results.append(
                measure(index, f"hnsw M={args.m} efC={args.ef_construction} efS={ef}", build_s=build_s)
            )

    report = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "data": args.data,
        "hnsw_m": args.m,
        "ef_construction": args.ef_construction,
        "faiss": faiss.__version__,
        "omp_threads": faiss.omp_get_max_threads(),
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu": platform.processor() or platform.machine(),
        "exact_flat_ip": summary(exact_ms),
        "indexes": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.n} x {args.dim} ({args.data}), {args.queries} single queries, k={args.k}")
        print(
            f"  exact IndexFlatIP: p50 {report['exact_flat_ip']['p50_ms']} ms  p99 {report['exact_flat_ip']['p99_ms']} ms"
        )
        for r in results:
            print(
                f"  {r['index']}: recall@{args.k} {r[f'recall_at_{args.k}']}  p50 {r['p50_ms']} ms  "
                f"p99 {r['p99_ms']} ms  cpu p99 {r['cpu_p99_ms']} ms  (build {r['build_s']} s)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
