"""Listen sessions: ``/v1/listen-sessions/{id}`` (evidence and verdict) and its heartbeats.

Heartbeats carry the session token in ``X-Listen-Token`` and a MAC chaining the previous nonce
(see docs/claims.md); the server's clock decides how much of the song each one proves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from api.deps import ClockDep, SessionDep, SettingsDep
from api.routers.packets import ClaimScope, SecretDep, claims_secret
from api.schemas.claims import HeartbeatIn, HeartbeatOut, ListenSessionOut
from claims.config import ClaimSettings
from claims.evidence import Heartbeat
from claims.heartbeat_writer import HeartbeatWriter
from claims.sessions import HeartbeatAnswer, session_view
from claims.tokens import rate_to_milli
from core.clock import Clock

router = APIRouter(tags=["listen_sessions"])

TokenHeader = Annotated[str, Header(alias="X-Listen-Token", max_length=4096)]


@dataclass(frozen=True)
class _HeartbeatCtx:
    settings: ClaimSettings
    writer: HeartbeatWriter
    clock: Clock
    secret: bytes


def on_startup(app: FastAPI) -> None:
    """Lifespan hook: the heartbeat writer (its thread starts with the first heartbeat)."""
    app.state.heartbeat_writer = HeartbeatWriter(
        app.state.engine, max_batch=app.state.settings.claims.heartbeat_batch
    )


def on_shutdown(app: FastAPI) -> None:
    writer = getattr(app.state, "heartbeat_writer", None)
    if writer is not None:
        writer.close()


async def _heartbeat_ctx(request: Request) -> _HeartbeatCtx:
    """Everything the hot path needs in one dependency; async, so no thread hop per request."""
    return heartbeat_ctx(request.app)


def heartbeat_ctx(app: FastAPI) -> _HeartbeatCtx:
    state = app.state
    writer = getattr(state, "heartbeat_writer", None)
    if writer is None:  # an app used without its lifespan (some tests)
        on_startup(app)
        writer = state.heartbeat_writer
    return _HeartbeatCtx(state.settings.claims, writer, state.clock, claims_secret(app))


@router.post(
    "/listen-sessions/{session_id}/heartbeats",
    response_model=HeartbeatOut,
    responses={401: {}, 403: {}, 404: {}, 409: {}, 410: {}},
)
async def heartbeat(
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
    # The hottest route: the writer thread batches concurrent heartbeats into one transaction
    # and answers once it has committed (claims/heartbeat_writer.py). Most requests do not even
    # get here: api/heartbeat_fast_path.py serves them with the same pieces, minus FastAPI.
    answer = await ctx.writer.submit(**heartbeat_inputs(session_id, body, token, ctx))
    return JSONResponse(heartbeat_json(answer))


def heartbeat_json(answer: HeartbeatAnswer) -> dict[str, Any]:
    """The response body (the shape is HeartbeatOut; built directly, no second validation)."""
    return {
        "status": answer.status,
        "seq": answer.seq,
        "next_nonce": answer.next_nonce,
        "coverage": round(answer.coverage, 4),
        "elapsed_s": round(answer.elapsed_s, 3),
        "complete": answer.complete,
    }


def heartbeat_inputs(session_id: str, body: HeartbeatIn, token: str, ctx: _HeartbeatCtx) -> dict[str, Any]:
    """``record_heartbeat``'s keyword arguments for one request."""
    hb = Heartbeat(
        seq=body.seq,
        position_ms=body.position_ms,
        rate_milli=rate_to_milli(body.playback_rate),
        paused=body.paused,
        mac=body.mac,
    )
    return {
        "session_id": session_id,
        "token": token,
        "hb": hb,
        "clock": ctx.clock,
        "settings": ctx.settings,
        "secret": ctx.secret,
        "client_time_ms": body.client_time_ms,
    }


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
