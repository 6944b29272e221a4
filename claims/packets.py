"""Creating and reading red packets (the sender side).

The packet snapshots the song's duration, so a later change of the recording cannot move the
goal posts for listeners. Sender-side risk rules (caps, minor curfew, step-up on unusual
volume or amount) run before the row is written and are audited either way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from claims import risk
from claims.config import ClaimSettings
from claims.errors import InvalidPacket, PacketNotFound, RecordingNotFound, refusal
from claims.money import Mode, validate_split
from claims.stepup import StepUp
from claims.tables import Packet
from claims.uow import lock_keys
from core.clock import Clock
from db.base import new_id
from db.tables import Recording

CONDITIONS = ("listen_full",)


@dataclass(frozen=True)
class PacketRequest:
    sender_id: str
    recording_id: str
    total_fen: int
    count: int
    mode: Mode = "lucky"
    greeting: str = ""
    condition: str = "listen_full"
    expires_at: dt.datetime | None = None
    verification_id: str | None = None


def create_packet(
    db: Session, req: PacketRequest, *, clock: Clock, settings: ClaimSettings, stepup: StepUp
) -> Packet:
    """Validate, run the send-side risk rules, and insert the packet (caller commits).

    Raises
    ------
    InvalidPacket, RecordingNotFound
        Bad input.
    ClaimRefused (limit_exceeded, curfew, step_up_required)
        A risk rule refused; the audit row is written (``persist``).
    """
    now = clock.now()
    validate_split(req.total_fen, req.count, mode=req.mode)
    if req.count > settings.max_count:
        raise InvalidPacket(f"count must be at most {settings.max_count}")
    if req.condition not in CONDITIONS:
        raise InvalidPacket(f"unsupported condition {req.condition!r}")
    expires_at = req.expires_at or now + dt.timedelta(seconds=settings.default_ttl_s)
    if expires_at.tzinfo is None:
        raise InvalidPacket("expires_at must carry a time zone")
    if expires_at <= now:
        raise InvalidPacket("expires_at must be in the future")
    if expires_at > now + dt.timedelta(seconds=settings.max_ttl_s):
        raise InvalidPacket(f"expires_at may be at most {settings.max_ttl_s} s ahead")
    recording = db.get(Recording, req.recording_id)
    if recording is None:
        raise RecordingNotFound(f"no recording {req.recording_id!r}")
    duration_ms = int(round(recording.duration_s * 1000))
    if duration_ms < 1000:
        raise InvalidPacket("the song must be at least one second long")

    lock_keys(db, f"user:{req.sender_id}")  # per-day counts of this sender stay exact
    packet_id = new_id("pkt")
    ctx = risk.RiskContext(
        action="send",
        user_id=req.sender_id,
        amount_fen=req.total_fen,
        now=now,
        packet_id=packet_id,
        verification_id=req.verification_id,
    )
    decision = risk.evaluate(db, ctx, settings=settings.risk, stepup=stepup)
    if not decision.allowed:
        raise refusal(decision.code or "limit_exceeded", rule=decision.rule_id)
    packet = Packet(
        id=packet_id,
        sender_id=req.sender_id,
        recording_id=req.recording_id,
        duration_ms=duration_ms,
        mode=req.mode,
        condition=req.condition,
        greeting=req.greeting,
        total_fen=req.total_fen,
        count=req.count,
        remaining_fen=req.total_fen,
        remaining_count=req.count,
        refunded_fen=0,
        status="active",
        verification_id=req.verification_id,
        expires_at=expires_at,
        created_at=now,
    )
    db.add(packet)
    db.flush()
    return packet


def get_packet(db: Session, packet_id: str) -> Packet:
    packet = db.get(Packet, packet_id)
    if packet is None:
        raise PacketNotFound(f"no red packet {packet_id!r}")
    return packet


def effective_status(packet: Packet, now: dt.datetime) -> str:
    """``active``, ``empty`` or ``expired`` -- expired by the clock even before the sweeper ran."""
    if packet.status == "active" and now >= packet.expires_at:
        return "expired"
    return packet.status


def packet_view(packet: Packet, *, now: dt.datetime) -> dict[str, object]:
    """The public JSON shape of a packet (no per-claimant data)."""
    return {
        "id": packet.id,
        "sender_id": packet.sender_id,
        "recording_id": packet.recording_id,
        "duration_s": packet.duration_ms / 1000.0,
        "mode": packet.mode,
        "condition": packet.condition,
        "greeting": packet.greeting,
        "total_fen": packet.total_fen,
        "count": packet.count,
        "remaining_count": packet.remaining_count,
        "remaining_fen": packet.remaining_fen if packet.status != "expired" else 0,
        "refunded_fen": packet.refunded_fen,
        "status": effective_status(packet, now),
        "expires_at": packet.expires_at,
        "created_at": packet.created_at,
    }
