"""Claims tables: packets, listen sessions, heartbeats, claims (grants), payouts, outbox,
risk audit and user flags.

Invariants the database itself enforces (the last line of defence behind the per-packet lock):
one claim per (packet, claimant); one claim per (packet, share index), so a packet can never
pay more shares than it has; one payout per claim and one refund per packet; remaining amounts
never negative. Money columns are integer fen.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow

#: Auto-increment key that is BIGINT on PostgreSQL and the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Packet(Base):
    __tablename__ = "packets"
    __table_args__ = (
        CheckConstraint("total_fen >= count", name="total_covers_count"),
        CheckConstraint("remaining_fen >= remaining_count", name="remaining_covers_count"),
        CheckConstraint("remaining_count >= 0", name="remaining_count_nonneg"),
        CheckConstraint("count >= 1", name="count_positive"),
        Index("ix_packets_sender_created", "sender_id", "created_at"),
        Index("ix_packets_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    duration_ms: Mapped[int] = mapped_column(Integer)  # the song's length when the packet was made
    mode: Mapped[str] = mapped_column(String(8))  # fixed | lucky
    condition: Mapped[str] = mapped_column(String(16))  # listen_full
    greeting: Mapped[str] = mapped_column(String(200), default="")
    total_fen: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    remaining_fen: Mapped[int] = mapped_column(BigInteger)
    remaining_count: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # active | empty | expired
    verification_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ListenSession(Base):
    __tablename__ = "listen_sessions"
    __table_args__ = (Index("ix_listen_sessions_packet_claimant", "packet_id", "claimant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"))
    claimant_id: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | burned | claimed
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # evidence (see claims.evidence.EvidenceState)
    nonce: Mapped[str] = mapped_column(String(64))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_position_ms: Mapped[int] = mapped_column(Integer, default=0)
    last_rate_milli: Mapped[int] = mapped_column(Integer, default=1000)
    last_paused: Mapped[bool] = mapped_column(Boolean, default=True)
    last_server_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    lead_ms: Mapped[int] = mapped_column(Integer, default=0)
    coverage: Mapped[bytes] = mapped_column(LargeBinary)
    covered_seconds: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class HeartbeatRecord(Base):
    """Every accepted heartbeat, as evidence for disputes and audits."""

    __tablename__ = "heartbeats"
    __table_args__ = (UniqueConstraint("session_id", "seq", name="uq_heartbeats_session_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("listen_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    position_ms: Mapped[int] = mapped_column(Integer)
    rate_milli: Mapped[int] = mapped_column(Integer)
    paused: Mapped[bool] = mapped_column(Boolean)
    server_ms: Mapped[int] = mapped_column(BigInteger)
    credited_ms: Mapped[int] = mapped_column(Integer)
    client_time_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # never trusted
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Claim(Base):
    """A grant: one share of a packet paid to one claimant."""

    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("packet_id", "claimant_id", name="uq_claims_packet_claimant"),
        UniqueConstraint("packet_id", "share_index", name="uq_claims_packet_share"),
        CheckConstraint("amount_fen >= 1", name="amount_positive"),
        Index("ix_claims_device_created", "device_id", "created_at"),
        Index("ix_claims_ip_created", "ip", "created_at"),
        Index("ix_claims_claimant_created", "claimant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"))
    claimant_id: Mapped[str] = mapped_column(String(128))
    session_id: Mapped[str] = mapped_column(ForeignKey("listen_sessions.id"), unique=True)
    device_id: Mapped[str] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    share_index: Mapped[int] = mapped_column(Integer)  # 1..count, claim order
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Payout(Base):
    """Money to move: a grant to a claimant or a refund of an expired packet to its sender."""

    __tablename__ = "payouts"
    __table_args__ = (CheckConstraint("amount_fen >= 1", name="amount_positive"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the consumer's idempotency key
    kind: Mapped[str] = mapped_column(String(16))  # grant | refund
    dedupe_key: Mapped[str] = mapped_column(String(80), unique=True)  # grant:<claim> | refund:<packet>
    packet_id: Mapped[str] = mapped_column(ForeignKey("packets.id"), index=True)
    claim_id: Mapped[str | None] = mapped_column(ForeignKey("claims.id"), nullable=True)
    user_id: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OutboxMessage(Base):
    """Transactional outbox: written in the same transaction as the payout it announces."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "available_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)  # = payout id
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # lease / backoff
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RiskAudit(Base):
    """One row per risk decision (allow or deny), with every rule's result."""

    __tablename__ = "risk_audit"
    __table_args__ = (Index("ix_risk_audit_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16))  # send | claim
    decision: Mapped[str] = mapped_column(String(16))  # allow | deny
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)  # refusal reason code
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the deciding rule
    packet_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class UserFlags(Base):
    """Per-user facts the risk rules need (set by the platform): minor flag and IANA time zone."""

    __tablename__ = "user_flags"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    minor: Mapped[bool] = mapped_column(Boolean, default=False)
    tz: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
