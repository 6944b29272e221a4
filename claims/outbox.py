"""Transactional outbox: a payout and the message announcing it commit in one transaction.

The relay (:mod:`claims.relay`) delivers the messages at least once; the payout id is the
message id and the consumer's idempotency key, so a redelivery is recognisable as such.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from claims.tables import OutboxMessage, Payout
from db.base import new_id

TOPICS = {"grant": "payout.grant", "refund": "payout.refund"}


def payout_message(payout: Payout) -> dict[str, Any]:
    """The payload consumers receive (amounts in integer fen)."""
    return {
        "payout_id": payout.id,
        "kind": payout.kind,
        "packet_id": payout.packet_id,
        "claim_id": payout.claim_id,
        "user_id": payout.user_id,
        "amount_fen": payout.amount_fen,
        "currency": "CNY",
        "created_at": payout.created_at.isoformat(),
    }


def add_payout(
    db: Session,
    *,
    kind: str,
    packet_id: str,
    user_id: str,
    amount_fen: int,
    now: dt.datetime,
    claim_id: str | None = None,
) -> Payout:
    """Add a payout row and its outbox message to the caller's transaction."""
    if kind not in TOPICS:
        raise ValueError(f"unknown payout kind {kind!r}")
    payout = Payout(
        id=new_id("pay"),
        kind=kind,
        dedupe_key=f"grant:{claim_id}" if kind == "grant" else f"refund:{packet_id}",
        packet_id=packet_id,
        claim_id=claim_id,
        user_id=user_id,
        amount_fen=amount_fen,
        created_at=now,
    )
    db.add(payout)
    db.add(
        OutboxMessage(
            message_id=payout.id,
            topic=TOPICS[kind],
            payload=payout_message(payout),
            created_at=now,
            available_at=now,
            attempts=0,
        )
    )
    return payout
