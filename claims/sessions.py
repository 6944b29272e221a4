"""Listen sessions: open one, fold heartbeats into its evidence, show its verdict.

The session row is the persisted :class:`claims.evidence.EvidenceState`; every server time here is
``clock.now()`` relative to the session's ``started_at`` (the client's clock is never read).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from claims import tokens
from claims.config import ClaimSettings
from claims.errors import (
    AlreadyClaimed,
    HeartbeatRejected,
    PacketEmpty,
    PacketExpired,
    SessionClosed,
    SessionMismatch,
    SessionNotFound,
)
from claims.evidence import EvidenceState, Heartbeat, apply_heartbeat
from claims.packets import effective_status, get_packet
from claims.proof import Verdict, evaluate
from claims.tables import Claim, HeartbeatRecord, ListenSession
from core.clock import Clock
from db.base import new_id


@dataclass(frozen=True)
class OpenedSession:
    session: ListenSession
    token: str
    heartbeat_key: str  # base64url; the client MACs heartbeats with it
    nonce: str  # the first nonce to chain
    heartbeat_interval_s: float


def state_of(ls: ListenSession) -> EvidenceState:
    return EvidenceState(
        session_id=ls.id,
        duration_ms=ls.duration_ms,
        nonce=ls.nonce,
        last_seq=ls.last_seq,
        last_mac=ls.last_mac,
        last_position_ms=ls.last_position_ms,
        last_rate_milli=ls.last_rate_milli,
        last_paused=ls.last_paused,
        last_server_ms=ls.last_server_ms,
        lead_ms=ls.lead_ms,
        coverage=bytearray(ls.coverage),
        covered_seconds=ls.covered_seconds,
        accepted=ls.accepted,
        rejected=ls.rejected,
    )


def _store(ls: ListenSession, st: EvidenceState) -> None:
    ls.nonce = st.nonce
    ls.last_seq = st.last_seq
    ls.last_mac = st.last_mac
    ls.last_position_ms = st.last_position_ms
    ls.last_rate_milli = st.last_rate_milli
    ls.last_paused = st.last_paused
    ls.last_server_ms = st.last_server_ms
    ls.lead_ms = st.lead_ms
    ls.coverage = bytes(st.coverage)
    ls.covered_seconds = st.covered_seconds
    ls.accepted = st.accepted
    ls.rejected = st.rejected


def server_ms(ls: Any, now: dt.datetime) -> int:
    """Milliseconds since the session started, on the server clock."""
    return int((now - ls.started_at).total_seconds() * 1000)


def open_session(
    db: Session,
    *,
    packet_id: str,
    claimant_id: str,
    device_id: str,
    ip: str | None,
    clock: Clock,
    settings: ClaimSettings,
    secret: bytes,
) -> OpenedSession:
    """Start listening: a session bound to (packet, claimant, device) and its first nonce."""
    now = clock.now()
    packet = get_packet(db, packet_id)
    status = effective_status(packet, now)
    if status == "expired":
        raise PacketExpired(f"red packet {packet_id} has expired")
    if status == "empty" or packet.remaining_count == 0:
        raise PacketEmpty(f"red packet {packet_id} has no shares left")
    done = db.scalar(select(Claim.id).where(Claim.packet_id == packet_id, Claim.claimant_id == claimant_id))
    if done is not None:
        raise AlreadyClaimed("this claimant already claimed the red packet", claim_id=done)
    ttl = max(settings.session_ttl_min_s, settings.session_ttl_factor * packet.duration_ms / 1000.0)
    expires_at = min(now + dt.timedelta(seconds=ttl), packet.expires_at)
    sid = new_id("ls")
    nonce = tokens.next_nonce(sid, 0, "", secret=secret)
    st = EvidenceState(session_id=sid, duration_ms=packet.duration_ms, nonce=nonce)
    ls = ListenSession(
        id=sid,
        packet_id=packet_id,
        claimant_id=claimant_id,
        device_id=device_id,
        ip=ip,
        duration_ms=packet.duration_ms,
        status="active",
        started_at=now,
        expires_at=expires_at,
        nonce=nonce,
        coverage=bytes(st.coverage),
    )
    _store(ls, st)
    db.add(ls)
    db.flush()
    token = tokens.issue_token(
        tokens.TokenClaims(
            session_id=sid,
            packet_id=packet_id,
            claimant_id=claimant_id,
            device_id=device_id,
            issued_at=int(now.timestamp()),
            expires_at=int(expires_at.timestamp()) + 1,
        ),
        secret=secret,
    )
    key = tokens.encode_key(tokens.heartbeat_key(sid, secret=secret))
    return OpenedSession(ls, token, key, nonce, settings.heartbeat_interval_s)


def _load_locked(db: Session, session_id: str) -> ListenSession:
    ls = db.scalars(
        select(ListenSession)
        .where(ListenSession.id == session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if ls is None:
        raise SessionNotFound(f"no listen session {session_id!r}")
    return ls


def check_token(ls: Any, token: str, *, secret: bytes, now: dt.datetime) -> None:
    """The token must verify and name exactly this session, packet, claimant and device."""
    claims = tokens.verify_token(token, secret=secret, now=now)
    if (claims.session_id, claims.packet_id, claims.claimant_id, claims.device_id) != (
        ls.id,
        ls.packet_id,
        ls.claimant_id,
        ls.device_id,
    ):
        raise SessionMismatch("the listen token belongs to another session")


@dataclass(frozen=True)
class HeartbeatAnswer:
    status: str  # accepted | duplicate
    seq: int
    next_nonce: str
    credited_ms: int
    coverage: float
    elapsed_s: float
    complete: bool


_LS = cast(Table, ListenSession.__table__)
_HB = cast(Table, HeartbeatRecord.__table__)
_EVIDENCE_COLUMNS = (
    "nonce",
    "last_seq",
    "last_mac",
    "last_position_ms",
    "last_rate_milli",
    "last_paused",
    "last_server_ms",
    "lead_ms",
    "coverage",
    "covered_seconds",
    "accepted",
    "rejected",
)
# Statements built once (bind parameters only): statement construction dominates otherwise.
_SELECT_LOCKED = select(_LS).where(_LS.c.id == bindparam("sid")).with_for_update()
_UPDATE_EVIDENCE = (
    _LS.update()
    .where(_LS.c.id == bindparam("sid"))
    .values({c: bindparam(f"v_{c}") for c in (*_EVIDENCE_COLUMNS, "status")})
)
_INSERT_HB = _HB.insert().values(
    {
        c: bindparam(f"v_{c}")
        for c in (
            "session_id",
            "seq",
            "position_ms",
            "rate_milli",
            "paused",
            "server_ms",
            "credited_ms",
            "client_time_ms",
            "received_at",
        )
    }
)


def record_heartbeat(
    db: Session | Connection,
    *,
    session_id: str,
    token: str,
    hb: Heartbeat,
    clock: Clock,
    settings: ClaimSettings,
    secret: bytes,
    client_time_ms: int | None = None,
) -> HeartbeatAnswer:
    """Check and fold one heartbeat; raise :class:`HeartbeatRejected` (persisted count) if bad.

    The hot path of the service, so it uses Core statements (one locked SELECT, one UPDATE, one
    INSERT) rather than the ORM unit of work.
    """
    now = clock.now()
    # Core on the session's connection (same transaction) or on a bare connection (hot path).
    conn = db.connection() if isinstance(db, Session) else db
    row = conn.execute(_SELECT_LOCKED, {"sid": session_id}).first()
    if row is None:
        raise SessionNotFound(f"no listen session {session_id!r}")
    check_token(row, token, secret=secret, now=now)
    if row.status == "claimed":
        raise SessionClosed("the session was already used for a claim")
    if row.status == "burned":
        raise HeartbeatRejected("session_burned")
    if now >= row.expires_at:
        raise HeartbeatRejected("session_expired")
    st = EvidenceState(
        session_id=row.id,
        duration_ms=row.duration_ms,
        **{c: getattr(row, c) for c in _EVIDENCE_COLUMNS if c != "coverage"},
        coverage=bytearray(row.coverage),
    )
    t = server_ms(row, now)  # type: ignore[arg-type]
    key = tokens.heartbeat_key(row.id, secret=secret)
    out = apply_heartbeat(st, hb, server_ms=t, key=key, secret=secret, settings=settings)
    if out.status == "duplicate":
        pass  # nothing changed
    else:
        values: dict[str, Any] = {f"v_{c}": getattr(st, c) for c in _EVIDENCE_COLUMNS}
        values["v_coverage"] = bytes(st.coverage)
        burned = out.status == "rejected" and st.rejected > settings.max_rejected_heartbeats
        values["v_status"] = "burned" if burned else row.status
        conn.execute(_UPDATE_EVIDENCE, {"sid": row.id, **values})
    if out.status == "rejected":
        raise HeartbeatRejected(out.reason or "rejected", expected_seq=st.last_seq + 1)
    if out.status == "accepted" and settings.store_heartbeats:
        conn.execute(
            _INSERT_HB,
            {
                "v_session_id": row.id,
                "v_seq": hb.seq,
                "v_position_ms": hb.position_ms,
                "v_rate_milli": hb.rate_milli,
                "v_paused": hb.paused,
                "v_server_ms": t,
                "v_credited_ms": out.credited_ms,
                "v_client_time_ms": client_time_ms,
                "v_received_at": now,
            },
        )
    verdict = evaluate(st, settings=settings)
    return HeartbeatAnswer(
        status=out.status,
        seq=st.last_seq,
        next_nonce=out.next_nonce or st.nonce,
        credited_ms=out.credited_ms,
        coverage=verdict.coverage,
        elapsed_s=verdict.elapsed_s,
        complete=verdict.complete,
    )


def verdict_of(ls: ListenSession, *, settings: ClaimSettings) -> Verdict:
    return evaluate(state_of(ls), settings=settings, burned=ls.status == "burned")


def session_view(
    db: Session,
    session_id: str,
    *,
    clock: Clock,
    settings: ClaimSettings,
    secret: bytes,
    token: str | None = None,
) -> dict[str, Any]:
    """Coverage, elapsed server time and the verdict; with a valid token also the chain state
    (``last_seq``, ``next_nonce``) so a client that lost a response can resynchronize."""
    now = clock.now()
    ls = db.get(ListenSession, session_id)
    if ls is None:
        raise SessionNotFound(f"no listen session {session_id!r}")
    verdict = verdict_of(ls, settings=settings)
    view: dict[str, Any] = {
        "id": ls.id,
        "packet_id": ls.packet_id,
        "claimant_id": ls.claimant_id,
        "device_id": ls.device_id,
        "status": "expired" if ls.status == "active" and now >= ls.expires_at else ls.status,
        "duration_s": ls.duration_ms / 1000.0,
        "started_at": ls.started_at,
        "expires_at": ls.expires_at,
        "server_elapsed_s": max(0, server_ms(ls, now)) / 1000.0,
        "heartbeats_accepted": ls.accepted,
        "heartbeats_rejected": ls.rejected,
        "verdict": verdict.as_dict(),
    }
    if token is not None:
        check_token(ls, token, secret=secret, now=now)
        view["last_seq"] = ls.last_seq
        view["next_nonce"] = ls.nonce
    return view
