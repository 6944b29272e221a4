"""Recording upload and retrieval: ``/v1/recordings``."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import (
    BlobsDep,
    PoolDep,
    Principal,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    get_recording,
    require_scope,
)
from api.schemas.recordings import RecordingForm, RecordingList, RecordingOut
from api.uploads import receive_upload
from audio.errors import AudioError
from db.base import new_id
from db.blobrefs import is_referenced
from db.idempotency import IdempotencyGuard, fingerprint
from db.tables import Recording
from pipeline.recording import analyze_recording

log = logging.getLogger("songgate.recordings")
router = APIRouter(tags=["recordings"])

UploadScope = Annotated[Principal, Depends(require_scope("upload"))]
ReadScope = Annotated[Principal, Depends(require_scope("upload", "claim"))]


def recording_out(rec: Recording) -> dict[str, Any]:
    base = f"/v1/recordings/{rec.id}"
    return RecordingOut(
        id=rec.id,
        user_id=rec.user_id,
        song_id=rec.song_id,
        kind=rec.kind,
        sha256=rec.sha256,
        size_bytes=rec.size_bytes,
        filename=rec.filename,
        media_type=rec.media_type,
        container=rec.container,
        codec=rec.codec,
        sample_rate=rec.sample_rate,
        channels=rec.channels,
        duration_s=rec.duration_s,
        created_at=rec.created_at,
        report=rec.report,
        links={
            "self": base,
            "audio": f"{base}/audio",
            "report": f"{base}/report",
            "visualizer": f"{base}/visualizer",
            "waveform": f"{base}/waveform.dat",
            "beats": f"{base}/beats",
        },
    ).model_dump(mode="json")


def _blob_unreferenced(factory: Any, sha256: str) -> bool:
    with factory() as s:
        return not is_referenced(s, sha256)


@router.post(
    "/recordings",
    status_code=201,
    responses={200: {"description": "Same bytes already uploaded by this user"}, 413: {}, 415: {}, 422: {}},
)
async def upload_recording(
    request: Request,
    principal: UploadScope,
    settings: SettingsDep,
    blobs: BlobsDep,
    pool: PoolDep,
    factory: SessionFactoryDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Upload a recording (multipart: ``file``, ``user_id``, ``song_id``, ``kind`` = mix|vocal).

    The body streams into the blob store under the size limit, is decoded and analysed in the worker
    pool, and the recording with its check report is stored. 201 for a new recording; 200 with the
    existing one when this user already uploaded the same bytes.
    """
    metrics = request.app.state.metrics
    upload = await receive_upload(request, blobs, max_bytes=settings.limits.max_upload_bytes)
    guard: IdempotencyGuard | None = None
    # Database calls run in worker threads: on SQLite a writer may wait on the lock, and that wait
    # must never block the event loop.
    try:
        form = RecordingForm.parse(upload.fields)
        if idempotency_key is not None:
            guard = IdempotencyGuard(
                factory,
                scope=f"recordings:{principal.key_id}",
                key=idempotency_key,
                request_hash=fingerprint(upload.sha256, form.model_dump(), upload.filename),
            )
            replay = await to_thread.run_sync(guard.begin)
            if replay is not None:
                upload.created = False  # the blob belongs to the first request
                return JSONResponse(replay.body, status_code=replay.status_code)
        existing = await to_thread.run_sync(_existing, factory, form.user_id, upload.sha256)
        if existing is not None:
            status, body = 200, existing
            metrics.uploads.labels("duplicate").inc()
        else:
            analysis = await pool.run(
                analyze_recording,
                blobs.path(upload.sha256),
                kind=form.kind,
                limits=settings.limits,
                checks=settings.checks,
                effects=settings.effects,
            )
            status, body = await to_thread.run_sync(_store, factory, form, upload, analysis, settings)
            metrics.uploads.labels("created" if status == 201 else "duplicate").inc()
        upload.created = False  # now referenced
        if guard:
            await to_thread.run_sync(guard.complete, status, body)
        return JSONResponse(body, status_code=status)
    except BaseException as exc:
        if guard is not None:
            await to_thread.run_sync(guard.abandon)
        if isinstance(exc, AudioError):
            metrics.uploads.labels(exc.code).inc()
        raise
    finally:
        # A rejected upload leaves nothing behind, unless another recording shares the bytes.
        if upload.created and await to_thread.run_sync(_blob_unreferenced, factory, upload.sha256):
            blobs.delete(upload.sha256)


def _existing(factory: Any, user_id: str, sha256: str) -> dict[str, Any] | None:
    with factory() as s:
        rec = s.scalar(select(Recording).where(Recording.user_id == user_id, Recording.sha256 == sha256))
        return recording_out(rec) if rec is not None else None


def _store(
    factory: Any, form: RecordingForm, upload: Any, analysis: Any, settings: Any
) -> tuple[int, dict[str, Any]]:
    rec = Recording(
        id=new_id("rec"),
        user_id=form.user_id,
        song_id=form.song_id,
        kind=form.kind,
        sha256=upload.sha256,
        size_bytes=upload.size,
        filename=upload.filename,
        media_type=analysis.info.media_type,
        container=analysis.info.container,
        codec=analysis.info.codec,
        sample_rate=analysis.info.sample_rate,
        channels=analysis.info.channels,
        duration_s=analysis.duration_s,
        report=analysis.report,
        report_version=str(analysis.report.get("settings_version", settings.checks.version)),
    )
    try:
        with factory() as s, s.begin():
            s.add(rec)
            s.flush()
            if analysis.artifacts:
                from effects.store import save_artifacts

                save_artifacts(s, rec.id, analysis.artifacts)
        return 201, recording_out(rec)
    except IntegrityError:
        # A concurrent upload of the same bytes by the same user won the race: answer with it.
        with factory() as s:
            existing = s.scalar(
                select(Recording).where(Recording.user_id == form.user_id, Recording.sha256 == upload.sha256)
            )
        if existing is None:
            raise
        return 200, recording_out(existing)


@router.get("/recordings", response_model=RecordingList)
def list_recordings(
    session: SessionDep,
    _: ReadScope,
    user_id: Annotated[str | None, Query(max_length=128)] = None,
    song_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    q = select(Recording).order_by(Recording.created_at.desc()).limit(limit)
    if user_id:
        q = q.where(Recording.user_id == user_id)
    if song_id:
        q = q.where(Recording.song_id == song_id)
    return {"items": [recording_out(r) for r in session.scalars(q)]}


@router.get("/recordings/{recording_id}", response_model=RecordingOut)
def read_recording(recording_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    return recording_out(get_recording(session, recording_id))


@router.get("/recordings/{recording_id}/report")
def read_report(recording_id: str, session: SessionDep, _: ReadScope) -> dict[str, Any]:
    """The stored check report (verdict, settings version, checks)."""
    rec = get_recording(session, recording_id)
    return {"recording_id": rec.id, **rec.report}


@router.get("/recordings/{recording_id}/audio", response_class=Response)
def read_audio(recording_id: str, session: SessionDep, blobs: BlobsDep, _: ReadScope) -> FileResponse:
    """The original bytes; supports HTTP range requests (seeking in players)."""
    rec = get_recording(session, recording_id)
    ext = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3", "m4a": "m4a"}.get(rec.container, "bin")
    return FileResponse(
        blobs.path(rec.sha256),
        media_type=rec.media_type,
        filename=f"{rec.id}.{ext}",
        headers={"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{rec.sha256}"'},
        content_disposition_type="inline",
    )
