"""Expiry: packets past ``expires_at`` stop paying and refund their remainder to the sender.

The refund is a payout plus an outbox message, committed with the packet's new status in one
transaction per packet (under the same packet lock claims take), so a refund and a last-second
claim can never both spend the same fen. Runs from ``songgate packets expire`` or the relay loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from claims.outbox import add_payout
from claims.tables import Packet
from claims.uow import lock_packet, unit_of_work
from core.clock import Clock


@dataclass(frozen=True)
class Refund:
    packet_id: str
    sender_id: str
    amount_fen: int
    payout_id: str | None  # None when nothing was left to refund


def expire_packet(db: Session, packet_id: str, *, clock: Clock) -> Refund | None:
    """Expire one packet if it is due (caller commits); ``None`` when it is not (any more)."""
    now = clock.now()
    packet = lock_packet(db, packet_id)
    if packet.status != "active" or now < packet.expires_at:
        return None
    packet.status = "expired"
    amount = packet.remaining_fen
    payout_id = None
    if amount > 0:
        packet.refunded_fen = amount
        payout = add_payout(
            db, kind="refund", packet_id=packet.id, user_id=packet.sender_id, amount_fen=amount, now=now
        )
        payout_id = payout.id
    db.flush()
    return Refund(packet.id, packet.sender_id, amount, payout_id)


def expire_packets(factory: sessionmaker[Session], *, clock: Clock, limit: int = 500) -> list[Refund]:
    """Expire every due packet (at most ``limit`` per call), one short transaction each."""
    with factory() as db:
        due = list(
            db.scalars(
                select(Packet.id)
                .where(Packet.status == "active", Packet.expires_at <= clock.now())
                .order_by(Packet.expires_at)
                .limit(limit)
            )
        )
    done: list[Refund] = []
    for packet_id in due:
        with unit_of_work(factory) as db:
            refund = expire_packet(db, packet_id, clock=clock)
        if refund is not None:
            done.append(refund)
    return done
