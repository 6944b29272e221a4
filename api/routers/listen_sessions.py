"""Listen sessions: ``/v1/listen-sessions/{id}`` (evidence and verdict) and its heartbeats.

Heartbeats carry the session token in ``X-Listen-Token`` and a MAC chaining the previous nonce
(see docs/claims.md); the server's clock decides how much of the song each one proves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from api.deps import ClockDep, SessionDep, SettingsDep
from api.routers.packets import ClaimScope, SecretDep, get_claims_secret
from api.schemas.claims import HeartbeatIn, HeartbeatOut, ListenSessionOut
from claims.config import ClaimSettings
from claims.evidence import Heartbeat
from claims.sessions import record_heartbeat, session_view
from claims.tokens import rate_to_milli
from claims.uow import core_transaction
from core.clock import Clock

router = APIRouter(tags=["listen_sessions"])

TokenHeader = Annotated[str, Header(alias="X-Listen-Token", max_length=4096)]


@dataclass(frozen=True)
class _HeartbeatCtx:
    settings: ClaimSettings
    engine: Any
    clock: Clock
    secret: bytes


def _heartbeat_ctx(request: Request) -> _HeartbeatCtx:
    """Everything the hot path needs in one dependency (each Depends costs per request)."""
    state = request.app.state
    return _HeartbeatCtx(state.settings.claims, state.engine, state.clock, get_claims_secret(request))


@router.post(
    "/listen-sessions/{session_id}/heartbeats",
    response_model=HeartbeatOut,
    responses={401: {}, 403: {}, 404: {}, 409: {}, 410: {}},
)
def heartbeat(
    session_id: str,
    body: HeartbeatIn,
    _: ClaimScope,
    token: TokenHeader,
    ctx: Annotated[_HeartbeatCtx, Depends(_heartbeat_ctx)],
) -> JSONResponse:
    """Fold one heartbeat into the session's evidence; answers the next nonce.

    Rejections (``heartbeat_rejected`` with ``reason``): ``bad_mac`` (forged/tampered),
    ``replayed`` (sequence not increasing), ``out_of_order``, ``session_expired``,
    ``session_burned``; ``session_mismatch`` when the token belongs to another session.
    Resending the last accepted heartbeat unchanged answers ``duplicate`` with the same nonce.
    """
    hb = Heartbeat(
        seq=body.seq,
        position_ms=body.position_ms,
        rate_milli=rate_to_milli(body.playback_rate),
        paused=body.paused,
        mac=body.mac,
    )
    with core_transaction(ctx.engine) as conn:  # Core only: this is the hottest route
        answer = record_heartbeat(
            conn,
            session_id=session_id,
            token=token,
            hb=hb,
            clock=ctx.clock,
            settings=ctx.settings,
            secret=ctx.secret,
            client_time_ms=body.client_time_ms,
        )
    # Built directly (the shape is HeartbeatOut): skips a second validation pass.
    return JSONResponse(
        {
            "status": answer.status,
            "seq": answer.seq,
            "next_nonce": answer.next_nonce,
            "coverage": round(answer.coverage, 4),
            "elapsed_s": round(answer.elapsed_s, 3),
            "complete": answer.complete,
        }
    )


@router.get(
    "/listen-sessions/{session_id}", response_model=ListenSessionOut, response_model_exclude_none=True
)
def read_session(
    session_id: str,
    _: ClaimScope,
    settings: SettingsDep,
    db: SessionDep,
    clock: ClockDep,
    secret: SecretDep,
    token: Annotated[str | None, Header(alias="X-Listen-Token", max_length=4096)] = None,
) -> dict[str, Any]:
    """Coverage, elapsed server time and the current verdict with reasons; with the session's
    token also ``last_seq`` and ``next_nonce`` (to resync after a lost answer)."""
    return session_view(db, session_id, clock=clock, settings=settings.claims, secret=secret, token=token)
