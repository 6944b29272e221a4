"""The payout outbox relay: at least once, never lost, duplicates only with the same payout id,
backoff on failures -- including a relay SIGKILLed at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from claimfakes import World
from sqlalchemy import select

from claims.config import RelaySettings
from claims.outbox import payout_message
from claims.relay import FileSink, Message, Relay, WebhookSink, backoff_s
from claims.tables import OutboxMessage, Payout
from claims.uow import unit_of_work

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(database_url: str) -> World:
    w = World.from_url(database_url)
    yield w
    w.engine.dispose()


def _payouts(world: World, n: int) -> list[str]:
    """``n`` payouts with their outbox messages (as a grant would write them)."""
    pid = world.packet(total_fen=100 * n, count=n, duration_s=3.0)
    ids = []
    with unit_of_work(world.factory) as db:
        for i in range(n):
            p = Payout(
                id=f"pay_{i:05d}_{world.uid('x')}",
                kind="grant",
                dedupe_key=f"test:{pid}:{i}",
                packet_id=pid,
                claim_id=None,
                user_id=f"user{i}",
                amount_fen=100 + i,
                created_at=world.clock.now(),
            )
            db.add(p)
            db.add(
                OutboxMessage(
                    message_id=p.id,
                    topic="payout.grant",
                    payload=payout_message(p),
                    created_at=world.clock.now(),
                    available_at=world.clock.now(),
                    attempts=0,
                )
            )
            ids.append(p.id)
    return ids


def _lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_file_sink_relay_delivers_everything_once(world: World, tmp_path: Path) -> None:
    ids = _payouts(world, 25)
    sink = tmp_path / "payouts.jsonl"
    stats = Relay(
        world.factory, FileSink(sink), settings=RelaySettings(batch_size=10), clock=world.clock
    ).run(once=True, expire=False)
    assert (stats.delivered, stats.failed) == (25, 0)
    lines = _lines(sink)
    assert [x["payout_id"] for x in lines] == ids  # outbox order
    assert all(x["message_id"] == x["payout_id"] for x in lines)
    with world.factory() as db:
        assert all(m.delivered_at is not None for m in db.scalars(select(OutboxMessage)))
        assert all(p.delivered_at is not None for p in db.scalars(select(Payout)))
    again = Relay(world.factory, FileSink(sink), settings=RelaySettings(), clock=world.clock).run(
        once=True, expire=False
    )
    assert again.delivered == 0 and len(_lines(sink)) == 25


def test_file_sink_cuts_a_torn_last_line(tmp_path: Path) -> None:
    sink = tmp_path / "p.jsonl"
    sink.write_text('{"payout_id":"a"}\n{"payout_id":"b","amo')  # a relay died mid-write
    FileSink(sink).deliver([Message(1, "c", "payout.grant", {"payout_id": "c"}, 1)])
    assert [x["payout_id"] for x in _lines(sink)] == ["a", "c"]


def test_webhook_retries_with_backoff_and_sends_the_payout_id_as_idempotency_key(world: World) -> None:
    ids = _payouts(world, 3)
    seen: list[tuple[str, str]] = []
    healthy = {"ok": False}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.headers["Idempotency-Key"], body["payout_id"]))
        return httpx.Response(200 if healthy["ok"] else 503)

    sink = WebhookSink(
        "http://payments.test/hook", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    settings = RelaySettings(backoff_base_s=2.0, backoff_max_s=60.0)
    relay = Relay(world.factory, sink, settings=settings, clock=world.clock)
    delays = []
    for attempt in range(1, 5):
        stats = relay.deliver_batch()
        assert (stats.leased, stats.delivered) == (3, 0)
        with world.factory() as db:
            rows = list(db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        assert {r.attempts for r in rows} == {attempt} and all(r.last_error == "HTTP 503" for r in rows)
        wait = min((r.available_at - world.clock.now()).total_seconds() for r in rows)
        delays.append(wait)
        assert relay.deliver_batch().leased == 0  # nothing is due before the backoff ends
        world.clock.advance(max((r.available_at - world.clock.now()).total_seconds() for r in rows) + 0.001)
    # exponential with 50-100 % jitter: 1-2 s, 2-4 s, 4-8 s, 8-16 s
    for n, d in enumerate(delays):
        assert 2.0 * 2**n * 0.5 - 1e-6 <= d <= 2.0 * 2**n + 1e-6
    healthy["ok"] = True
    assert relay.deliver_batch().delivered == 3
    assert all(key == pid for key, pid in seen) and {pid for _, pid in seen} == set(ids)


def test_backoff_is_capped() -> None:
    s = RelaySettings(backoff_base_s=1.0, backoff_max_s=30.0)
    assert all(15.0 <= backoff_s(n, settings=s, rng=random.Random(n)) <= 30.0 for n in range(6, 40))


@pytest.mark.both_dbs
def test_relay_sigkilled_at_random_points_loses_nothing(
    world: World, tmp_path: Path, database_url: str
) -> None:
    ids = set(_payouts(world, 120))
    sink = tmp_path / "payouts.jsonl"
    rng = random.Random(20261124)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = external = 0
    for attempt in range(300):
        env["SONGGATE_RELAY_FAILPOINTS"] = "after_lease:0.05,after_deliver:0.3,after_mark:0.1"
        env["SONGGATE_RELAY_SEED"] = str(attempt)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "claims.relay",
                "--database-url",
                database_url,
                "--sink",
                str(sink),
                "--batch-size",
                "7",
                "--lease-s",
                "0.2",
                "--once",
                "--no-expire",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            proc.wait(timeout=rng.uniform(0.3, 3.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # from outside, wherever it is
            external += 1
        _, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        elif proc.returncode != 0:
            raise AssertionError(err.decode()[-2000:])
        time.sleep(0.25)  # let a leased batch of the killed relay fall due again
        with world.factory() as db:
            pending = db.scalar(select(OutboxMessage.id).where(OutboxMessage.delivered_at.is_(None)).limit(1))
        if pending is None and proc.returncode == 0:
            break
    else:
        raise AssertionError("relay never finished")

    lines = sink.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # no torn or merged lines
    delivered = {r["payout_id"] for r in records}
    assert delivered == ids  # every payout delivered, none lost
    by_id: dict[str, set[str]] = {}
    for line, r in zip(lines, records, strict=True):
        by_id.setdefault(r["payout_id"], set()).add(line)
    assert all(len(v) == 1 for v in by_id.values())  # a duplicate is the same message, same payout id
    assert kills >= 5 and external >= 1
    assert len(records) > len(ids)  # it really was killed between delivering and marking
    with world.factory() as db:
        assert all(p.delivered_at is not None for p in db.scalars(select(Payout)))
