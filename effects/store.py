"""Storage of computed artifacts (table ``effect_artifacts``) and the compute-on-miss path of the routes.

The upload path stores the default artifacts in its own transaction (:func:`save_artifacts`).
Routes call :func:`get_or_compute`: a cached row is served as is; otherwise the artifact is derived
from a stored one when that is exact (JSON twins, waveform zoom levels and 8-bit data) or computed
from the decoded blob in the worker pool, stored, and served. Concurrent misses for the same
artifact in one process share one computation; across processes the unique constraint decides and
the loser's identical bytes are simply not stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.base import new_id
from effects.artifacts import Artifact, ArtifactSpec, compute_from_file, derive_bytes, derive_source
from effects.config import EffectSettings
from effects.tables import EffectArtifact


class _Pool(Protocol):
    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...


class _Blobs(Protocol):
    def path(self, sha256: str) -> Any: ...


class _Recording(Protocol):
    id: str
    sha256: str


def _row(recording_id: str, artifact: Artifact) -> EffectArtifact:
    return EffectArtifact(
        id=new_id("efa"),
        recording_id=recording_id,
        kind=artifact.kind,
        params_key=artifact.params_key,
        etag=artifact.etag,
        media_type=artifact.media_type,
        size_bytes=len(artifact.data),
        data=artifact.data,
    )


def save_artifacts(session: Session, recording_id: str, artifacts: Iterable[Artifact]) -> None:
    """Add ``artifacts`` of ``recording_id`` to ``session`` (flushed; the caller commits).

    Artifacts already stored for the same (kind, params_key) are left as they are.
    """
    artifacts = list(artifacts)
    if not artifacts:
        return
    have = set(
        session.execute(
            select(EffectArtifact.kind, EffectArtifact.params_key).where(
                EffectArtifact.recording_id == recording_id
            )
        ).tuples()
    )
    for artifact in artifacts:
        if (artifact.kind, artifact.params_key) not in have:
            session.add(_row(recording_id, artifact))
            have.add((artifact.kind, artifact.params_key))
    session.flush()


def load_artifact(session: Session, recording_id: str, spec: ArtifactSpec) -> Artifact | None:
    row = session.scalar(
        select(EffectArtifact).where(
            EffectArtifact.recording_id == recording_id,
            EffectArtifact.kind == spec.kind,
            EffectArtifact.params_key == spec.key,
        )
    )
    if row is None:
        return None
    return Artifact(row.kind, row.params_key, row.media_type, row.data)


def _load(factory: sessionmaker[Session], recording_id: str, spec: ArtifactSpec) -> Artifact | None:
    with factory() as s:
        return load_artifact(s, recording_id, spec)


def _store_one(factory: sessionmaker[Session], recording_id: str, artifact: Artifact) -> None:
    try:
        with factory() as s, s.begin():
            s.add(_row(recording_id, artifact))
    except IntegrityError:
        pass  # stored meanwhile by another worker (same bytes), or the recording was deleted


_inflight: dict[tuple[str, str, str], asyncio.Future[Artifact]] = {}


async def get_or_compute(
    *,
    session_factory: sessionmaker[Session],
    pool: _Pool,
    blobs: _Blobs,
    recording: _Recording,
    spec: ArtifactSpec,
    settings: EffectSettings,
    limits: Any = None,
) -> Artifact:
    """The artifact ``spec`` of ``recording``: cached, derived, or computed in the worker pool.

    Raises whatever decoding or computing raises (AudioError, EffectsError subclasses).
    """
    # Database calls run in a thread: a blocking wait for SQLite's write lock on the event loop would
    # deadlock with the request that holds the lock and needs the loop to finish.
    hit = await asyncio.to_thread(_load, session_factory, recording.id, spec)
    if hit is not None:
        return hit
    flight = (recording.id, spec.kind, spec.key)
    pending = _inflight.get(flight)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[Artifact] = asyncio.get_running_loop().create_future()
    _inflight[flight] = future
    try:
        source = derive_source(spec, settings)
        if source is not None:
            base = await get_or_compute(
                session_factory=session_factory, pool=pool, blobs=blobs, recording=recording, spec=source,
                settings=settings, limits=limits,
            )  # fmt: skip
            artifact = await pool.run(derive_bytes, spec, base.data)
        else:
            path = str(blobs.path(recording.sha256))
            artifact = await pool.run(compute_from_file, path, spec, settings, limits)
        await asyncio.to_thread(_store_one, session_factory, recording.id, artifact)
        future.set_result(artifact)
        return artifact
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
        raise
    finally:
        _inflight.pop(flight, None)
