"""Transactions for the claims service: commit on success, and also on *persisting* refusals.

A refusal such as ``not_listened`` or a rejected heartbeat must still leave its trace (the risk
audit row, the rejected-heartbeat counter) while nothing else of the request is written; the
domain functions guarantee they only wrote that trace before raising an error whose ``persist``
attribute is true. Any other exception rolls everything back.

PostgreSQL: :func:`lock_packet` takes ``SELECT ... FOR UPDATE`` on the packet row, which
serializes every claim on one packet; :func:`lock_keys` takes transaction-scoped advisory locks
(claimant, device, IP, sender) so per-day counters stay exact across packets. SQLite: the engine
already starts every transaction with ``BEGIN IMMEDIATE`` (one writer at a time), so both are
no-ops there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from claims.errors import PacketNotFound
from claims.tables import Packet


class _WriterLock:
    """This process's writers queue on an RLock; processes queue on an ``flock`` of a file next
    to the database, so the outermost holder also owns the cross-process turn."""

    def __init__(self, database: str | None) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd = -1
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                self.fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # read-only directory: SQLite's own busy handler still serializes
                self.fd = -1


_WRITER_LOCKS: dict[int, _WriterLock] = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def sqlite_writer(engine: Any) -> Iterator[None]:
    """SQLite has one writer at a time; queue writers on locks instead of letting them poll in
    SQLite's busy handler, which sleeps up to 100 ms per retry (a long latency tail, and lost
    throughput when several API workers write). Threads wait on an RLock, processes on a blocking
    ``flock`` that wakes the next one as soon as the holder commits. Writers that do not come
    through here (CLI jobs, other tools) still meet SQLite's ``busy_timeout``."""
    if engine is None or engine.dialect.name != "sqlite":
        yield
        return
    with _LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(id(engine))
        if lock is None:
            lock = _WRITER_LOCKS[id(engine)] = _WriterLock(engine.url.database)
    with lock.rlock:
        outermost = lock.depth == 0
        lock.depth += 1
        try:
            if outermost and lock.fd >= 0:
                fcntl.flock(lock.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if outermost and lock.fd >= 0:
                    fcntl.flock(lock.fd, fcntl.LOCK_UN)
        finally:
            lock.depth -= 1


@contextlib.contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    db = factory()
    try:
        with sqlite_writer(factory.kw.get("bind")):
            db.begin()
            try:
                yield db
                db.commit()
            except BaseException as exc:
                if getattr(exc, "persist", False):
                    db.commit()
                else:
                    db.rollback()
                raise
    finally:
        db.close()


@contextlib.contextmanager
def core_transaction(engine: Engine) -> Iterator[Connection]:
    """:func:`unit_of_work` for Core-only hot paths (heartbeats): a connection, no ORM session."""
    with sqlite_writer(engine), engine.connect() as conn:
        conn.begin()
        try:
            yield conn
            conn.commit()
        except BaseException as exc:
            if getattr(exc, "persist", False):
                conn.commit()
            else:
                conn.rollback()
            raise


def is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def lock_packet(db: Session, packet_id: str) -> Packet:
    """The packet row, locked for the rest of the transaction (``FOR UPDATE`` on PostgreSQL)."""
    packet = db.scalars(
        select(Packet)
        .where(Packet.id == packet_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if packet is None:
        raise PacketNotFound(f"no red packet {packet_id!r}")
    return packet


def lock_keys(db: Session, *keys: str | None) -> None:
    """Transaction-scoped advisory locks on PostgreSQL, taken in sorted order (no deadlocks)."""
    if not is_postgres(db):
        return
    for key in sorted({k for k in keys if k}):
        db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
