"""Voiceprint routes: enrollment, challenges, verification, read, erasure and voice search.

Scopes: ``upload`` enrolls; ``claim`` asks for challenges and verifies; ``upload`` or ``claim`` reads
a user's voiceprint metadata; ``admin`` erases, searches across accounts, and is the only one who
may read embeddings (``GET ...?include_embedding=true``).

Uploads stream into the blob store under ``voiceprint.max_upload_bytes`` (api.uploads), are decoded
in the worker pool, and embedded in a thread with the lifespan's embedder (503 ``model_unavailable``
when none is loaded). Verification audio is not kept: only its sha256, to refuse replays.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request

from api.deps import BlobsDep, PoolDep, Principal, get_embedder, require_scope
from api.schemas.recordings import ID_PATTERN
from api.schemas.voiceprints import (
    ChallengeOut,
    EnrollmentOut,
    ErasureOut,
    SearchGroup,
    SearchIn,
    SearchMatch,
    SearchOut,
    UtteranceOut,
    VerificationOut,
    VoiceprintOut,
    VoiceprintVersionOut,
)
from api.uploads import receive_upload
from core.errors import InvalidRequest
from voiceprint.errors import ModelUnavailable
from voiceprint.service import VoiceprintService, embed_samples, prepare_utterance
from voiceprint.service_errors import EmbeddingAccessDenied, EnrollmentNotFound
from voiceprint.tables import EnrollmentUtterance

log = logging.getLogger("songgate.voiceprints")
router = APIRouter(tags=["voiceprints"])

UserId = Annotated[str, Path(pattern=ID_PATTERN, description="The account the voiceprint belongs to")]
UploadScope = Annotated[Principal, Depends(require_scope("upload"))]
ClaimScope = Annotated[Principal, Depends(require_scope("claim"))]
ReadScope = Annotated[Principal, Depends(require_scope("upload", "claim"))]
AdminScope = Annotated[Principal, Depends(require_scope("admin"))]
CHALLENGE_ID_PATTERN = r"^[A-Za-z0-9_]{1,40}$"
_service_lock = threading.Lock()


def on_startup(app: FastAPI) -> None:
    """Lifespan hook: the service (and the database's search registry) for this app."""
    service = VoiceprintService(app.state.settings, app.state.session_factory, clock=app.state.clock)
    app.state.voiceprints = service
    embedder = getattr(app.state, "embedder", None)
    if embedder is None:
        return
    # Build (or load and catch up) the current model's search index now rather than in the first
    # request that needs it (seconds at 100k voiceprints).
    threading.Thread(
        target=service.warm_index, args=(embedder.model_id,), daemon=True, name="voiceprint-index"
    ).start()
    if service.vp.cohort_dir is not None:
        # Embedding a cohort set takes a while: verification uses the fallback until it is ready.
        threading.Thread(
            target=service.cohorts.prepare_set, args=(embedder,), daemon=True, name="voiceprint-cohort"
        ).start()


def on_shutdown(app: FastAPI) -> None:
    """Lifespan hook: save the search indexes so the next start only replays the change feed."""
    service = getattr(app.state, "voiceprints", None)
    if service is not None:
        service.registry.save_all()


def get_service(request: Request) -> VoiceprintService:
    service = getattr(request.app.state, "voiceprints", None)
    if service is None:
        with _service_lock:
            service = getattr(request.app.state, "voiceprints", None)
            if service is None:
                on_startup(request.app)
                service = request.app.state.voiceprints
    return service


ServiceDep = Annotated[VoiceprintService, Depends(get_service)]
EmbedderDep = Annotated[Any, Depends(get_embedder)]


def _need(embedder: Any) -> Any:
    if embedder is None:
        raise ModelUnavailable("no speaker model is loaded: run `songgate models pull` and restart")
    return embedder


async def _thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _utterance_out(u: EnrollmentUtterance) -> UtteranceOut:
    return UtteranceOut(
        id=u.id,
        sha256=u.sha256,
        size_bytes=u.size_bytes,
        duration_s=round(u.duration_s, 4),
        speech_s=round(u.speech_s, 4),
        quality=u.quality,
        created_at=u.created_at,
    )


@router.post(
    "/voiceprints/{user_id}/enrollments",
    status_code=201,
    response_model=EnrollmentOut,
    responses={409: {}, 413: {}, 415: {}, 422: {}, 503: {}},
)
async def enroll(
    request: Request,
    user_id: UserId,
    principal: UploadScope,
    service: ServiceDep,
    embedder: EmbedderDep,
    blobs: BlobsDep,
    pool: PoolDep,
) -> EnrollmentOut:
    """Add one enrollment utterance (multipart ``file``). It must pass the quality gate (speech
    duration, clipping, SNR) and sound like the version's other utterances; the version becomes the
    active voiceprint once it has ``min_enrollments`` utterances (re-enrolling makes a new version)."""
    embedder = _need(embedder)
    upload = await receive_upload(request, blobs, max_bytes=service.vp.max_upload_bytes)
    kept = False
    try:
        prepared = await pool.run(
            prepare_utterance,
            str(blobs.path(upload.sha256)),
            limits=service.utterance_limits(),
            vp=service.vp,
            measure_quality=True,
        )
        if prepared.quality is not None:
            service.gate(prepared.quality)  # before the costly embedding
        vector = await _thread(
            functools.partial(embed_samples, speech_s=prepared.speech_s), embedder, prepared.speech
        )
        result = await _thread(
            service.add_enrollment,
            user_id,
            model_id=embedder.model_id,
            embedding=vector,
            sha256=upload.sha256,
            size_bytes=upload.size,
            prepared=prepared,
        )
        kept = True
    finally:
        if not kept and upload.created:
            await _thread(service.discard_blob, upload.sha256, blobs.delete)
    vp = result.voiceprint
    return EnrollmentOut(
        user_id=user_id,
        voiceprint_id=vp.id,
        version=vp.version,
        model_id=vp.model_id,
        status="active" if vp.active else "enrolling",
        utterances=vp.n_utterances,
        required=result.required,
        activated=result.activated,
        utterance=_utterance_out(result.utterance),
        linked_accounts=result.linked_accounts,
    )


@router.post(
    "/voiceprints/{user_id}/challenges", status_code=201, response_model=ChallengeOut, responses={429: {}}
)
def create_challenge(user_id: UserId, principal: ClaimScope, service: ServiceDep) -> ChallengeOut:
    """A fresh random digit prompt for one verification attempt (single use, short-lived)."""
    c = service.issue_challenge(user_id)
    return ChallengeOut(challenge_id=c.id, prompt=c.prompt, expires_at=c.expires_at)


@router.post(
    "/voiceprints/{user_id}/verifications",
    status_code=201,
    response_model=VerificationOut,
    responses={404: {}, 409: {}, 413: {}, 415: {}, 422: {}, 429: {}, 503: {}},
)
async def verify(
    request: Request,
    user_id: UserId,
    principal: ClaimScope,
    service: ServiceDep,
    embedder: EmbedderDep,
    blobs: BlobsDep,
    pool: PoolDep,
) -> VerificationOut:
    """Verify the speaker of a recording (multipart ``file`` + ``challenge_id``) against the user's
    active voiceprint: AS-norm scored when a cohort exists, decided against the model's calibrated
    threshold, and recorded. Each attempt spends one rate-limit slot and its challenge."""
    embedder = _need(embedder)
    await _thread(service.spend_attempt, user_id)
    await _thread(service.require_voiceprint, user_id, embedder.model_id)
    upload = await receive_upload(request, blobs, max_bytes=service.vp.max_upload_bytes)
    try:
        challenge_id = upload.fields.get("challenge_id", "")
        if not challenge_id:
            raise InvalidRequest("the form needs a 'challenge_id' field (POST .../challenges first)")
        challenge = await _thread(
            service.consume_challenge, user_id, challenge_id[:64], audio_sha256=upload.sha256
        )
        prepared = await pool.run(
            prepare_utterance,
            str(blobs.path(upload.sha256)),
            limits=service.utterance_limits(),
            vp=service.vp,
            measure_quality=False,
        )
        vector = await _thread(
            functools.partial(embed_samples, speech_s=prepared.speech_s), embedder, prepared.speech
        )
        result = await _thread(
            service.verify,
            user_id,
            challenge=challenge,
            model_id=embedder.model_id,
            embedding=vector,
            audio_sha256=upload.sha256,
        )
    finally:
        if upload.created:  # verification audio is not kept, only its hash
            await _thread(service.discard_blob, upload.sha256, blobs.delete)
    a = result.attempt
    return VerificationOut(
        verification_id=a.id,
        user_id=a.user_id,
        challenge_id=a.challenge_id,
        prompt=a.prompt,
        decision=a.decision,
        score=round(a.score, 6),
        normalized_score=None if a.normalized_score is None else round(a.normalized_score, 6),
        threshold=a.threshold,
        method=a.method,
        model_id=a.model_id,
        cohort_size=a.cohort_size,
        created_at=a.created_at,
    )


@router.get("/voiceprints/{user_id}", response_model=VoiceprintOut, response_model_exclude_none=False)
def get_voiceprint(
    user_id: UserId,
    principal: ReadScope,
    service: ServiceDep,
    include_embedding: Annotated[bool, Query(description="Admin only")] = False,
) -> VoiceprintOut:
    """Every voiceprint version of the user with its utterances and statistics (no embeddings, unless
    an admin asks)."""
    if include_embedding and "admin" not in principal.scopes:
        raise EmbeddingAccessDenied("include_embedding needs an admin key")
    rows = service.voiceprints_of(user_id)
    if not rows:
        raise EnrollmentNotFound(f"no voiceprint enrolled for user {user_id!r}")
    versions = [
        VoiceprintVersionOut(
            id=vp.id,
            version=vp.version,
            model_id=vp.model_id,
            status=vp.status,
            active=vp.active,
            utterances=vp.n_utterances,
            stats=vp.stats,
            created_at=vp.created_at,
            activated_at=vp.activated_at,
            superseded_at=vp.superseded_at,
            enrollment_utterances=[_utterance_out(u) for u in utts],
            embedding=[float(v) for v in vec] if include_embedding and vec is not None else None,
        )
        for vp, utts, vec in rows
    ]
    return VoiceprintOut(user_id=user_id, required=service.vp.min_enrollments, voiceprints=versions)


@router.delete("/voiceprints/{user_id}", response_model=ErasureOut)
def erase_voiceprint(
    user_id: UserId, principal: AdminScope, service: ServiceDep, blobs: BlobsDep
) -> ErasureOut:
    """Right to erasure: every voiceprint version, embedding and enrollment recording of the user
    (a recording's bytes stay only while another row still references the same content)."""
    r = service.erase(user_id, delete_blob=blobs.delete)
    return ErasureOut(
        user_id=user_id,
        deleted_voiceprints=r.voiceprints,
        deleted_utterances=r.utterances,
        deleted_embeddings=r.embeddings,
        deleted_blobs=r.blobs,
    )


@router.post("/voiceprints/search", response_model=SearchOut)
def search_voiceprints(body: SearchIn, principal: AdminScope, service: ServiceDep) -> SearchOut:
    """Other accounts whose voiceprint is within the threshold of this user's (multi-account fraud)."""
    groups = service.search(body.user_id, model_id=body.model_id, k=body.k, threshold=body.threshold)
    return SearchOut(
        user_id=body.user_id,
        results=[
            SearchGroup(
                model_id=m,
                threshold=thr,
                matches=[
                    SearchMatch(user_id=h.user_id, voiceprint_id=h.voiceprint_id, score=round(h.score, 6))
                    for h in hits
                ],
            )
            for m, thr, hits in groups
        ],
    )
