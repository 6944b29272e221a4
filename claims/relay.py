"""Outbox relay: deliver payout messages to a sink at least once.

Loop: *lease* a batch of due messages (a short transaction pushes their ``available_at`` forward
by ``lease_s``, so a crashed relay's batch simply becomes due again), hand them to the sink, then
mark the ones the sink confirmed as delivered (another short transaction). A crash anywhere means
redelivery, never loss; a redelivered message carries the same payout id, which consumers use as
their idempotency key. Failed deliveries back off exponentially (``backoff_base_s * 2**(n-1)``,
capped, with jitter).

Sinks: :class:`FileSink` appends JSON lines and confirms only after ``fsync`` (a torn last line
left by a crash is cut off before the next append, under an exclusive ``flock``);
:class:`WebhookSink` POSTs each message with ``Idempotency-Key: <payout id>`` and confirms on 2xx.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from claims.config import RelaySettings
from claims.expiry import expire_packets
from claims.tables import OutboxMessage, Payout
from claims.uow import is_postgres, unit_of_work
from core.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    outbox_id: int
    message_id: str  # = payout id, the consumer's idempotency key
    topic: str
    payload: dict[str, Any]
    attempts: int

    def record(self) -> dict[str, Any]:
        """What a sink receives (deterministic: a redelivery is byte-identical)."""
        return {
            "message_id": self.message_id,
            "topic": self.topic,
            "outbox_id": self.outbox_id,
            **self.payload,
        }


@dataclass
class DeliveryResult:
    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Sink(Protocol):
    def deliver(self, messages: Sequence[Message]) -> DeliveryResult: ...


class FileSink:
    """Append-only JSONL file; a batch is confirmed after one ``fsync``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def deliver(self, messages: Sequence[Message]) -> DeliveryResult:
        if not messages:
            return DeliveryResult()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(m.record(), sort_keys=True, separators=(",", ":")) + "\n" for m in messages)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _cut_torn_tail(fd)
            os.write(fd, data.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the flock
        return DeliveryResult(confirmed=[m.message_id for m in messages])


def _cut_torn_tail(fd: int) -> None:
    """Drop a partial last line (written by a relay killed mid-write, never confirmed)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            return
        pos = start
    os.ftruncate(fd, 0)


class WebhookSink:
    """POST each message as JSON; 2xx confirms it."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, client: Any = None) -> None:
        import httpx  # only the webhook sink needs it

        self.url = url
        self._client = client or httpx.Client(timeout=timeout_s)

    def deliver(self, messages: Sequence[Message]) -> DeliveryResult:
        result = DeliveryResult()
        for m in messages:
            try:
                resp = self._client.post(
                    self.url,
                    json=m.record(),
                    headers={"Idempotency-Key": m.message_id, "X-Songgate-Topic": m.topic},
                )
            except Exception as exc:  # network errors are retried with backoff
                result.failed[m.message_id] = f"{type(exc).__name__}: {exc}"[:500]
                continue
            if 200 <= resp.status_code < 300:
                result.confirmed.append(m.message_id)
            else:
                result.failed[m.message_id] = f"HTTP {resp.status_code}"
        return result


def make_sink(spec: str, *, timeout_s: float = 10.0) -> Sink:
    """``http(s)://...`` -> :class:`WebhookSink`; anything else is a JSONL file path."""
    if spec.startswith(("http://", "https://")):
        return WebhookSink(spec, timeout_s=timeout_s)
    return FileSink(spec)


@dataclass
class RelayStats:
    leased: int = 0
    delivered: int = 0
    failed: int = 0
    refunds: int = 0

    def add(self, other: RelayStats) -> None:
        self.leased += other.leased
        self.delivered += other.delivered
        self.failed += other.failed
        self.refunds += other.refunds


Failpoint = Callable[[str], None]


def backoff_s(attempts: int, *, settings: RelaySettings, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempts`` (1-based): exponential, capped, 50-100 % jitter."""
    base = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(0, attempts - 1))
    return base * (0.5 + 0.5 * (rng or random).random())


class Relay:
    def __init__(
        self,
        factory: sessionmaker[Session],
        sink: Sink,
        *,
        settings: RelaySettings,
        clock: Clock | None = None,
        failpoint: Failpoint | None = None,
    ) -> None:
        self.factory = factory
        self.sink = sink
        self.settings = settings
        self.clock = clock or SystemClock()
        self.failpoint = failpoint or (lambda name: None)

    def lease(self) -> list[Message]:
        now = self.clock.now()
        with unit_of_work(self.factory) as db:
            q = (
                select(OutboxMessage)
                .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.available_at <= now)
                .order_by(OutboxMessage.id)
                .limit(self.settings.batch_size)
            )
            if is_postgres(db):
                q = q.with_for_update(skip_locked=True)
            rows = list(db.scalars(q))
            until = now + dt.timedelta(seconds=self.settings.lease_s)
            out = []
            for row in rows:
                row.available_at = until
                row.attempts += 1
                out.append(Message(row.id, row.message_id, row.topic, dict(row.payload), row.attempts))
        return out

    def mark(self, messages: Sequence[Message], result: DeliveryResult) -> None:
        now = self.clock.now()
        ok = set(result.confirmed)
        with unit_of_work(self.factory) as db:
            if ok:
                db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.message_id.in_(ok), OutboxMessage.delivered_at.is_(None))
                    .values(delivered_at=now, last_error=None)
                )
                db.execute(
                    update(Payout)
                    .where(Payout.id.in_(ok), Payout.delivered_at.is_(None))
                    .values(delivered_at=now)
                )
            for m in messages:
                if m.message_id in ok:
                    continue
                err = result.failed.get(m.message_id, "not confirmed by the sink")
                db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == m.outbox_id, OutboxMessage.delivered_at.is_(None))
                    .values(
                        available_at=now
                        + dt.timedelta(seconds=backoff_s(m.attempts, settings=self.settings)),
                        last_error=err[:1000],
                    )
                )

    def deliver_batch(self) -> RelayStats:
        batch = self.lease()
        self.failpoint("after_lease")
        if not batch:
            return RelayStats()
        try:
            result = self.sink.deliver(batch)
        except Exception as exc:  # a sink that blows up fails the whole batch
            log.warning("sink failed: %s", exc)
            result = DeliveryResult(failed={m.message_id: f"{type(exc).__name__}: {exc}" for m in batch})
        self.failpoint("after_deliver")
        self.mark(batch, result)
        self.failpoint("after_mark")
        return RelayStats(
            leased=len(batch), delivered=len(result.confirmed), failed=len(batch) - len(result.confirmed)
        )

    def run(
        self,
        *,
        once: bool = False,
        expire: bool = True,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> RelayStats:
        """Deliver until stopped; with ``once``, until nothing is due right now."""
        total = RelayStats()
        stop = stop or threading.Event()
        wait = sleep or stop.wait
        last_expire: float | None = None
        while not stop.is_set():
            if expire and (
                last_expire is None or self.clock.monotonic() - last_expire >= self.settings.expire_every_s
            ):
                total.refunds += len(expire_packets(self.factory, clock=self.clock))
                last_expire = self.clock.monotonic()
            stats = self.deliver_batch()
            total.add(stats)
            if stats.leased == 0 or (stats.delivered == 0 and stats.failed):
                if once:
                    break
                wait(self.settings.poll_interval_s)
        return total


def env_failpoint(spec: str | None, *, seed: int | None = None) -> Failpoint | None:
    """Fault injection for crash tests: ``"after_deliver:0.3,after_lease:0.1"`` SIGKILLs this
    process at those points with those probabilities (``SONGGATE_RELAY_FAILPOINTS``)."""
    if not spec:
        return None
    points: dict[str, float] = {}
    for part in spec.split(","):
        name, _, p = part.partition(":")
        points[name.strip()] = float(p or 1.0)
    rng = random.Random(seed)

    def fail(name: str) -> None:
        if name in points and rng.random() < points[name]:
            os.kill(os.getpid(), signal.SIGKILL)

    return fail


def main(argv: list[str] | None = None) -> int:
    """``python -m claims.relay --database-url URL --sink PATH|URL [--once]`` (no heavy imports)."""
    import argparse

    from db.engine import make_engine, make_session_factory

    ap = argparse.ArgumentParser(prog="python -m claims.relay")
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lease-s", type=float, default=None)
    ap.add_argument("--no-expire", action="store_true")
    args = ap.parse_args(argv)
    settings = RelaySettings()
    if args.batch_size:
        settings = settings.model_copy(update={"batch_size": args.batch_size})
    if args.lease_s:
        settings = settings.model_copy(update={"lease_s": args.lease_s})
    factory = make_session_factory(make_engine(args.database_url))
    seed = os.environ.get("SONGGATE_RELAY_SEED")
    relay = Relay(
        factory,
        make_sink(args.sink, timeout_s=settings.webhook_timeout_s),
        settings=settings,
        failpoint=env_failpoint(
            os.environ.get("SONGGATE_RELAY_FAILPOINTS"), seed=int(seed) if seed else None
        ),
    )
    stats = relay.run(once=args.once, expire=not args.no_expire)
    print(json.dumps(stats.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
