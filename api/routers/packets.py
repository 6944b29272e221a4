"""Red packets: ``/v1/packets`` (create, read), listen sessions on a packet, and claims.

Routes validate input, run one claims transaction (``claims.uow.unit_of_work``) and shape the
answer; refusals are domain errors with stable codes (problem+json). Claims and packet creation
honour ``Idempotency-Key`` (db.idempotency): the first answer -- a grant or a refusal -- is
replayed for the same key and body; a different body is 422, a key still in flight 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import ClockDep, Principal, SessionDep, SessionFactoryDep, SettingsDep, require_scope
from api.schemas.claims import (
    ClaimIn,
    ClaimOut,
    ListenSessionIn,
    ListenSessionOpened,
    PacketIn,
    PacketOut,
)
from claims.claiming import ClaimRequest, claim
from claims.errors import ClaimsError
from claims.money import SYSTEM_RNG
from claims.packets import PacketRequest, create_packet, get_packet, packet_view
from claims.sessions import open_session
from claims.stepup import StepUp, VoiceprintStepUp
from claims.uow import sqlite_writer, unit_of_work
from db.idempotency import IdempotencyGuard, fingerprint

router = APIRouter(tags=["packets"])

ClaimScope = Annotated[Principal, Depends(require_scope("claim"))]
_DEFAULT_STEPUP = VoiceprintStepUp()


def get_stepup(request: Request) -> StepUp:
    """The step-up adapter (``app.state.claims_stepup`` if set; tests use dependency_overrides)."""
    return getattr(request.app.state, "claims_stepup", None) or _DEFAULT_STEPUP


def get_claims_secret(request: Request) -> bytes:
    return claims_secret(request.app)


def claims_secret(app: Any) -> bytes:
    """The HMAC key for listen tokens, read once per app (Settings.secret() may touch a file)."""
    secret = getattr(app.state, "claims_secret", None)
    if secret is None:
        secret = app.state.settings.secret()
        app.state.claims_secret = secret
    return secret  # type: ignore[no-any-return]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


StepUpDep = Annotated[StepUp, Depends(get_stepup)]
SecretDep = Annotated[bytes, Depends(get_claims_secret)]


def _idempotent(
    factory: Any, *, scope: str, key: str | None, request_hash: str, work: Any, status: int
) -> JSONResponse:
    """Run ``work(db) -> body`` in one unit of work under an Idempotency-Key.

    The key is reserved (``in_flight``) in a transaction of its own, so a concurrent duplicate gets
    409; the answer -- the body, or a domain refusal that persists its trace -- is stored in the
    work's own transaction and commits with it. Anything else rolls back and frees the key.
    """
    guard: IdempotencyGuard | None = None
    engine = factory.kw.get("bind")
    if key is not None:
        guard = IdempotencyGuard(factory, scope=scope, key=key, request_hash=request_hash)
        with sqlite_writer(engine):  # queue with the claim transactions instead of busy-polling
            replay = guard.begin()
        if replay is not None:
            media = "application/problem+json" if replay.status_code >= 400 else "application/json"
            return JSONResponse(replay.body, status_code=replay.status_code, media_type=media)
    try:
        with unit_of_work(factory) as db:
            try:
                body = jsonable_encoder(work(db))
            except ClaimsError as exc:
                if guard is not None and _is_answer(exc):  # committed by unit_of_work (persist)
                    guard.complete_in(db, exc.status, jsonable_encoder(exc.to_problem()))
                raise
            if guard is not None:
                guard.complete_in(db, status, body)
    except BaseException as exc:
        if guard is not None and not (isinstance(exc, ClaimsError) and _is_answer(exc)):
            with sqlite_writer(engine):
                guard.abandon()
        raise
    return JSONResponse(body, status_code=status)


def _is_answer(exc: ClaimsError) -> bool:
    """A refusal that is a decision (kept, and replayed for the same key), not a failure."""
    return exc.status < 500 and exc.persist


@router.post("/packets", status_code=201, response_model=PacketOut, responses={403: {}, 404: {}, 422: {}})
def create(
    body: PacketIn,
    principal: ClaimScope,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    clock: ClockDep,
    stepup: StepUpDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Create a red packet whose claim condition is a full listen of ``recording_id``.

    Refusals: ``limit_exceeded`` (per packet / per day), ``curfew`` (minor sender at night),
    ``step_up_required`` (unusual volume or amount without a passed ``verification_id``).
    """

    def work(db: Session) -> dict[str, Any]:
        packet = create_packet(
            db,
            PacketRequest(**body.model_dump()),
            clock=clock,
            settings=settings.claims,
            stepup=stepup,
        )
        return PacketOut(**packet_view(packet, now=clock.now())).model_dump(mode="json")

    return _idempotent(
        factory,
        scope=f"packets:{principal.key_id}",
        key=idempotency_key,
        request_hash=fingerprint(body.model_dump(mode="json")),
        work=work,
        status=201,
    )


@router.get("/packets/{packet_id}", response_model=PacketOut, responses={404: {}})
def read(packet_id: str, _: ClaimScope, db: SessionDep, clock: ClockDep) -> dict[str, Any]:
    return packet_view(get_packet(db, packet_id), now=clock.now())


@router.post(
    "/packets/{packet_id}/listen-sessions",
    status_code=201,
    response_model=ListenSessionOpened,
    responses={404: {}, 409: {}, 410: {}},
)
def start_listening(
    packet_id: str,
    body: ListenSessionIn,
    request: Request,
    _: ClaimScope,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    clock: ClockDep,
    secret: SecretDep,
) -> dict[str, Any]:
    """Open a listen session bound to (packet, claimant, device): token, heartbeat key, first nonce."""
    with unit_of_work(factory) as db:
        opened = open_session(
            db,
            packet_id=packet_id,
            claimant_id=body.claimant_id,
            device_id=body.device_id,
            ip=client_ip(request),
            clock=clock,
            settings=settings.claims,
            secret=secret,
        )
        ls = opened.session
        return {
            "session_id": ls.id,
            "packet_id": ls.packet_id,
            "claimant_id": ls.claimant_id,
            "device_id": ls.device_id,
            "duration_s": ls.duration_ms / 1000.0,
            "heartbeat_interval_s": opened.heartbeat_interval_s,
            "nonce": opened.nonce,
            "token": opened.token,
            "heartbeat_key": opened.heartbeat_key,
            "expires_at": ls.expires_at,
        }


@router.post(
    "/packets/{packet_id}/claims",
    response_model=ClaimOut,
    responses={403: {}, 404: {}, 409: {}, 410: {}, 422: {}},
)
def claim_share(
    packet_id: str,
    body: ClaimIn,
    request: Request,
    principal: ClaimScope,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    clock: ClockDep,
    stepup: StepUpDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Grant one share if the server saw a full listen, the packet has shares left and is not
    expired, the claimant has not claimed it and the risk rules pass.

    Refusal codes: ``not_listened``, ``packet_empty``, ``packet_expired``, ``already_claimed``,
    ``step_up_required``, ``limit_exceeded``, ``curfew``, ``device_limit``, ``session_mismatch``.
    """
    ip = client_ip(request)

    def work(db: Session) -> dict[str, Any]:
        grant = claim(
            db,
            ClaimRequest(packet_id, body.session_id, body.claimant_id, body.verification_id, ip),
            clock=clock,
            settings=settings.claims,
            stepup=stepup,
            rng=SYSTEM_RNG,
        )
        return ClaimOut(**grant.as_dict()).model_dump(mode="json")

    return _idempotent(
        factory,
        scope=f"claims:{principal.key_id}",
        key=idempotency_key,
        request_hash=fingerprint(packet_id, body.model_dump(mode="json")),
        work=work,
        status=200,
    )
