"""Engine and session factory for SQLite (embedded default, WAL mode) and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

READ_ONLY_OPTION = "songgate_read_only"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def make_engine(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An engine for ``url``; with ``background_checkpoints`` a SQLite engine leaves WAL
    checkpoints to a :class:`db.checkpoint.WalCheckpointer` (the caller runs one)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # no pool_pre_ping: a file database does not drop connections, and the ping would cost
        # a statement on every checkout
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy issue BEGIN itself so we can use BEGIN IMMEDIATE where writes race.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # after a checkpoint empties the log, shrink the file back to at most 64 MiB
            cur.execute("PRAGMA journal_size_limit=67108864")
            if background_checkpoints:  # db.checkpoint.WalCheckpointer does it off the request path
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Writers take the lock up front (IMMEDIATE): a deferred transaction that read first and
            # writes later can fail with SQLITE_BUSY_SNAPSHOT under races, which busy_timeout does not
            # retry. Read-only sessions use a plain deferred BEGIN so they never hold the write lock.
            if conn.get_execution_options().get(READ_ONLY_OPTION):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that may write (on SQLite each transaction takes the write lock at BEGIN)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only: on SQLite they never take the write lock. Writing through one is a bug."""
    return sessionmaker(bind=engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with factory() as session:
        with session.begin():
            yield session
