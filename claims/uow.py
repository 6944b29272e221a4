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
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from claims.errors import PacketNotFound
from claims.tables import Packet

_WRITER_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def sqlite_writer(engine: Any) -> Iterator[None]:
    """SQLite has one writer at a time; queue this process's writers on a lock instead of letting
    them poll in SQLite's busy handler (sleeps of up to 100 ms: a long latency tail under load).
    Other processes still wait on the database lock itself (``busy_timeout``)."""
    if engine is None or engine.dialect.name != "sqlite":
        yield
        return
    with _LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(id(engine), threading.RLock())
    with lock:
        yield


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
