"""Local engine: a ``spawn`` process pool whose initializer loads the job's models once per worker.

At most ``workers * max_in_flight_per_worker`` items are queued at once (bounded memory on huge
jobs; enough queued that no worker waits on the parent). If a worker process dies under an item
(segfault, OOM killer) the pool is rebuilt and each item that was in flight is retried alone; an
item that kills a worker while alone ``max_attempts`` times fails with ``worker_crashed``, so the
innocent items that shared the pool with it are never failed.

``workers=0`` runs every item in the calling process (debugging, and jobs started in-process).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from jobs.items import ItemTask, Outcome, WorkerSpec, WorkerState, init_state, run_item

_STATE: WorkerState | None = None
_INIT_ERROR: str | None = None


def _worker_init(spec: WorkerSpec) -> None:
    """Pool initializer: quiet Ctrl-C (the parent decides), one thread per numeric library, and the
    job's models loaded once for every item this process will run."""
    global _STATE, _INIT_ERROR
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (a Ray actor may run its methods in another thread)
        pass
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if "voiceprint" in spec.what:  # only embedders need torch (importing it costs ~0.5 GB and seconds)
        try:
            import torch

            torch.set_num_threads(1)
        except Exception:
            pass
    try:
        _STATE = init_state(spec)
    except Exception as exc:  # reported per item instead of killing the pool in a loop
        _INIT_ERROR = f"{type(exc).__name__}: {exc}"


def _run(task: ItemTask) -> Outcome:
    if _STATE is None:
        return Outcome(task.seq, "failed", error_code="worker_init_failed", error_detail=_INIT_ERROR)
    return run_item(_STATE, task)


class LocalEngine:
    name = "local"

    def __init__(
        self, spec: WorkerSpec, *, workers: int, max_in_flight_per_worker: int = 2, max_attempts: int = 2
    ) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.spec = spec
        self.workers = workers
        self.limit = max(1, workers) * max_in_flight_per_worker
        self.max_attempts = max_attempts
        self._executor: cf.ProcessPoolExecutor | None = None

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.spec,),
        )

    def process(self, tasks: Iterable[ItemTask]) -> Generator[Outcome, None, None]:
        if self.workers == 0:
            state = init_state(self.spec, warm=False)  # no point warming up in-process
            for task in tasks:
                yield run_item(state, task)
            return
        source = iter(tasks)
        # Items that were in flight when a worker died. Any of them may be the culprit, so each is
        # retried ALONE: an innocent item then succeeds, and a crash with one item in flight is proof.
        suspects: collections.deque[ItemTask] = collections.deque()
        crashes: dict[int, int] = {}
        in_flight: dict[cf.Future[Outcome], ItemTask] = {}
        exhausted = False
        self._executor = self._new_executor()
        try:
            while True:
                if suspects:
                    if not in_flight:
                        task = suspects.popleft()
                        in_flight[self._executor.submit(_run, task)] = task
                else:
                    while not exhausted and len(in_flight) < self.limit:
                        nxt = next(source, None)
                        if nxt is None:
                            exhausted = True
                        else:
                            in_flight[self._executor.submit(_run, nxt)] = nxt
                if not in_flight:
                    return
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                alone = len(in_flight) == 1
                broken = False
                for fut in done:
                    task = in_flight.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        yield from self._crashed(task, crashes, suspects, alone=alone)
                        continue
                    crashes.pop(task.seq, None)
                    yield outcome
                if broken:
                    # Every other in-flight item died with the pool: all of them become suspects.
                    for task in list(in_flight.values()):
                        yield from self._crashed(task, crashes, suspects, alone=False)
                    in_flight.clear()
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
        finally:
            self.close()

    def _crashed(
        self, task: ItemTask, crashes: dict[int, int], suspects: collections.deque[ItemTask], *, alone: bool
    ) -> Iterator[Outcome]:
        """A worker died with ``task`` in flight: fail it once it has killed ``max_attempts`` workers
        while running alone, else retry it (alone)."""
        crashes[task.seq] = crashes.get(task.seq, 0) + 1
        if alone and crashes[task.seq] >= self.max_attempts:
            crashes.pop(task.seq, None)
            yield Outcome(
                task.seq,
                "failed",
                error_code="worker_crashed",
                error_detail=f"the worker process died while processing this item, {self.max_attempts} times",
            )
        else:
            suspects.append(task)

    def worker_pids(self) -> list[int]:
        ex = self._executor
        procs: dict[int, Any] = getattr(ex, "_processes", None) or {}
        return [p.pid for p in procs.values() if p.is_alive()]

    def close(self) -> None:
        ex, self._executor = self._executor, None
        if ex is not None:
            # Queued items are dropped; running ones finish or die with the pool (nothing is committed
            # for them, so a resumed job redoes them).
            procs = list((getattr(ex, "_processes", None) or {}).values())
            ex.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.terminate()
