"""Claiming a share: proof, packet state, risk rules, then grant + payout + outbox, exactly once.

Claims on one packet are serialized: ``SELECT ... FOR UPDATE`` on the packet row (PostgreSQL) or
the engine's ``BEGIN IMMEDIATE`` (SQLite). The unique constraints on (packet, claimant) and
(packet, share index) are the last line of defence should a lock ever be missing. The grant, its
payout and the outbox message commit in the same transaction as the packet's new balance.

Order of checks (the first failing one is the answer): session belongs to this packet and
claimant -> already claimed -> packet expired -> packet empty -> proof of a full listen -> risk
rules (evaluated with the drawn share) -> grant. Every refusal and every grant is audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claims import risk
from claims.config import ClaimSettings
from claims.errors import AlreadyClaimed, SessionMismatch, SessionNotFound, refusal
from claims.money import SYSTEM_RNG, IntRng, next_share
from claims.outbox import add_payout
from claims.packets import effective_status
from claims.sessions import verdict_of
from claims.stepup import StepUp
from claims.tables import Claim, ListenSession
from claims.uow import lock_keys, lock_packet
from core.clock import Clock
from db.base import new_id


@dataclass(frozen=True)
class ClaimRequest:
    packet_id: str
    session_id: str
    claimant_id: str
    verification_id: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class Grant:
    claim_id: str
    packet_id: str
    claimant_id: str
    session_id: str
    amount_fen: int
    share_index: int
    payout_id: str
    remaining_count: int
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "packet_id": self.packet_id,
            "claimant_id": self.claimant_id,
            "session_id": self.session_id,
            "amount_fen": self.amount_fen,
            "share_index": self.share_index,
            "payout_id": self.payout_id,
            "remaining_count": self.remaining_count,
            "created_at": self.created_at,
        }


def _refuse(db: Session, ctx: risk.RiskContext, code: str, rule_id: str, **detail: Any) -> Exception:
    """Audit a refusal decided before (or outside) the risk rules and build its error."""
    decision = risk.RiskDecision(False, code, rule_id, [risk.RuleResult(rule_id, "deny", code, dict(detail))])
    risk.record(db, ctx, decision)
    if code == "session_mismatch":
        return SessionMismatch("the listen session belongs to another packet or claimant", **detail)
    return refusal(code, **detail)


def claim(
    db: Session,
    req: ClaimRequest,
    *,
    clock: Clock,
    settings: ClaimSettings,
    stepup: StepUp,
    rng: IntRng = SYSTEM_RNG,
) -> Grant:
    """Grant the claimant one share or raise the refusal (audited, ``persist``); caller commits."""
    now = clock.now()
    packet = lock_packet(db, req.packet_id)
    ls = db.get(ListenSession, req.session_id, populate_existing=True)
    if ls is None:
        raise SessionNotFound(f"no listen session {req.session_id!r}")
    ctx = risk.RiskContext(
        action="claim",
        user_id=req.claimant_id,
        amount_fen=0,
        now=now,
        packet_id=packet.id,
        device_id=ls.device_id,
        ip=req.ip or ls.ip,
        verification_id=req.verification_id,
    )
    if ls.packet_id != packet.id or ls.claimant_id != req.claimant_id:
        # Token/session reuse across accounts or packets.
        raise _refuse(db, ctx, "session_mismatch", "session_binding", session_id=ls.id)
    existing = db.scalar(
        select(Claim).where(Claim.packet_id == packet.id, Claim.claimant_id == req.claimant_id)
    )
    if existing is not None:
        raise _refuse(db, ctx, "already_claimed", "one_claim_per_packet", claim_id=existing.id)
    status = effective_status(packet, now)
    if status == "expired":
        raise _refuse(db, ctx, "packet_expired", "packet_state")
    if status == "empty" or packet.remaining_count == 0:
        raise _refuse(db, ctx, "packet_empty", "packet_state")
    verdict = verdict_of(ls, settings=settings)
    if not verdict.complete:
        raise _refuse(db, ctx, "not_listened", "proof", verdict=verdict.as_dict())

    lock_keys(db, f"user:{req.claimant_id}", f"device:{ls.device_id}", f"ip:{ctx.ip}" if ctx.ip else None)
    amount = next_share(
        mode=packet.mode,  # type: ignore[arg-type]
        total_fen=packet.total_fen,
        count=packet.count,
        remaining_fen=packet.remaining_fen,
        remaining_count=packet.remaining_count,
        rng=rng,
    )
    ctx.amount_fen = amount
    decision = risk.evaluate(db, ctx, settings=settings.risk, stepup=stepup, audit=False)
    if not decision.allowed:
        risk.record(db, ctx, decision, extra=[{"rule": "proof", "outcome": "pass"}])
        raise refusal(decision.code or "limit_exceeded", rule=decision.rule_id)

    share_index = packet.count - packet.remaining_count + 1
    row = Claim(
        id=new_id("clm"),
        packet_id=packet.id,
        claimant_id=req.claimant_id,
        session_id=ls.id,
        device_id=ls.device_id,
        ip=ctx.ip,
        share_index=share_index,
        amount_fen=amount,
        created_at=now,
    )
    db.add(row)
    packet.remaining_fen -= amount
    packet.remaining_count -= 1
    if packet.remaining_count == 0:
        packet.status = "empty"
    ls.status = "claimed"
    payout = add_payout(
        db,
        kind="grant",
        packet_id=packet.id,
        user_id=req.claimant_id,
        amount_fen=amount,
        now=now,
        claim_id=row.id,
    )
    risk.record(
        db,
        ctx,
        decision,
        extra=[{"rule": "proof", "outcome": "pass", "coverage": round(verdict.coverage, 4)}],
    )
    try:
        db.flush()
    except IntegrityError as exc:  # a lock was bypassed: the constraints still hold the line
        err = AlreadyClaimed("this claimant already claimed the red packet")
        err.persist = False
        raise err from exc
    return Grant(
        claim_id=row.id,
        packet_id=packet.id,
        claimant_id=req.claimant_id,
        session_id=ls.id,
        amount_fen=amount,
        share_index=share_index,
        payout_id=payout.id,
        remaining_count=packet.remaining_count,
        created_at=now,
    )


def find_claim(db: Session, packet_id: str, claimant_id: str) -> Claim | None:
    return db.scalar(select(Claim).where(Claim.packet_id == packet_id, Claim.claimant_id == claimant_id))
