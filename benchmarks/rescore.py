"""Batch re-scoring benchmark: items per second with 1 and 2 local workers, and memory per worker.

A manifest of synthetic recordings (stereo 44.1 kHz FLAC, chords + noise, ``--seconds`` long) is
re-scored with ``--what checks,effects`` by the real job runner (:mod:`jobs.runner`, SQLite in a temp
dir, results committed exactly as in production). Runs alternate 1, 2, 1, 2, ... workers so that the
load of a shared machine hits both alike. Per run:

* ``wall_s``: the whole job, worker start-up (spawn, imports, numba cache, warm-up) included;
* ``steady items/s``: after every worker delivered its first item, (n - w) / (t_last - t_w) --
  the rate a long job converges to, which is what the 1 -> 2 worker speed-up is about;
* ``peak RSS`` of each worker process (sampled every 0.1 s with psutil) and of the runner;
* CPU seconds used by the workers and by the runner (the parent that commits results): if the
  workers' CPU per item stays the same with 2 workers while the rate does not double, the missing
  speed-up is CPU the machine did not have to give, not overhead of the engine.

On a machine shared with other work, 2 workers can only scale as far as a second idle core exists:
before each pair of runs a CPU probe measures what 2 busy-looping processes get over 1 right then
(2.0 idle, ~1.0 saturated), and the load average before each run is printed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rescore.py [--items 24] [--seconds 20] [--repeats 2] [--json]
    .venv/bin/python benchmarks/rescore.py --engine ray --workers 2   # one Ray run, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SR = 44100


def synth(seconds: float, *, seed: int) -> np.ndarray:
    """A stereo "song": a few chords with harmonics and a little noise, float32 (2, n)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    for k, f0 in enumerate(rng.choice([110.0, 146.8, 164.8, 196.0, 220.0], size=4)):
        seg = (t >= k * seconds / 4) & (t < (k + 1) * seconds / 4)
        for h in range(1, 5):
            y[seg] += 0.15 / h * np.sin(2 * np.pi * f0 * h * t[seg])
    left = y + 0.01 * rng.standard_normal(n)
    right = 0.9 * y + 0.01 * rng.standard_normal(n)
    return np.stack([left, right]).astype(np.float32)


def make_manifest(directory: Path, *, items: int, seconds: float) -> Path:
    import soundfile as sf

    lines = ["path"]
    for i in range(items):
        path = directory / f"song-{i:03d}.flac"
        sf.write(path, synth(seconds, seed=i).T, SR, format="FLAC")
        lines.append(path.name)
    manifest = directory / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _spin(seconds: float) -> int:
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10_000):
            n += 1
    return n


def cpu_probe(seconds: float = 2.0) -> float:
    """How much parallel CPU the machine gives right now: busy-loop throughput of 2 processes over
    1 (2.0 on an idle 2-core machine, ~1.0 when other work already fills the cores)."""
    import multiprocessing as mp

    rates = {}
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [0.05, 0.05])  # both processes started
        for w in (1, 2):
            rates[w] = sum(pool.map(_spin, [seconds] * w)) / seconds
    return rates[2] / rates[1]


class Timeline:
    """A Progress that records when each item finished."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def start(self, *, total: int, completed: int, description: str) -> None:
        self.t0 = time.perf_counter()

    def advance(self, *, failed: bool) -> None:
        self.times.append(time.perf_counter())

    def stop(self) -> None:
        pass


class MemorySampler(threading.Thread):
    def __init__(self, engine: Any) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.uss: dict[int, int] = {}
        self.parent_peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        ticks = 0
        while not self.halt.wait(0.1):
            ticks += 1
            self.parent_peak = max(self.parent_peak, me.memory_info().rss)
            for pid in self.engine.worker_pids():
                try:
                    proc = psutil.Process(pid)
                    rss = proc.memory_info().rss
                    cpu = proc.cpu_times()
                except psutil.Error:
                    continue
                self.peaks[pid] = max(self.peaks.get(pid, 0), rss)
                self.cpu[pid] = cpu.user + cpu.system
                if ticks % 10 == 0:  # USS reads /proc/PID/smaps: sample it less often
                    try:
                        self.uss[pid] = max(self.uss.get(pid, 0), proc.memory_full_info().uss)
                    except psutil.Error:
                        pass


def one_run(manifest: Path, workdir: Path, *, workers: int, engine_name: str, tag: str) -> dict[str, Any]:
    from core.settings import Settings
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade
    from jobs.runner import JobRequest, JobRunner, RunOptions, create_job, worker_spec
    from jobs.runner import make_engine as make_job_engine
    from jobs.tables import Job

    data = workdir / tag
    settings = Settings(env="test", data_dir=data, database_url=f"sqlite:///{data / 'bench.db'}")
    data.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    db = make_engine(settings.resolved_database_url)
    factory = make_session_factory(db)
    job_id, _ = create_job(
        factory,
        settings,
        JobRequest(what=("checks", "effects"), manifest=str(manifest)),
        options=RunOptions(engine=engine_name, workers=workers),
    )
    with factory() as s:
        params = s.get(Job, job_id).params
    engine = make_job_engine(
        engine_name, worker_spec(params, settings), workers=workers, settings=settings, ray_address=None
    )
    timeline = Timeline()
    sampler = MemorySampler(engine)
    load = os.getloadavg()[0]
    sampler.start()
    t0 = time.perf_counter()
    cpu0 = time.thread_time()  # the runner's own thread: not the sampler's
    status = JobRunner(factory, settings, job_id, engine=engine, progress=timeline).run()
    wall = time.perf_counter() - t0
    runner_cpu = time.thread_time() - cpu0
    sampler.halt.set()
    sampler.join()
    db.dispose()
    times = sorted(timeline.times)
    n = len(times)
    w = min(workers, n - 1) if n > 1 else 0
    # Items finished after the w-th (every worker has warmed up by then) over the time they took.
    steady = (n - w) / (times[-1] - times[w - 1]) if w >= 1 and times[-1] > times[w - 1] else None
    peaks = sorted(sampler.peaks.values())
    return {
        "engine": engine_name,
        "workers": workers,
        "items": n,
        "failed": status["failed"],
        "wall_s": round(wall, 2),
        "items_per_s_wall": round(n / wall, 3),
        "items_per_s_steady": round(steady, 3) if steady else None,
        "first_item_s": round(times[0] - t0, 2) if times else None,
        "worker_peak_rss_mb": [round(p / 2**20) for p in peaks],
        # Unique set size: memory only this worker holds (libraries are shared between workers).
        "worker_peak_uss_mb": sorted(round(p / 2**20) for p in sampler.uss.values()),
        # CPU seconds of all workers (start-up included; sampled, so a little low) and of the runner.
        "worker_cpu_s": round(sum(sampler.cpu.values()), 2),
        "runner_cpu_s": round(runner_cpu, 2),
        "runner_peak_rss_mb": round(sampler.parent_peak / 2**20),
        "load_avg_1m_before": round(load, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=2, help="Runs per worker count (alternating)")
    ap.add_argument("--engine", choices=["local", "ray"], default="local")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # Under the repo's ignored var/ (not /tmp, which other tools on a shared machine may sweep).
    root = Path(__file__).resolve().parents[1] / "var"
    root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-rescore-", dir=root) as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        manifest = make_manifest(work, items=args.items, seconds=args.seconds)
        print(
            f"# {args.items} items x {args.seconds:.0f} s stereo 44.1 kHz FLAC in {time.perf_counter() - t:.1f} s; "
            f"{os.cpu_count()} CPUs",
            file=sys.stderr,
        )
        runs = []
        probes = []
        for r in range(args.repeats):
            probes.append(round(cpu_probe(), 2))
            print(f"# machine headroom now: 2 busy processes do {probes[-1]}x the work of 1", file=sys.stderr)
            for w in args.workers:
                res = one_run(manifest, work, workers=w, engine_name=args.engine, tag=f"r{r}w{w}")
                res["cpu_probe_2_over_1"] = probes[-1]
                runs.append(res)
                print(json.dumps(res), file=sys.stderr)
    by: dict[int, list[dict[str, Any]]] = {}
    for res in runs:
        by.setdefault(res["workers"], []).append(res)
    summary = {}
    for w, rs in sorted(by.items()):
        steady = [r["items_per_s_steady"] for r in rs if r["items_per_s_steady"]]
        summary[w] = {
            "steady_items_per_s_median": round(statistics.median(steady), 3) if steady else None,
            "wall_items_per_s_median": round(statistics.median(r["items_per_s_wall"] for r in rs), 3),
            "worker_peak_rss_mb_max": max((m for r in rs for m in r["worker_peak_rss_mb"]), default=None),
            "worker_peak_uss_mb_max": max((m for r in rs for m in r["worker_peak_uss_mb"]), default=None),
            "worker_cpu_s_median": round(statistics.median(r["worker_cpu_s"] for r in rs), 2),
            "runner_cpu_s_median": round(statistics.median(r["runner_cpu_s"] for r in rs), 2),
            "runner_peak_rss_mb_max": max(r["runner_peak_rss_mb"] for r in rs),
        }
    out: dict[str, Any] = {
        "engine": args.engine,
        "items": args.items,
        "seconds": args.seconds,
        "runs": runs,
        "summary": summary,
        "cpu_probe_2_over_1": probes,
    }
    if 1 in summary and 2 in summary and summary[1]["steady_items_per_s_median"]:
        out["speedup_steady_1_to_2"] = round(
            summary[2]["steady_items_per_s_median"] / summary[1]["steady_items_per_s_median"], 2
        )
        out["speedup_wall_1_to_2"] = round(
            summary[2]["wall_items_per_s_median"] / summary[1]["wall_items_per_s_median"], 2
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{'workers':>7} {'steady items/s':>15} {'wall items/s':>13} {'worker RSS/USS':>15} {'runner RSS':>11}"
    )
    for w, s in summary.items():
        print(
            f"{w:>7} {s['steady_items_per_s_median'] or float('nan'):>15.3f} {s['wall_items_per_s_median']:>13.3f} "
            f"{str(s['worker_peak_rss_mb_max']) + '/' + str(s['worker_peak_uss_mb_max']) + ' MB':>15} "
            f"{str(s['runner_peak_rss_mb_max']) + ' MB':>11}"
        )
    if "speedup_steady_1_to_2" in out:
        print(
            f"speed-up 1 -> 2 workers: steady {out['speedup_steady_1_to_2']}x, whole job {out['speedup_wall_1_to_2']}x; "
            f"a pure CPU loop got {probes}x at the same times"
        )


if __name__ == "__main__":
    main()
