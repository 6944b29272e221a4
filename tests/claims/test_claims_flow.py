"""The claim path through the database: packets, sessions, grants, refusals, risk rules, expiry,
audit trail, and the migration matching the tables."""

from __future__ import annotations

import datetime as dt

import pytest
from claimfakes import SECRET, Listener, World
from sqlalchemy import func, select

from claims.errors import (
    AlreadyClaimed,
    ClaimRefused,
    Curfew,
    DeviceLimit,
    HeartbeatRejected,
    InvalidPacket,
    LimitExceeded,
    NotListened,
    PacketEmpty,
    PacketExpired,
    RecordingNotFound,
    SessionMismatch,
    StepUpRequired,
)
from claims.evidence import Heartbeat
from claims.expiry import expire_packets
from claims.flags import set_user_flags
from claims.sessions import record_heartbeat, session_view
from claims.tables import Claim, OutboxMessage, Packet, Payout, RiskAudit
from claims.uow import unit_of_work


@pytest.fixture
def world(database_url: str) -> World:
    w = World.from_url(database_url)
    yield w
    w.engine.dispose()


def _count(w: World, model, *where) -> int:  # type: ignore[no-untyped-def]
    with w.factory() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _audit(w: World) -> list[RiskAudit]:
    with w.factory() as db:
        return list(db.scalars(select(RiskAudit).order_by(RiskAudit.id)))


@pytest.mark.both_dbs
def test_full_listen_grants_a_share_with_payout_and_outbox_in_one_transaction(world: World) -> None:
    pid = world.packet(total_fen=1000, count=3, duration_s=42.5)
    s = world.listen_fully(pid, "alice")
    g = world.claim(pid, s)
    assert 1 <= g.amount_fen <= 666 and g.share_index == 1 and g.remaining_count == 2
    with world.factory() as db:
        packet = db.get(Packet, pid)
        assert packet.remaining_fen == 1000 - g.amount_fen and packet.remaining_count == 2
        payout = db.get(Payout, g.payout_id)
        assert (payout.kind, payout.user_id, payout.amount_fen, payout.claim_id) == (
            "grant",
            "alice",
            g.amount_fen,
            g.claim_id,
        )
        msg = db.scalar(select(OutboxMessage).where(OutboxMessage.message_id == g.payout_id))
        assert (
            msg.topic == "payout.grant"
            and msg.payload["amount_fen"] == g.amount_fen
            and msg.delivered_at is None
        )
    audit = _audit(world)
    assert [(a.action, a.decision) for a in audit] == [("send", "allow"), ("claim", "allow")]
    assert {r["rule"] for r in audit[1].rules} >= {
        "minor_curfew",
        "device_accounts_per_packet",
        "user_daily_amount",
        "proof",
    }


def test_all_shares_sum_to_the_total_and_then_the_packet_is_empty(world: World) -> None:
    pid = world.packet(total_fen=1001, count=4, duration_s=5.0)
    amounts = [
        world.claim(pid, world.listen_fully(pid, f"user{i}", device=f"d{i}", ip=f"10.0.0.{i}")).amount_fen
        for i in range(4)
    ]
    assert sum(amounts) == 1001 and min(amounts) >= 1
    with pytest.raises(PacketEmpty):
        world.open(pid, "late", "d9")
    with world.factory() as db:
        assert db.get(Packet, pid).status == "empty"


def test_fixed_packet_pays_equal_shares(world: World) -> None:
    pid = world.packet(total_fen=900, count=3, mode="fixed", duration_s=3.0)
    amounts = [
        world.claim(pid, world.listen_fully(pid, f"u{i}", device=f"d{i}", ip=f"10.1.0.{i}")).amount_fen
        for i in range(3)
    ]
    assert amounts == [300, 300, 300]


def test_refusals_carry_reason_codes_and_are_audited(world: World) -> None:
    pid = world.packet(total_fen=300, count=1, duration_s=20.0)
    partial = Listener.of(world.open(pid, "bob", "d-bob"))
    world.clock.advance(0.2)
    world.beat(partial, 0)
    world.clock.advance(5)
    world.beat(partial, 5000)
    with pytest.raises(NotListened) as exc:
        world.claim(pid, partial)
    assert exc.value.status == 403
    assert {r["code"] for r in exc.value.extra["verdict"]["reasons"]} == {
        "coverage_too_low",
        "elapsed_too_short",
    }

    s = world.listen_fully(pid, "alice")
    with pytest.raises(SessionMismatch):  # a complete session reused by another account
        world.claim(pid, s, claimant="mallory")
    world.claim(pid, s)
    with pytest.raises(AlreadyClaimed):
        world.claim(pid, s)
    with pytest.raises(PacketEmpty):
        world.claim(pid, world_listen_after_empty(world, pid, partial))
    codes = [(a.decision, a.code) for a in _audit(world) if a.action == "claim"]
    assert codes == [
        ("deny", "not_listened"),
        ("deny", "session_mismatch"),
        ("allow", None),
        ("deny", "already_claimed"),
        ("deny", "packet_empty"),
    ]


def world_listen_after_empty(world: World, pid: str, partial: Listener) -> Listener:
    """Bob keeps listening in his old session after the last share went."""
    world.clock.advance(5)
    world.beat(partial, 10_000)
    return partial


def test_expired_packet_refuses_claims_and_refunds_the_remainder(world: World) -> None:
    pid = world.packet(
        total_fen=1000, count=3, duration_s=4.0, expires_at=world.clock.now() + dt.timedelta(minutes=10)
    )
    g = world.claim(pid, world.listen_fully(pid, "alice"))
    late = world.listen_fully(pid, "bob", device="d-bob", ip="10.0.0.2")
    world.clock.advance(600)
    with pytest.raises(PacketExpired):  # by the clock, before the sweeper ran
        world.claim(pid, late)
    refunds = expire_packets(world.factory, clock=world.clock)
    assert [(r.packet_id, r.amount_fen) for r in refunds] == [(pid, 1000 - g.amount_fen)]
    assert expire_packets(world.factory, clock=world.clock) == []  # idempotent
    with world.factory() as db:
        packet = db.get(Packet, pid)
        assert packet.status == "expired" and packet.refunded_fen + g.amount_fen == 1000
        refund = db.get(Payout, refunds[0].payout_id)
        assert (refund.kind, refund.user_id) == ("refund", packet.sender_id)
        assert (
            db.scalar(select(OutboxMessage.topic).where(OutboxMessage.message_id == refund.id))
            == "payout.refund"
        )
    with pytest.raises(PacketExpired):
        world.claim(pid, late)


def test_heartbeats_with_another_sessions_token_are_refused(world: World) -> None:
    pid = world.packet(duration_s=30.0)
    a = Listener.of(world.open(pid, "alice", "d-a"))
    b = Listener.of(world.open(pid, "bob", "d-b"))
    b.token = a.token  # bob presents alice's token on his own session
    with pytest.raises(SessionMismatch):
        world.beat(b, 0)
    a.sid = b.sid  # or alice's token+key on bob's session id
    with pytest.raises(SessionMismatch):
        world.beat(a, 0)


def test_session_burns_after_too_many_rejected_heartbeats(world: World) -> None:
    world.settings = world.settings.model_copy(update={"max_rejected_heartbeats": 3})
    pid = world.packet(duration_s=10.0)
    s = Listener.of(world.open(pid, "eve", "d-e"))
    for _ in range(4):
        with pytest.raises(HeartbeatRejected) as exc:
            world.beat(s, 0, mac="f" * 64)
        assert exc.value.reason == "bad_mac" and exc.value.status == 403
    with pytest.raises(HeartbeatRejected) as exc:
        world.beat(s, 0)
    assert exc.value.reason == "session_burned"
    with world.factory() as db:
        view = session_view(db, s.sid, clock=world.clock, settings=world.settings, secret=SECRET)
    assert view["status"] == "burned" and view["heartbeats_rejected"] == 4
    assert any(r["code"] == "session_burned" for r in view["verdict"]["reasons"])


def test_rejections_are_persisted_but_change_no_evidence(world: World) -> None:
    pid = world.packet(duration_s=10.0)
    s = Listener.of(world.open(pid, "eve", "d-e"))
    world.clock.advance(1)
    world.beat(s, 0)
    with pytest.raises(HeartbeatRejected):
        world.beat(s, 5000, seq=1)  # replayed sequence number
    with world.factory() as db:
        view = session_view(
            db, s.sid, clock=world.clock, settings=world.settings, secret=SECRET, token=s.token
        )
    assert view["heartbeats_rejected"] == 1 and view["heartbeats_accepted"] == 1 and view["last_seq"] == 1
    assert view["next_nonce"] == s.nonce


def test_session_expires(world: World) -> None:
    from claims.errors import TokenInvalid

    pid = world.packet(duration_s=10.0)
    s = Listener.of(world.open(pid, "eve", "d-e"))
    world.clock.advance(world.settings.session_ttl_min_s + 0.5)  # the token outlives it by 1 s
    with pytest.raises(HeartbeatRejected) as exc:
        world.beat(s, 0)
    assert exc.value.reason == "session_expired" and exc.value.status == 410
    world.clock.advance(1.0)
    with pytest.raises(TokenInvalid):
        world.beat(s, 0)


def test_client_clock_skew_is_irrelevant(world: World) -> None:
    """Two listens identical but for wildly different device clocks end with identical evidence."""
    pid = world.packet(count=2, duration_s=23.4)
    results = []
    for who, skew_ms in (("honest", 0), ("skewed", 86_400_000 * 400)):
        s = Listener.of(world.open(pid, who, f"d-{who}", f"10.9.0.{len(results)}"))
        world.clock.advance(0.5)
        t0 = world.clock.now()
        for step_s, pos in (
            (0.0, 0),
            (5.0, 5000),
            (5.0, 10_000),
            (5.0, 15_000),
            (5.0, 20_000),
            (3.4, 23_400),
        ):
            world.clock.advance(step_s)
            world.beat(s, pos, client_time_ms=int(t0.timestamp() * 1000) + skew_ms + pos)
        with world.factory() as db:
            v = session_view(db, s.sid, clock=world.clock, settings=world.settings, secret=SECRET)
        results.append((v["verdict"]["coverage"], v["verdict"]["covered_seconds"], v["heartbeats_accepted"]))
        world.claim(pid, s)
    assert results[0] == results[1] == (1.0, 24, 6)


# --- risk rules --------------------------------------------------------------------------------
def test_packet_amount_cap_and_daily_amount(world: World) -> None:
    with pytest.raises(LimitExceeded):
        world.packet(total_fen=500_001, count=1, sender="rich")
    world.packet(total_fen=500_000, count=1, sender="rich")
    world.packet(total_fen=500_000, count=1, sender="rich")
    with pytest.raises(LimitExceeded):  # 10000 CNY per user per day
        world.packet(total_fen=100, count=1, sender="rich")
    world.clock.advance(86_401)
    world.packet(total_fen=100, count=1, sender="rich")  # the trailing 24 h window moved on
    denied = [a for a in _audit(world) if a.decision == "deny"]
    assert [a.rule_id for a in denied] == ["packet_amount_cap", "user_daily_amount"]


def test_daily_amount_counts_claims_too(world: World) -> None:
    world.settings = world.settings.model_copy(
        update={"risk": world.settings.risk.model_copy(update={"max_user_daily_fen": 1500})}
    )
    p1 = world.packet(total_fen=1000, count=1, duration_s=3.0)
    p2 = world.packet(total_fen=1000, count=1, duration_s=3.0)
    world.claim(p1, world.listen_fully(p1, "carol"))
    s2 = world.listen_fully(p2, "carol", device="d-c2")
    with pytest.raises(LimitExceeded):
        world.claim(p2, s2)
    with world.factory() as db:  # the refused draw consumed nothing
        assert db.get(Packet, p2).remaining_fen == 1000


def test_busy_sender_needs_step_up(world: World) -> None:
    for _ in range(5):
        world.packet(total_fen=1000, sender="busy")
    with pytest.raises(StepUpRequired):
        world.packet(total_fen=1000, sender="busy")
    with pytest.raises(StepUpRequired):  # someone else's verification does not count
        world.stepup.passed["ver-x"] = "other"
        world.packet(total_fen=1000, sender="busy", verification_id="ver-x")
    world.stepup.passed["ver-1"] = "busy"
    pid = world.packet(total_fen=1000, sender="busy", verification_id="ver-1")
    assert pid.startswith("pkt_")
    last = _audit(world)[-1]
    assert (last.decision, last.rule_id) == ("allow", "sender_daily_count")
    assert {"rule": "step_up", "outcome": "pass", "verification_id": "ver-1"} in last.rules


def test_unusual_amount_needs_step_up(world: World) -> None:
    for _ in range(3):
        world.packet(total_fen=1000, sender="steady")
    world.packet(total_fen=2900, sender="steady")  # 190 % above the average: fine
    with pytest.raises(StepUpRequired):
        world.packet(total_fen=6000, sender="steady")  # more than 200 % away from the trailing average
    rules = {r["rule"]: r for r in _audit(world)[-1].rules}
    assert rules["sender_amount_anomaly"]["outcome"] == "step_up"


@pytest.mark.parametrize(
    ("utc_hour", "tz", "refused"),
    [
        (15, None, True),  # 23:00 in Beijing (the default zone)
        (23, None, True),  # 07:00 in Beijing
        (0, None, False),  # 08:00 in Beijing
        (4, None, False),  # noon in Beijing
        (4, "America/New_York", True),  # 23:00 in New York
        (15, "America/New_York", False),  # 10:00 in New York
    ],
)
def test_minor_curfew(world: World, utc_hour: int, tz: str | None, refused: bool) -> None:
    with unit_of_work(world.factory) as db:
        set_user_flags(db, "kid", minor=True, tz=tz, now=world.clock.now())
    target = world.clock.now().replace(hour=utc_hour) + dt.timedelta(days=1)
    world.clock.advance((target - world.clock.now()).total_seconds())
    pid = world.packet(total_fen=300, count=3, duration_s=3.0)  # an adult sends
    s = world.listen_fully(pid, "kid")
    if refused:
        with pytest.raises(Curfew):
            world.claim(pid, s)
        with pytest.raises(Curfew):
            world.packet(sender="kid")
        assert world.claim(pid, world.listen_fully(pid, "adult", device="d-adult")).amount_fen >= 1
    else:
        world.claim(pid, s)
        world.packet(sender="kid")


def test_one_device_cannot_claim_for_many_accounts(world: World) -> None:
    pid = world.packet(total_fen=1000, count=10, duration_s=3.0)
    world.claim(pid, world.listen_fully(pid, "a1", device="farm", ip="10.0.0.1"))
    with pytest.raises(DeviceLimit):
        world.claim(pid, world.listen_fully(pid, "a2", device="farm", ip="10.0.0.2"))
    # Across packets: at most 3 accounts per device per day.
    for i, user in enumerate(["a2", "a3"]):
        p = world.packet(count=2, duration_s=3.0)
        world.claim(p, world.listen_fully(p, user, device="farm", ip=f"10.0.1.{i}"))
    p = world.packet(count=2, duration_s=3.0)
    with pytest.raises(DeviceLimit) as exc:
        world.claim(p, world.listen_fully(p, "a4", device="farm", ip="10.0.2.1"))
    assert exc.value.extra["rule"] == "device_accounts_per_day"


def test_one_ip_caps_accounts_per_packet(world: World) -> None:
    pid = world.packet(total_fen=1000, count=10, duration_s=3.0)
    for i in range(5):
        world.claim(pid, world.listen_fully(pid, f"n{i}", device=f"d{i}", ip="203.0.113.7"))
    with pytest.raises(DeviceLimit) as exc:
        world.claim(pid, world.listen_fully(pid, "n5", device="d5", ip="203.0.113.7"))
    assert exc.value.extra["rule"] == "ip_accounts_per_packet"


def test_linked_accounts_need_step_up(world: World) -> None:
    world.stepup.links["twin"] = ["main-account"]
    pid = world.packet(count=3, duration_s=3.0)
    s = world.listen_fully(pid, "twin")
    with pytest.raises(StepUpRequired):
        world.claim(pid, s)
    world.stepup.passed["ver-twin"] = "twin"
    assert world.claim(pid, s, verification_id="ver-twin").amount_fen >= 1


def test_rules_can_be_disabled_by_id(world: World) -> None:
    world.settings = world.settings.model_copy(
        update={
            "risk": world.settings.risk.model_copy(update={"disabled_rules": ["device_accounts_per_packet"]})
        }
    )
    pid = world.packet(total_fen=1000, count=10, duration_s=3.0)
    world.claim(pid, world.listen_fully(pid, "a1", device="shared"))
    world.claim(pid, world.listen_fully(pid, "a2", device="shared"))
    rules = {r["rule"]: r for r in _audit(world)[-1].rules}
    assert rules["device_accounts_per_packet"] == {
        "rule": "device_accounts_per_packet",
        "outcome": "pass",
        "code": None,
        "disabled": True,
    }


def test_every_decision_is_audited(world: World) -> None:
    decisions = 0
    pid = world.packet(total_fen=200, count=2, duration_s=3.0)
    decisions += 1
    listens = [world.listen_fully(pid, user, device=f"d-{user}") for user in ("x1", "x2", "x3")]
    for s in listens + listens[:1]:
        try:
            world.claim(pid, s)
        except (ClaimRefused, PacketEmpty):
            pass
        decisions += 1
    audit = _audit(world)
    assert len(audit) == decisions
    assert [(a.decision, a.code) for a in audit] == [
        ("allow", None),
        ("allow", None),
        ("allow", None),
        ("deny", "packet_empty"),
        ("deny", "already_claimed"),
    ]


def test_bad_packets_are_invalid(world: World) -> None:
    with pytest.raises(RecordingNotFound):
        _bad_recording(world)
    with pytest.raises(InvalidPacket):
        world.packet(total_fen=100, count=3, mode="fixed")
    with pytest.raises(InvalidPacket):
        world.packet(expires_at=world.clock.now() - dt.timedelta(seconds=1))
    with pytest.raises(InvalidPacket):
        world.packet(expires_at=world.clock.now() + dt.timedelta(days=30))
    assert _count(world, Packet) == 0


def _bad_recording(world: World) -> None:
    from claims.packets import PacketRequest, create_packet

    with unit_of_work(world.factory) as db:
        create_packet(
            db,
            PacketRequest("s", "no-such-recording", 100, 1),
            clock=world.clock,
            settings=world.settings,
            stepup=world.stepup,
        )


def test_unique_constraints_hold_without_the_lock(world: World) -> None:
    """Bypass the service: the database itself refuses a second grant for a claimant or share."""
    from sqlalchemy.exc import IntegrityError

    pid = world.packet(total_fen=1000, count=3, duration_s=3.0)
    s = world.listen_fully(pid, "alice")
    g = world.claim(pid, s)
    s2 = world.listen_fully(pid, "bob", device="d2")
    for claimant, share_index, session_id in (("alice", 2, s2.sid), ("bob", g.share_index, s2.sid)):
        with pytest.raises(IntegrityError):
            with unit_of_work(world.factory) as db:
                db.add(
                    Claim(
                        id=world.uid("clm"),
                        packet_id=pid,
                        claimant_id=claimant,
                        session_id=session_id,
                        device_id="d",
                        ip=None,
                        share_index=share_index,
                        amount_fen=1,
                        created_at=world.clock.now(),
                    )
                )


@pytest.mark.both_dbs
def test_migration_matches_the_tables(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import claims.tables  # noqa: F401
    from db.base import Base
    from db.engine import make_engine

    engine = make_engine(database_url)
    mine = {
        "packets",
        "listen_sessions",
        "heartbeats",
        "claims",
        "payouts",
        "outbox",
        "risk_audit",
        "user_flags",
    }
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    ours = [d for d in diff if any(t in str(d) for t in mine)]
    assert ours == []


def test_heartbeat_for_unknown_session(world: World) -> None:
    from claims.errors import SessionNotFound

    with pytest.raises(SessionNotFound):
        with unit_of_work(world.factory) as db:
            record_heartbeat(
                db,
                session_id="ls_nope",
                token="x.y",
                hb=Heartbeat(1, 0, 1000, False, "0" * 64),
                clock=world.clock,
                settings=world.settings,
                secret=SECRET,
            )
