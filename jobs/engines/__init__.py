"""Execution engines: each turns a stream of :class:`jobs.items.ItemTask` into a stream of
:class:`jobs.items.Outcome` (in completion order), loading models once per worker.

``local``: a spawn-context process pool on this machine. ``ray``: Ray Data ``map_batches`` with an
actor pool, on a local Ray instance or an existing cluster.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Protocol

from jobs.items import ItemTask, Outcome


class Engine(Protocol):
    name: str
    workers: int

    def process(self, tasks: Iterable[ItemTask]) -> Generator[Outcome, None, None]:
        """Yield one Outcome per task, in completion order. Closing the generator stops the work."""

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for memory figures); empty when unknown."""

    def close(self) -> None:
        """Release workers (idempotent)."""
