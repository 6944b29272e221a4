"""FastAPI dependencies: settings, DB session, auth scopes, clock, blob store, worker pool, recordings."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import Forbidden, Unauthorized
from core.clock import Clock
from core.errors import NotFound
from core.pool import WorkerPool
from core.settings import Settings
from db import keys
from db.blobstore import LocalBlobStore
from db.tables import Recording

#: Seconds an authenticated key stays cached in-process (a revocation takes at most this long).
AUTH_CACHE_TTL_S = 30.0


@dataclasses.dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    """Factory for sessions that write; use it from sync routes or worker threads, never on the loop."""
    return request.app.state.session_factory


def get_session(request: Request) -> Iterator[Session]:
    """A read-only session per request (routes that write use ``SessionFactoryDep`` in a worker thread)."""
    with request.app.state.read_session_factory() as session:
        yield session


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


def get_blobs(request: Request) -> LocalBlobStore:
    return request.app.state.blobs


def get_pool(request: Request) -> WorkerPool:
    return request.app.state.pool


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
ClockDep = Annotated[Clock, Depends(get_clock)]
BlobsDep = Annotated[LocalBlobStore, Depends(get_blobs)]
PoolDep = Annotated[WorkerPool, Depends(get_pool)]


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.headers.get("x-api-key") or None


def _cached_principal(request: Request) -> Principal | None:
    """The principal of the presented key if it was looked up within the TTL; None otherwise.

    Raises
    ------
    Unauthorized : no key, or an implausible one
    """
    key = _presented_key(request)
    if not key or len(key) > 256:
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    hit = request.app.state.auth_cache.get(key)
    if hit and time.monotonic() - hit[0] < AUTH_CACHE_TTL_S:
        return hit[1]  # type: ignore[no-any-return]
    return None


def authenticate(request: Request) -> Principal:
    cached = _cached_principal(request)
    if cached is not None:
        return cached
    key = _presented_key(request)
    assert key is not None
    cache: dict[str, tuple[float, Principal]] = request.app.state.auth_cache
    now = time.monotonic()
    with request.app.state.read_session_factory() as session:
        row = keys.lookup(session, key)
        if row is None:
            raise Unauthorized("unknown or revoked API key")
        principal = Principal(row.id, row.name, frozenset(row.scopes))
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (now, principal)
    return principal


def require_scope(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller's key must hold one of ``scopes`` (``admin`` holds them all)."""

    wanted = frozenset(scopes)

    async def _check(request: Request) -> Principal:
        # Async so that a cached key costs no thread hop; a lookup goes to the thread pool.
        principal = _cached_principal(request)
        if principal is None:
            principal = await run_in_threadpool(authenticate, request)
        if "admin" not in principal.scopes and not (principal.scopes & wanted):
            raise Forbidden(f"this endpoint needs scope {' or '.join(sorted(wanted))}")
        return principal

    return _check


def get_recording(session: Session, recording_id: str) -> Recording:
    if len(recording_id) > 64:
        raise NotFound("no such recording")
    rec = session.get(Recording, recording_id)
    if rec is None:
        raise NotFound(f"no recording {recording_id}")
    return rec


def model_from_state(name: str) -> Callable[[Request], Any]:
    """Dependency factory for a model loaded in the lifespan (tests swap it with dependency_overrides)."""

    def _get(request: Request) -> Any:
        return getattr(request.app.state, name, None)

    _get.__name__ = f"get_{name}"
    return _get


def get_embedder(request: Request) -> Any:
    """The speaker embedder loaded in the lifespan, or ``None`` when models are not installed.
    Tests replace it with ``app.dependency_overrides[get_embedder]``."""
    return getattr(request.app.state, "embedder", None)
