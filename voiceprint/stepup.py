"""Voice step-up checks for the claims team: two read-only questions about a user.

* :func:`verification_passed` -- did this verification (an id the client presents) accept this user
  recently? The claim path calls it before releasing money when risk rules demand a biometric step-up.
* :func:`linked_accounts` -- which other accounts have a voiceprint within the voice-search threshold
  of this user's (one person running many accounts)?

Both take the caller's SQLAlchemy session and never write.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.settings import get_settings
from db.base import utcnow
from voiceprint.search import IndexParams, registry_for
from voiceprint.service import linked_account_ids
from voiceprint.tables import VerificationAttempt

#: Tolerated clock difference between the process that recorded the attempt and this one, seconds.
CLOCK_SKEW_S = 5.0


def verification_passed(
    session: Session, verification_id: str, user_id: str, *, max_age_s: float = 600
) -> bool:
    """True when ``verification_id`` is an accepted voice verification of ``user_id`` made at most
    ``max_age_s`` seconds ago (server clock). Unknown ids, other users' verifications, rejections
    and stale ones are all False."""
    if not verification_id or len(verification_id) > 40 or not user_id:
        return False
    attempt = session.get(VerificationAttempt, verification_id)
    if attempt is None or attempt.user_id != user_id or attempt.decision != "accept":
        return False
    age = (utcnow() - attempt.created_at).total_seconds()
    return -CLOCK_SKEW_S <= age <= max_age_s


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def linked_accounts(session: Session, user_id: str) -> list[str]:
    """User ids (sorted) whose active voiceprint is within the search threshold of ``user_id``'s, for
    any model the user is enrolled with; empty when the user has no active voiceprint."""
    engine = _engine(session)
    settings = get_settings()
    registry = registry_for(
        engine,
        params=IndexParams.from_settings(settings.voiceprint),
        index_dir=settings.voiceprint.index_dir or settings.data_dir / "voice_index",
    )
    # The API's service registers its settings on the registry of its engine: use the same thresholds.
    return linked_account_ids(session, user_id, registry.settings or settings, registry)


__all__ = ["verification_passed", "linked_accounts"]
