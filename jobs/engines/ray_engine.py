"""Ray engine: Ray Data ``map_batches`` over an actor pool; each actor loads the job's models once.

``address`` joins an existing cluster (``ray://head:10001`` or ``auto``); without it a private local
instance is started (``num_cpus`` from settings, no dashboard, no usage stats, no progress bars or
log forwarding) and shut down again when the job ends.

Items travel as pickled :class:`jobs.items.ItemTask` bytes and come back as pickled
:class:`jobs.items.Outcome` bytes: results are nested and heterogeneous, and this keeps Arrow out of
their way. Work is fed in chunks of ``chunk`` items, one dataset each, so the driver never holds
millions of items; actors are rebuilt per chunk, i.e. models load once per actor per chunk.

On a cluster the workers need songgate installed (same version) and the blob store at the same
path on every node; see docs/batch.md.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jobs.errors import EngineUnavailable
from jobs.items import ItemTask, Outcome, WorkerSpec

ROOT = Path(__file__).resolve().parents[2]


def _quiet_env() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # The C++ core worker warns at ERROR level about Ray Data's own actor constructor arguments
    # (ray-project/ray#53727) once per actor pool; only fatal backend messages reach the terminal.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


def _code_path() -> str:
    """PYTHONPATH for local Ray workers: the repo root and any non-library entries of our sys.path
    (so ``module:attr`` embedders importable here are importable in the actors too)."""
    skip = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)}
    keep = [str(ROOT)]
    for p in sys.path:
        if not p or not os.path.isdir(p) or "site-packages" in p or "dist-packages" in p:
            continue
        rp = str(Path(p).resolve())
        if any(rp.startswith(s) for s in skip) or rp in keep:
            continue
        keep.append(rp)
    return os.pathsep.join(keep)


def _actor_class(spec: WorkerSpec) -> type:
    """An actor class with the spec baked in (no constructor arguments in the object store)."""

    class SonggateItemActor:
        def __init__(self) -> None:
            from jobs.engines.local import _worker_init

            _worker_init(spec)  # same per-process set-up as the local engine

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            from jobs.engines.local import _run

            outs = [
                pickle.dumps(_run(pickle.loads(b)), protocol=pickle.HIGHEST_PROTOCOL) for b in batch["task"]
            ]
            return {"seq": np.asarray(batch["seq"]), "outcome": np.array(outs, dtype=object)}

    return SonggateItemActor


def init_ray(
    *, address: str | None = None, num_cpus: int = 2, object_store_mb: int = 256
) -> tuple[Any, bool]:
    """Connect to Ray quietly: join ``address``, or start a private local instance; returns
    ``(ray module, whether this call started it)``. An already initialized Ray is reused as is."""
    _quiet_env()
    try:
        import ray
        import ray.data
    except ImportError as exc:  # pragma: no cover - ray[data] is a declared dependency
        raise EngineUnavailable(f"ray is not installed: {exc}") from None
    for name in ("ray", "ray.data", "ray.serve", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(
            include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True
        )
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(
                    num_cpus=num_cpus,
                    object_store_memory=object_store_mb * 1024 * 1024,
                    runtime_env={"env_vars": {"PYTHONPATH": _code_path()}},
                    **kwargs,
                )
        except Exception as exc:
            raise EngineUnavailable(f"could not start or join Ray: {exc}") from exc
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    return ray, started


class RayEngine:
    name = "ray"

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        workers: int,
        address: str | None = None,
        batch_size: int = 4,
        chunk: int = 20_000,
        local_num_cpus: int = 2,
        object_store_mb: int = 256,
        num_gpus_per_actor: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError("the ray engine needs workers >= 1")
        self.spec = spec
        self.workers = workers
        self.address = address
        self.batch_size = batch_size
        self.chunk = chunk
        self.local_num_cpus = local_num_cpus
        self.object_store_mb = object_store_mb
        self.num_gpus = num_gpus_per_actor
        self._started = False

    def _init(self) -> Any:
        ray, started = init_ray(
            address=self.address, num_cpus=self.local_num_cpus, object_store_mb=self.object_store_mb
        )
        self._started = self._started or started
        return ray

    def process(self, tasks: Iterable[ItemTask]) -> Generator[Outcome, None, None]:
        ray = self._init()
        actor = _actor_class(self.spec)
        try:
            batch: list[dict[str, Any]] = []
            for task in tasks:
                batch.append({"seq": task.seq, "task": pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)})
                if len(batch) >= self.chunk:
                    yield from self._run_chunk(ray, actor, batch)
                    batch = []
            if batch:
                yield from self._run_chunk(ray, actor, batch)
        finally:
            self.close()

    def _run_chunk(self, ray: Any, actor: type, items: list[dict[str, Any]]) -> Iterator[Outcome]:
        # Never more actors than there are batches: each extra actor would only load models.
        size = max(1, min(self.workers, -(-len(items) // self.batch_size)))
        ds = ray.data.from_items(items).map_batches(
            actor,
            batch_size=self.batch_size,
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
            num_gpus=self.num_gpus or None,
            batch_format="numpy",
        )
        for row in ds.iter_rows():
            yield pickle.loads(row["outcome"])

    def worker_pids(self) -> list[int]:
        return []

    def close(self) -> None:
        if self._started:
            self._started = False
            import ray

            ray.shutdown()
