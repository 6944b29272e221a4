"""A bounded pool for CPU-heavy work (decoding, analysis, embedding) so it never runs on the event loop.

Process mode (default) isolates CPU work from the API process entirely; thread mode is for tests and
small deployments. The pool admits at most ``workers * queue_factor`` jobs at once; further callers
wait (back-pressure) instead of piling work up without bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def _worker_init() -> None:
    # The parent handles Ctrl-C; numeric libraries get one thread each so workers don't oversubscribe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # torch is optional for most work
        pass


class WorkerPool:
    def __init__(
        self,
        *,
        workers: int,
        mode: Literal["process", "thread"] = "process",
        queue_factor: int = 4,
        warm_up: Callable[[], None] | None = None,
    ):
        self.workers = workers
        self.mode = mode
        if mode == "process":
            self._executor: cf.Executor = cf.ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init
            )
        else:
            self._executor = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="songgate-cpu")
        self._slots = asyncio.Semaphore(workers * queue_factor)
        self.in_flight = 0
        self._warm_up_fn = warm_up

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool; in process mode ``fn`` must be a top-level function."""
        async with self._slots:
            self.in_flight += 1
            try:
                loop = asyncio.get_running_loop()
                if kwargs:
                    import functools

                    fn = functools.partial(fn, **kwargs)
                return await loop.run_in_executor(self._executor, fn, *args)
            finally:
                self.in_flight -= 1

    def warm_up(self) -> None:
        """Start the worker processes and run the warm-up function in each, in the background, so the
        first real request does not pay for process start, imports and JIT compilation."""
        if self.mode == "process" and self._warm_up_fn is not None:
            for _ in range(self.workers):
                self._executor.submit(self._warm_up_fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
