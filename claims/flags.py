"""User flags the risk rules read (set by the platform): minor accounts and their time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from claims.errors import ClaimsError
from claims.tables import UserFlags


class InvalidTimezone(ClaimsError):
    code = "invalid_timezone"
    status = 422
    title = "Unknown IANA time zone"


def set_user_flags(
    db: Session, user_id: str, *, minor: bool | None = None, tz: str | None = None, now: dt.datetime
) -> UserFlags:
    """Create or update a user's flags (``None`` leaves a field as it is)."""
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidTimezone(f"unknown time zone {tz!r}") from exc
    row = db.get(UserFlags, user_id)
    if row is None:
        row = UserFlags(user_id=user_id, minor=bool(minor), tz=tz, updated_at=now)
        db.add(row)
    else:
        if minor is not None:
            row.minor = minor
        if tz is not None:
            row.tz = tz
        row.updated_at = now
    db.flush()
    return row
