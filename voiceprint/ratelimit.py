"""Per-user attempt limits stored in the database, so every API process shares them.

The algorithm is GCRA (the generic cell rate algorithm, as in ATM networks and redis-cell): one
number per key, the theoretical arrival time (TAT). ``limit`` attempts per ``window_s`` means an
emission interval T = window_s / limit and a burst of up to ``limit`` attempts; unlike fixed windows
there is no double burst at a window boundary. Updates are compare-and-set (``UPDATE ... WHERE
tat = :old``) retried on conflict, and the first row for a key is created with an
insert-or-ignore, so concurrent processes can never both spend the last slot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from voiceprint.service_errors import RateLimited
from voiceprint.tables import RateLimitState

MAX_CAS_RETRIES = 20
#: Slack for float rounding: epoch seconds as doubles resolve only ~0.2 microseconds.
EPS_S = 1e-3


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: float


def _insert_ignore(session: Session, key: str, tat: float, now: dt.datetime) -> None:
    dialect = session.get_bind().dialect.name
    values = {"key": key, "tat": tat, "updated_at": now}
    if dialect == "sqlite":
        session.execute(sqlite.insert(RateLimitState).values(**values).on_conflict_do_nothing())
    elif dialect == "postgresql":
        session.execute(postgresql.insert(RateLimitState).values(**values).on_conflict_do_nothing())
    else:  # generic: racing inserts fail and the caller's CAS loop re-reads
        if session.get(RateLimitState, key) is None:
            session.add(RateLimitState(key=key, tat=tat, updated_at=now))
            session.flush()


def hit(session: Session, key: str, *, limit: int, window_s: float, now: dt.datetime) -> Decision:
    """Spend one attempt for ``key`` if allowed (caller commits; commit even when refused is fine).

    Parameters
    ----------
    key : str, e.g. ``"verify:<user_id>"``
    limit : int >= 1, attempts allowed per ``window_s``
    window_s : float > 0, seconds
    now : aware datetime, the server clock

    Returns
    -------
    Decision : ``allowed``, attempts ``remaining`` right after this one, ``retry_after_s`` when refused
    """
    if limit < 1 or window_s <= 0:
        raise ValueError("limit must be >= 1 and window_s > 0")
    t = now.timestamp()
    interval = window_s / limit
    burst = window_s - interval  # how far TAT may run ahead of now
    _insert_ignore(session, key, t, now)
    for _ in range(MAX_CAS_RETRIES):
        old = session.execute(select(RateLimitState.tat).where(RateLimitState.key == key)).scalar_one()
        tat = max(old, t)
        if tat - t > burst + EPS_S:
            return Decision(False, 0, tat - t - burst)
        new = tat + interval
        res = session.execute(
            update(RateLimitState)
            .where(RateLimitState.key == key, RateLimitState.tat == old)
            .values(tat=new, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], res).rowcount == 1:
            remaining = math.floor((burst - (new - t) + EPS_S) / interval) + 1
            return Decision(True, max(remaining, 0), 0.0)
    raise RateLimited("too much contention on the rate limiter; retry", retry_after_s=1.0)


def check(session: Session, key: str, *, limit: int, window_s: float, now: dt.datetime) -> Decision:
    """:func:`hit`, raising :class:`RateLimited` (429, with ``retry_after_s``) when refused."""
    decision = hit(session, key, limit=limit, window_s=window_s, now=now)
    if not decision.allowed:
        raise RateLimited(
            f"at most {limit} attempts per {window_s:g} s; retry in {decision.retry_after_s:.0f} s",
            retry_after_s=round(decision.retry_after_s, 3),
        )
    return decision
