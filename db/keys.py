"""Service-to-service API keys: random tokens shown once, stored as sha256 (they carry 256 bits of
entropy, so a fast hash is safe and lookups stay O(1)), each with scopes."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.base import new_id, utcnow
from db.tables import ApiKey

SCOPES = ("upload", "claim", "admin")
PREFIX = "sg_"


class UnknownScope(ValueError):
    pass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session, *, name: str, scopes: list[str], key: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return ``(row, plaintext)``; the plaintext is never stored."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise UnknownScope(f"unknown scopes {bad}; choose from {SCOPES}")
    plaintext = key or PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=new_id("key"),
        name=name,
        prefix=plaintext[:10],
        key_hash=hash_key(plaintext),
        scopes=sorted(set(scopes)),
    )
    session.add(row)
    session.flush()
    return row, plaintext


def ensure_key(session: Session, *, name: str, scopes: list[str], key: str) -> ApiKey:
    """Idempotently register a known key (bootstrap admin key from settings)."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None:
        row, _ = create_key(session, name=name, scopes=scopes, key=key)
    return row


def lookup(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke(session: Session, key_id: str) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True
