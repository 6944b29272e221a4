"""Idempotency-Key handling shared by every mutating route that money or uploads pass through.

Protocol (Stripe-style, as the claims rules require):
- first request with a key: a row is inserted in state ``in_flight`` (its own committed transaction,
  so a concurrent duplicate sees it), the work runs, the answer is stored and the row becomes ``done``;
- same key + same request fingerprint after completion: the stored answer is replayed;
- same key + different fingerprint: :class:`IdempotencyMismatch` (422);
- same key while the first is still running: :class:`IdempotencyInFlight` (409);
- if the work raises, the row is removed so the client may retry with the same key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import SonggateError
from db.tables import IdempotencyRecord

MAX_KEY_LENGTH = 200


class IdempotencyMismatch(SonggateError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency-Key was used with a different request"


class IdempotencyInFlight(SonggateError):
    code = "idempotency_key_in_flight"
    status = 409
    title = "A request with this Idempotency-Key is still being processed"


class InvalidIdempotencyKey(SonggateError):
    code = "invalid_idempotency_key"
    status = 422
    title = "Invalid Idempotency-Key header"


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def fingerprint(*parts: Any) -> str:
    """Stable hash of the request parts (JSON-able values or bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, separators=(",", ":"), default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()


class IdempotencyGuard:
    """Use as: ``replay = guard.begin()``; if ``replay`` is not None return it; else do the work and
    ``guard.complete(status, body)`` (or ``guard.abandon()`` on failure)."""

    def __init__(self, factory: sessionmaker[Session], *, scope: str, key: str, request_hash: str):
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidIdempotencyKey(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
        self._factory = factory
        self.scope, self.key, self.request_hash = scope, key, request_hash

    def begin(self) -> StoredResponse | None:
        try:
            with self._factory() as s, s.begin():
                s.add(
                    IdempotencyRecord(
                        scope=self.scope, key=self.key, request_hash=self.request_hash, state="in_flight"
                    )
                )
            return None
        except IntegrityError:
            pass
        with self._factory() as s:
            row = s.get(IdempotencyRecord, (self.scope, self.key))
        if row is None:  # the other request abandoned between our insert and read: try once more
            return self.begin()
        if row.request_hash != self.request_hash:
            raise IdempotencyMismatch("this Idempotency-Key was first used with a different request body")
        if row.state != "done":
            raise IdempotencyInFlight("retry after the first request has finished")
        return StoredResponse(row.status_code or 200, json.loads(row.response or "null"))

    def complete(self, status_code: int, body: Any) -> None:
        """Store the answer in a transaction of its own."""
        with self._factory() as s, s.begin():
            self.complete_in(s, status_code, body)

    def complete_in(self, session: Session, status_code: int, body: Any) -> None:
        """Store the answer in the caller's transaction: it then commits with the work itself,
        so no crash can leave the work done and the key still ``in_flight``."""
        row = session.get(IdempotencyRecord, (self.scope, self.key))
        if row is not None:
            row.state = "done"
            row.status_code = status_code
            row.response = json.dumps(body, default=str)

    def abandon(self) -> None:
        with self._factory() as s, s.begin():
            s.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.scope == self.scope,
                    IdempotencyRecord.key == self.key,
                    IdempotencyRecord.state == "in_flight",
                )
            )


def stored(session: Session, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    )
