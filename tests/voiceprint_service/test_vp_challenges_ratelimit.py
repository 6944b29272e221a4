"""Challenge prompts (fresh, expiring, single-use under races) and the DB-backed GCRA rate limiter."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from voiceprint import challenges, ratelimit
from voiceprint.service_errors import ChallengeExpired, ChallengeInvalid, ChallengeUsed, RateLimited
from voiceprint.tables import Challenge

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_random_digits_are_digits_fresh_and_roughly_uniform() -> None:
    prompts = [challenges.random_digits(8) for _ in range(2000)]
    assert all(len(p) == 8 and p.isdigit() for p in prompts)
    assert len(set(prompts)) == len(prompts)  # 10^8 space: a repeat would mean a broken source
    counts = Counter("".join(prompts))
    assert set(counts) == set("0123456789")
    assert max(counts.values()) / min(counts.values()) < 1.25
    assert not any(p[i] == p[i + 1] == p[i + 2] for p in prompts for i in range(6))


def test_challenge_is_single_use(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        c = challenges.issue(s, "alice", now=T0, ttl_s=60, digits=6)
        cid = c.id
        assert len(c.prompt) == 6 and c.expires_at == T0 + dt.timedelta(seconds=60)
    with factory() as s, s.begin():
        used = challenges.consume(s, cid, "alice", now=T0 + dt.timedelta(seconds=5))
        assert used.prompt == c.prompt and used.used_at is not None
    with factory() as s, s.begin(), pytest.raises(ChallengeUsed):
        challenges.consume(s, cid, "alice", now=T0 + dt.timedelta(seconds=6))


@pytest.mark.parametrize(
    ("user", "offset_s", "error"),
    [("bob", 5, ChallengeInvalid), ("alice", 60, ChallengeExpired), ("alice", 600, ChallengeExpired)],
)
def test_challenge_wrong_user_or_expired(factory, user: str, offset_s: float, error: type) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        cid = challenges.issue(s, "alice", now=T0, ttl_s=60, digits=6).id
    with factory() as s, s.begin(), pytest.raises(error) as exc:
        challenges.consume(s, cid, user, now=T0 + dt.timedelta(seconds=offset_s))
    assert type(exc.value) is error
    with factory() as s:  # a failed attempt does not burn it
        assert s.get(Challenge, cid).used_at is None


def test_unknown_challenge(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin(), pytest.raises(ChallengeInvalid):
        challenges.consume(s, "chl_nope", "alice", now=T0)
    with factory() as s, s.begin(), pytest.raises(ChallengeInvalid):
        challenges.consume(s, "x" * 500, "alice", now=T0)


@pytest.mark.both_dbs
def test_concurrent_consumers_only_one_wins(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        cid = challenges.issue(s, "alice", now=T0, ttl_s=60, digits=8).id
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            with factory() as s, s.begin():
                challenges.consume(s, cid, "alice", now=T0 + dt.timedelta(seconds=1))
            results.append("ok")
        except ChallengeUsed:
            results.append("used")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["used"] * 7


# --- rate limits -----------------------------------------------------------------------------


def test_gcra_allows_limit_then_refuses_then_recovers(factory) -> None:  # type: ignore[no-untyped-def]
    def hit(at_s: float) -> ratelimit.Decision:
        with factory() as s, s.begin():
            return ratelimit.hit(
                s, "verify:alice", limit=5, window_s=300, now=T0 + dt.timedelta(seconds=at_s)
            )

    decisions = [hit(0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True] * 5
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = hit(1)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(59.0)
    assert not hit(59.5).allowed
    assert hit(60.0).allowed  # one interval (300/5 s) later, one slot is back
    assert not hit(61).allowed
    # Other keys are independent.
    with factory() as s, s.begin():
        assert ratelimit.hit(s, "verify:bob", limit=5, window_s=300, now=T0).allowed
    # After a full window of quiet the whole burst is available again.
    assert all(hit(60 + 300 + i * 0.001).allowed for i in range(5))


def test_check_raises_rate_limited_with_retry_after(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        ratelimit.check(s, "k", limit=1, window_s=10, now=T0)
    with factory() as s, s.begin(), pytest.raises(RateLimited) as exc:
        ratelimit.check(s, "k", limit=1, window_s=10, now=T0 + dt.timedelta(seconds=4))
    assert exc.value.status == 429 and exc.value.extra["retry_after_s"] == pytest.approx(6.0)


@pytest.mark.both_dbs
def test_limit_holds_across_processes_under_contention(database_url: str) -> None:
    """Two engines (as two API processes would have), 6 threads each, 40 attempts: exactly 7 pass."""
    engines = [make_engine(database_url) for _ in range(2)]
    factories = [make_session_factory(e) for e in engines]
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def worker(f, n: int) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        for _ in range(n):
            with f() as s, s.begin():
                d = ratelimit.hit(s, "verify:carol", limit=7, window_s=3600, now=T0)
            with lock:
                allowed.append(d.allowed)

    threads = [threading.Thread(target=worker, args=(factories[i % 2], 4 if i < 4 else 3)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert len(allowed) == 40 and sum(allowed) == 7


def test_invalid_limits(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, pytest.raises(ValueError):
        ratelimit.hit(s, "k", limit=0, window_s=10, now=T0)
    with factory() as s, pytest.raises(ValueError):
        ratelimit.hit(s, "k", limit=1, window_s=0, now=T0)


def test_challenge_rows_are_queryable(factory) -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        for _ in range(3):
            challenges.issue(s, "dave", now=T0, ttl_s=30, digits=8)
    with factory() as s:
        rows = s.execute(select(Challenge).where(Challenge.user_id == "dave")).scalars().all()
        assert len({r.prompt for r in rows}) == 3
