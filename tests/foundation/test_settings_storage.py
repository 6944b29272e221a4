"""Settings, blob store, idempotency guard, API keys and migrations."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from core.settings import Settings, get_settings
from db.blobstore import LocalBlobStore


def test_env_prefix_nested_and_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SONGGATE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("SONGGATE_LIMITS__MAX_DURATION_S", "60")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s.data_dir == tmp_path / "d" and s.limits.max_duration_s == 60
        assert get_settings() is s  # cached
        assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'd' / 'songgate.db').resolve()}"
        assert s.resolved_blob_dir == (tmp_path / "d" / "blobs").resolve()
        assert s.resolved_model_dir == (tmp_path / "d" / "models").resolve()
    finally:
        get_settings.cache_clear()


def test_model_dir_can_be_shared(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path / "a", model_dir=tmp_path / "m")
    b = Settings(data_dir=tmp_path / "b", model_dir=tmp_path / "m")
    assert a.resolved_model_dir == b.resolved_model_dir
    assert a.resolved_database_url != b.resolved_database_url and a.resolved_blob_dir != b.resolved_blob_dir


@pytest.mark.parametrize(
    "kwargs,ok",
    [
        ({"env": "production"}, False),
        ({"env": "production", "secret_key": "short", "database_url": "postgresql://x/y"}, False),
        ({"env": "production", "secret_key": "k" * 40}, False),  # no database URL
        ({"env": "production", "secret_key": "k" * 40, "database_url": "postgresql://x/y"}, True),
        ({"env": "development"}, True),
    ],
)
def test_secrets_fail_fast_outside_development(kwargs: dict, ok: bool) -> None:  # type: ignore[type-arg]
    if ok:
        Settings(**kwargs)
    else:
        with pytest.raises(ValueError, match="required"):
            Settings(**kwargs)


def test_dev_secret_is_stable_per_data_dir(tmp_path: Path) -> None:
    a = Settings(data_dir=tmp_path / "a")
    assert a.secret() == a.secret() and len(a.secret()) >= 32
    assert Settings(data_dir=tmp_path / "b").secret() != a.secret()


def test_blob_store_is_content_addressed_and_atomic(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    sha, size = store.put_bytes(b"hello")
    assert sha == hashlib.sha256(b"hello").hexdigest() and size == 5
    assert store.path(sha).read_bytes() == b"hello"
    assert store.put_bytes(b"hello") == (sha, 5)

    def failing():  # type: ignore[no-untyped-def]
        yield b"partial data"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put_stream(failing(), max_bytes=1000)
    leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert leftovers == [store.path(sha)]  # no partial blob, no temp file


def test_blob_store_limit_and_bad_digest(tmp_path: Path) -> None:
    from audio.errors import TooLarge

    store = LocalBlobStore(tmp_path)
    with pytest.raises(TooLarge):
        store.put_stream(iter([b"x" * 600, b"x" * 600]), max_bytes=1000)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_concurrent_writes_of_same_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"same bytes" * 10000
    results: list[tuple[str, int]] = []

    def put() -> None:
        results.append(store.put_bytes(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(results)) == 1
    assert store.path(results[0][0]).read_bytes() == data


@pytest.mark.both_dbs
def test_idempotency_guard_states(client) -> None:  # type: ignore[no-untyped-def]
    from db.idempotency import (
        IdempotencyGuard,
        IdempotencyInFlight,
        IdempotencyMismatch,
        InvalidIdempotencyKey,
    )

    factory = client.app.state.session_factory
    first = IdempotencyGuard(factory, scope="t", key="k1", request_hash="h1")
    assert first.begin() is None
    with pytest.raises(IdempotencyInFlight):
        IdempotencyGuard(factory, scope="t", key="k1", request_hash="h1").begin()
    with pytest.raises(IdempotencyMismatch):
        IdempotencyGuard(factory, scope="t", key="k1", request_hash="other").begin()
    first.complete(201, {"id": "x"})
    replay = IdempotencyGuard(factory, scope="t", key="k1", request_hash="h1").begin()
    assert replay is not None and replay.status_code == 201 and replay.body == {"id": "x"}
    # A failed first attempt frees the key for a retry.
    failed = IdempotencyGuard(factory, scope="t", key="k2", request_hash="h")
    assert failed.begin() is None
    failed.abandon()
    assert IdempotencyGuard(factory, scope="t", key="k2", request_hash="h").begin() is None
    # Scopes are independent.
    assert IdempotencyGuard(factory, scope="other", key="k1", request_hash="zzz").begin() is None
    with pytest.raises(InvalidIdempotencyKey):
        IdempotencyGuard(factory, scope="t", key="", request_hash="h")


@pytest.mark.both_dbs
def test_keys_are_hashed_and_revocable(client) -> None:  # type: ignore[no-untyped-def]
    from db import keys
    from db.tables import ApiKey

    with client.app.state.session_factory() as s, s.begin():
        row, plaintext = keys.create_key(s, name="svc", scopes=["upload"])
        key_id = row.id
    with client.app.state.session_factory() as s:
        stored = s.get(ApiKey, key_id)
        assert stored.key_hash != plaintext and plaintext not in str(stored.__dict__)
        assert keys.lookup(s, plaintext).id == key_id
    with client.app.state.session_factory() as s, s.begin():
        assert keys.revoke(s, key_id)
    with client.app.state.session_factory() as s:
        assert keys.lookup(s, plaintext) is None
    with pytest.raises(keys.UnknownScope):
        with client.app.state.session_factory() as s:
            keys.create_key(s, name="x", scopes=["root"])


@pytest.mark.both_dbs
def test_migrations_reach_every_head(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config, current_heads, upgrade

    upgrade(database_url)  # idempotent on the already-migrated template
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    assert current_heads(database_url) == heads and "0001_foundation" in {
        r.revision for r in ScriptDirectory.from_config(alembic_config(database_url)).walk_revisions()
    }
