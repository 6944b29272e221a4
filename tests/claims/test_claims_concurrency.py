"""Races: many claimants (and one greedy claimant) at once, against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from claimfakes import World
from sqlalchemy import func, select

from claims.claiming import ClaimRequest, claim
from claims.errors import AlreadyClaimed, PacketEmpty
from claims.money import SYSTEM_RNG
from claims.tables import Claim, OutboxMessage, Packet, Payout
from claims.uow import unit_of_work


def _race(world: World, pid: str, requests: list[ClaimRequest]) -> list[object]:
    """Fire every claim at once (threads released together by a barrier)."""
    barrier = threading.Barrier(len(requests))

    def one(req: ClaimRequest) -> object:
        barrier.wait()
        try:
            with unit_of_work(world.factory) as db:
                return claim(
                    db, req, clock=world.clock, settings=world.settings, stepup=world.stepup, rng=SYSTEM_RNG
                )
        except (PacketEmpty, AlreadyClaimed) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))


@pytest.mark.both_dbs
def test_200_concurrent_claimants_on_a_10_share_lucky_packet(database_url: str) -> None:
    world = World.from_url(database_url)
    try:
        pid = world.packet(total_fen=8888, count=10, duration_s=3.0)
        listens = [world.listen_fully(pid, f"c{i:03d}", device=f"d{i}", ip=None) for i in range(200)]
        results = _race(world, pid, [ClaimRequest(pid, s.sid, s.claimant) for s in listens])

        grants = [r for r in results if not isinstance(r, Exception)]
        refused = Counter(type(r).__name__ for r in results if isinstance(r, Exception))
        assert len(grants) == 10
        assert refused == Counter({"PacketEmpty": 190})
        assert sum(g.amount_fen for g in grants) == 8888  # type: ignore[attr-defined]
        assert len({g.claimant_id for g in grants}) == 10  # type: ignore[attr-defined]
        assert sorted(g.share_index for g in grants) == list(range(1, 11))  # type: ignore[attr-defined]
        with world.factory() as db:
            packet = db.get(Packet, pid)
            assert (packet.remaining_fen, packet.remaining_count, packet.status) == (0, 0, "empty")
            rows = db.execute(select(Claim.claimant_id, Claim.amount_fen).where(Claim.packet_id == pid)).all()
            assert len(rows) == 10 and sum(a for _, a in rows) == 8888
            assert len({c for c, _ in rows}) == 10
            assert db.scalar(select(func.sum(Payout.amount_fen)).where(Payout.packet_id == pid)) == 8888
            assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 10
    finally:
        world.engine.dispose()


@pytest.mark.both_dbs
def test_one_claimant_racing_itself_is_paid_once(database_url: str) -> None:
    world = World.from_url(database_url)
    try:
        pid = world.packet(total_fen=1000, count=5, duration_s=3.0)
        a = world.listen_fully(pid, "greedy")
        b = world.listen_fully(pid, "greedy", device="dev-2")  # a second complete session, too
        results = _race(world, pid, [ClaimRequest(pid, (a, b)[i % 2].sid, "greedy") for i in range(30)])
        grants = [r for r in results if not isinstance(r, Exception)]
        assert len(grants) == 1
        assert all(isinstance(r, AlreadyClaimed) for r in results if isinstance(r, Exception))
        with world.factory() as db:
            assert (
                db.scalar(select(func.count()).select_from(Claim).where(Claim.claimant_id == "greedy")) == 1
            )
            assert db.get(Packet, pid).remaining_count == 4
    finally:
        world.engine.dispose()
