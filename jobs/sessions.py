"""Read-only sessions for the jobs code's many reads (pending items, status, output, flip report).

On SQLite a normal session takes the write lock at BEGIN; reading through these instead means a
status poll, the output export or the next chunk of pending items never queues behind (or blocks)
the runner's commits. PostgreSQL is unaffected.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_read_session_factory


def reader(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Read-only sessions on the engine ``factory`` is bound to. Writing through one is a bug."""
    return make_read_session_factory(factory.kw["bind"])
