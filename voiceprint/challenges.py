"""Challenge prompts: a fresh random digit string per verification attempt, short-lived and single-use.

A prompt the caller cannot predict is what makes a replayed recording fail (JR/T 0164-2018 asks for
dynamic prompts). Digits come from :mod:`secrets`; a challenge is consumed with one conditional
UPDATE (``used_at IS NULL AND expires_at > now``), so two concurrent verifications can never both
use it, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from db.base import new_id
from voiceprint.service_errors import ChallengeExpired, ChallengeInvalid, ChallengeUsed
from voiceprint.tables import Challenge


def random_digits(n: int) -> str:
    """``n`` uniformly random decimal digits from the OS CSPRNG, avoiding 3+ identical in a row.

    Runs like "777" are rejected (redrawn) because they are easier to splice from other recordings
    and harder to read aloud distinctly; this removes little entropy (about 3 % per digit).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    out: list[str] = []
    while len(out) < n:
        d = str(secrets.randbelow(10))
        if len(out) >= 2 and out[-1] == d and out[-2] == d:
            continue
        out.append(d)
    return "".join(out)


def issue(session: Session, user_id: str, *, now: dt.datetime, ttl_s: float, digits: int) -> Challenge:
    """Create a challenge for ``user_id`` valid for ``ttl_s`` seconds from ``now`` (caller commits)."""
    row = Challenge(
        id=new_id("chl"),
        user_id=user_id,
        prompt=random_digits(digits),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s),
    )
    session.add(row)
    session.flush()
    return row


def consume(session: Session, challenge_id: str, user_id: str, *, now: dt.datetime) -> Challenge:
    """Mark the challenge used, atomically; return it (caller commits).

    Raises
    ------
    ChallengeInvalid : unknown id, or issued to another user.
    ChallengeUsed : already consumed.
    ChallengeExpired : past its expiry.
    """
    if len(challenge_id) > 40:
        raise ChallengeInvalid("unknown challenge")
    result = session.execute(
        update(Challenge)
        .where(
            Challenge.id == challenge_id,
            Challenge.user_id == user_id,
            Challenge.used_at.is_(None),
            Challenge.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    row = session.get(Challenge, challenge_id, populate_existing=True)
    if cast(CursorResult[Any], result).rowcount == 1 and row is not None:
        return row
    # Say precisely why, without revealing other users' challenges.
    if row is None or row.user_id != user_id:
        raise ChallengeInvalid("unknown challenge", challenge_id=challenge_id)
    if row.used_at is not None:
        raise ChallengeUsed("this challenge was already used; request a new one", challenge_id=challenge_id)
    raise ChallengeExpired("this challenge has expired; request a new one", challenge_id=challenge_id)
