"""Group commit for heartbeats: one writer thread per process folds queued heartbeats into one
transaction.

Why: a heartbeat is three small statements, but a transaction of its own also pays a connection
checkout, ``BEGIN IMMEDIATE`` and ``COMMIT``, and a thread hop per request; and SQLite's single
writer makes concurrent requests queue on the database lock anyway. The writer takes whatever
heartbeats are waiting (up to ``max_batch``), runs :func:`claims.sessions.record_heartbeat` for
each in order inside one transaction, commits, and only then answers every request: an answer
still means the evidence is durable.

Failure isolation is the same as one transaction per heartbeat: a refusal (``ClaimsError``) is
that heartbeat's answer and leaves only the trace the domain code persists on purpose (the
rejected counter, the token-reuse audit row; refusals without ``persist`` write nothing before
they raise). Any other error rolls the batch back, and its heartbeats are then run again one
transaction each, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from sqlalchemy import Engine

from claims.errors import ClaimsError
from claims.sessions import HeartbeatAnswer, record_heartbeat
from claims.uow import core_transaction

log = logging.getLogger(__name__)

_STOP = object()


class HeartbeatWriter:
    """Runs :func:`record_heartbeat` calls for the event loop, batched into transactions.

    Parameters
    ----------
    engine : the database
    max_batch : heartbeats per transaction at most (bounds the lock hold time)
    """

    def __init__(self, engine: Engine, *, max_batch: int = 64) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self.batches = 0  # transactions committed (for tests and metrics)

    async def submit(self, **kwargs: Any) -> HeartbeatAnswer:
        """Record one heartbeat (``record_heartbeat``'s keyword arguments, without ``db``).

        Raises whatever ``record_heartbeat`` raises for this heartbeat.
        """
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HeartbeatAnswer] = loop.create_future()
        self._queue.put((kwargs, loop, future))
        return await future

    def close(self) -> None:
        """Finish what is queued and stop the thread."""
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=30)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._process(batch)
            if stop:
                return

    def _process(self, batch: list[Any]) -> None:
        try:
            outcomes = self._in_one_transaction([kwargs for kwargs, _, _ in batch])
        except Exception:  # a database error: isolate it by running each heartbeat alone
            if len(batch) > 1:
                log.warning("heartbeat batch of %d failed; retrying one by one", len(batch), exc_info=True)
            outcomes = [self._alone(kwargs) for kwargs, _, _ in batch]
        for outcome, (_, loop, future) in zip(outcomes, batch, strict=True):
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the request's event loop is gone (shutdown)
                pass

    def _in_one_transaction(self, calls: list[dict[str, Any]]) -> list[HeartbeatAnswer | BaseException]:
        outcomes: list[HeartbeatAnswer | BaseException] = []
        with core_transaction(self._engine) as conn:
            for kwargs in calls:
                try:
                    outcomes.append(record_heartbeat(conn, **kwargs))
                except ClaimsError as exc:
                    outcomes.append(exc)
        self.batches += 1
        return outcomes

    def _alone(self, kwargs: dict[str, Any]) -> HeartbeatAnswer | BaseException:
        try:
            with core_transaction(self._engine) as conn:
                return record_heartbeat(conn, **kwargs)
        except Exception as exc:  # delivered to the request, which maps it to problem+json
            return exc


def _settle(future: asyncio.Future[HeartbeatAnswer], outcome: HeartbeatAnswer | BaseException) -> None:
    if future.done():  # the request was cancelled (client gone); the evidence is recorded anyway
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
