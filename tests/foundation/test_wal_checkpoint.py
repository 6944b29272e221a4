"""The API's SQLite engine leaves WAL checkpoints to a background thread, off the request path."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from db.checkpoint import WalCheckpointer
from db.engine import make_engine, sqlite_path


def _fill(engine, rows: int) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)"))
    for _ in range(rows // 100):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES " + ",".join(["(randomblob(2000))"] * 100)))


def test_commits_do_not_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    path = sqlite_path(url)
    assert path == str(tmp_path / "wal.db")
    engine = make_engine(url, background_checkpoints=True)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    _fill(engine, 3000)  # ~6 MB: several automatic checkpoints' worth of log
    db, wal = Path(path), Path(f"{path}-wal")
    # nothing was copied into the database by the commits themselves: it is all in the log
    assert db.stat().st_size < 2**20 and wal.stat().st_size > 4 * 2**20

    checkpointer = WalCheckpointer(path, interval_s=0.05).start()
    _fill(engine, 500)
    checkpointer.stop()  # a last checkpoint on the way out
    assert checkpointer.checkpoints >= 1
    assert db.stat().st_size > 6 * 2**20  # the thread copied the log into the database
    engine.dispose()


def test_only_file_databases_get_a_checkpointer() -> None:
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/db") is None
    assert sqlite_path("sqlite:////var/lib/songgate.db") == "/var/lib/songgate.db"
