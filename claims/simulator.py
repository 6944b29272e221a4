"""Fraud simulator: honest listeners and every attack class, through the real claim path.

Each simulated client is a generator that yields :class:`Wait` (device time passing) or
:class:`Call` (a request over a simulated network with delay, jitter, spikes and loss). A
discrete-event scheduler advances one shared :class:`core.clock.VirtualClock` from event to event
and executes every call with :class:`claims.client.LocalTransport` -- one database transaction per
call through exactly the functions the HTTP routes use (sessions, evidence, proof, risk,
claiming). Hours of listening therefore run in seconds, deterministically for a seed.

Outcomes are read back from the database at the end (the ``claims`` table is the truth): an
honest run is a false reject when its claimant holds no grant; an attack run is *granted* when
the attacker's accounts hold more grants than the scenario allows (0 for most; the first account
on a device, or one grant per claimant in a race).

Attack classes (``../shared/DESIGN.md``): sped-up playback, seeking/skipping, forged heartbeats,
replayed heartbeats, scripted clients that do not wait, token reuse across accounts, many
accounts on one device or IP, double-claim races, clock-skewed clients.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import itertools
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from claims.client import ListenClient, LocalTransport, ProblemError, device_time_ms
from claims.config import ClaimSettings
from claims.packets import PacketRequest, create_packet
from claims.stepup import StaticStepUp
from claims.tables import Claim
from claims.uow import unit_of_work
from core.clock import VirtualClock

LOST = object()  # the client got no answer (request or response lost, or timed out)


# --- commands a simulated client yields ----------------------------------------------------
@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    lossy: bool = False


@dataclass(frozen=True)
class Net:
    """One-way delay = base + exponential(mean) (+ a rare spike); ``loss`` of lossy calls."""

    base_ms: float = 20.0
    mean_ms: float = 60.0
    spike_p: float = 0.01
    spike_ms: tuple[float, float] = (500.0, 2500.0)
    loss: float = 0.0
    timeout_s: float = 4.0

    def delay(self, rng: random.Random) -> float:
        d = self.base_ms + rng.expovariate(1.0 / self.mean_ms)
        if rng.random() < self.spike_p:
            d += rng.uniform(*self.spike_ms)
        return d / 1000.0


HONEST_NET = Net(loss=0.05, timeout_s=2.5)
CLEAN_NET = Net(spike_p=0.0)

Actor = Generator[Any, Any, None]


class Scheduler:
    """Discrete events on a virtual clock; server calls run at their arrival time."""

    def __init__(self, transport: LocalTransport, clock: VirtualClock, rng: random.Random) -> None:
        self.transport = transport
        self.clock = clock
        self.rng = rng
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._tick = itertools.count()
        self.calls = 0

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (max(t, self.now), next(self._tick), fn))

    def spawn(self, actor: Actor, *, at: float | None = None, net: Net = CLEAN_NET) -> None:
        self.at(self.now if at is None else at, lambda: self._step(actor, None, net))

    def run(self) -> None:
        while self._heap:
            t, _, fn = heapq.heappop(self._heap)
            if t > self.now:
                self.clock.advance(t - self.now)
            fn()

    def _step(self, actor: Actor, value: Any, net: Net) -> None:
        try:
            cmd = actor.send(value)
        except StopIteration:
            return
        if isinstance(cmd, Wait):
            self.at(self.now + max(0.0, cmd.seconds), lambda: self._step(actor, None, net))
        elif isinstance(cmd, Call):
            self._call(actor, cmd, net)
        else:  # pragma: no cover - programming error in an actor
            raise TypeError(f"actor yielded {cmd!r}")

    def _call(self, actor: Actor, cmd: Call, net: Net) -> None:
        sent = self.now
        lost = cmd.lossy and self.rng.random() < net.loss
        lost_request = lost and self.rng.random() < 0.5
        if lost_request:
            self.at(sent + net.timeout_s, lambda: self._step(actor, LOST, net))
            return

        def server() -> None:
            self.calls += 1
            try:
                result: Any = getattr(self.transport, cmd.op)(*cmd.args, **cmd.kwargs)
            except ProblemError as exc:
                result = exc
            back = self.now + net.delay(self.rng)
            if lost or back - sent > net.timeout_s:
                self.at(sent + net.timeout_s, lambda: self._step(actor, LOST, net))
            else:
                self.at(back, lambda: self._step(actor, result, net))

        self.at(sent + net.delay(self.rng), server)


# --- playback model ------------------------------------------------------------------------
@dataclass(frozen=True)
class Timeline:
    """Piecewise-linear playback: segments ``(t0, t1, pos0_ms, speed)``; speed 0 = paused."""

    segments: tuple[tuple[float, float, int, float], ...]
    duration_ms: int

    @property
    def end(self) -> float:
        return self.segments[-1][1]

    def state(self, t: float) -> tuple[int, bool]:
        if t < self.segments[0][0]:
            return 0, True
        for t0, t1, p0, speed in self.segments:
            if t0 <= t < t1:
                return min(self.duration_ms, int(p0 + speed * (t - t0) * 1000)), speed == 0
        return self.duration_ms, False


def build_timeline(
    start: float,
    duration_ms: int,
    *,
    speed: float = 1.0,
    pauses: Sequence[tuple[int, float]] = (),
    skips: Sequence[tuple[int, int]] = (),
) -> Timeline:
    """Play from 0 at ``speed``; pause at position ``p`` for ``d`` s; jump from ``p`` to ``q``."""
    events = sorted([(p, "pause", d) for p, d in pauses] + [(p, "skip", q) for p, q in skips])
    segs: list[tuple[float, float, int, float]] = []
    t, pos = start, 0
    for p, kind, arg in events:
        p = min(max(p, pos), duration_ms)
        t1 = t + (p - pos) / speed / 1000.0
        if t1 > t:
            segs.append((t, t1, pos, speed))
        t, pos = t1, p
        if kind == "pause":
            segs.append((t, t + float(arg), pos, 0.0))
            t += float(arg)
        else:
            pos = min(int(arg), duration_ms)
    t1 = t + (duration_ms - pos) / speed / 1000.0
    segs.append((t, max(t1, t + 1e-6), pos, speed))
    return Timeline(tuple(segs), duration_ms)


@dataclass(frozen=True)
class Device:
    """A device clock: ``offset_s`` off the true time and running ``rate`` times too fast."""

    offset_s: float = 0.0
    rate: float = 1.0

    def ms(self, now: dt.datetime) -> int:
        return device_time_ms(now, offset_s=self.offset_s)


# --- run bookkeeping ---------------------------------------------------------------------------
@dataclass
class Run:
    cls: str
    variant: str
    packet_ids: list[str]
    attackers: list[str]  # accounts whose grants count against the scenario
    allowed: int  # grants the scenario may legitimately get
    notes: Counter[str] = field(default_factory=Counter)
    sessions: list[str] = field(default_factory=list)

    def note(self, res: Any) -> None:
        if isinstance(res, ProblemError):
            self.notes[res.code if res.code != "heartbeat_rejected" else f"hb:{res.reason}"] += 1
        elif res is LOST:
            self.notes["lost"] += 1


@dataclass
class ClassResult:
    name: str
    runs: int
    granted: int
    refusals: dict[str, int]


@dataclass
class HonestResult:
    runs: int
    false_rejects: int
    reasons: dict[str, int]  # notes and verdict reasons of the refused runs
    events: dict[str, int] = field(default_factory=dict)  # what all honest runs went through

    @property
    def false_reject_rate(self) -> float:
        return self.false_rejects / self.runs if self.runs else 0.0


@dataclass
class SimReport:
    classes: list[ClassResult]
    honest: HonestResult
    calls: int
    virtual_s: float

    def as_json(self) -> dict[str, Any]:
        return {
            "classes": [{"name": c.name, "runs": c.runs, "granted": c.granted} for c in self.classes],
            "honest": {
                "runs": self.honest.runs,
                "false_rejects": self.honest.false_rejects,
                "false_reject_rate": self.honest.false_reject_rate,
            },
        }

    def table(self) -> str:
        rows = [("class", "runs", "granted", "refusals seen")]
        for c in self.classes:
            top = ", ".join(f"{k} {v}" for k, v in sorted(c.refusals.items(), key=lambda kv: -kv[1])[:4])
            rows.append((c.name, str(c.runs), str(c.granted), top))
        h = self.honest
        rows.append(
            (
                "honest",
                str(h.runs),
                str(h.runs - h.false_rejects),
                f"false rejects {h.false_rejects} ({h.false_reject_rate:.2%})",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


# --- the simulator -----------------------------------------------------------------------------
ATTACK_CLASSES = (
    "sped_up_playback",
    "seeking_skipping",
    "forged_heartbeats",
    "replayed_heartbeats",
    "scripted_no_wait",
    "token_reuse",
    "multi_account_device",
    "double_claim_race",
    "clock_skew",
)


class Simulator:
    def __init__(
        self,
        factory: Any,
        *,
        seed: int = 0,
        settings: ClaimSettings | None = None,
        durations_s: tuple[float, float] = (20.0, 240.0),
        spread_s: float = 1800.0,
    ) -> None:
        self.factory = factory
        self.rng = random.Random(seed)
        # The per-heartbeat audit rows are not evidence the verdict reads; skipping them keeps
        # thousands of simulated sessions fast. Everything else is the production configuration.
        self.settings = settings or ClaimSettings(store_heartbeats=False)
        self.clock = VirtualClock(dt.datetime(2026, 2, 16, 4, 0, tzinfo=dt.UTC))  # noon in Beijing
        self.secret = f"simulator-secret-{seed}".encode().ljust(32, b".")
        self.ips: dict[str, str] = {}
        self.transport = LocalTransport(
            factory,
            clock=self.clock,
            settings=self.settings,
            secret=self.secret,
            stepup=StaticStepUp(),
            rng=random.Random(seed + 1),
            ip_of=lambda claimant, device: self.ips.get(claimant),
        )
        self.sched = Scheduler(self.transport, self.clock, self.rng)
        self.durations_s = durations_s
        self.spread_s = spread_s
        self.runs: list[Run] = []
        self._ids = itertools.count(1)

    # -- setup helpers -------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _ip(self) -> str:
        n = next(self._ids)
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def account(self, ip: str | None = None) -> str:
        user = self._id("user")
        self.ips[user] = ip or self._ip()
        return user

    def packet(self, *, count: int = 10, duration_s: float | None = None) -> str:
        dur = duration_s or round(self.rng.uniform(*self.durations_s), 3)
        rec_id = self._id("rec")
        with unit_of_work(self.factory) as db:
            db.add(placeholder_song(rec_id, duration_s=dur, sha256=f"{next(self._ids):064x}"))
            db.flush()
            p = create_packet(
                db,
                PacketRequest(
                    sender_id=self._id("sender"), recording_id=rec_id, total_fen=100 * count, count=count
                ),
                clock=self.clock,
                settings=self.settings,
                stepup=StaticStepUp(),
            )
            return p.id

    def start_time(self) -> float:
        return self.sched.now + self.rng.uniform(0.0, self.spread_s)

    # -- client building blocks (generator helpers used with ``yield from``) -------------------
    def open(
        self, run: Run, packet_id: str, claimant: str, device: str
    ) -> Generator[Any, Any, ListenClient | None]:
        for _ in range(3):  # no answer (timeout): ask again; the orphaned session is harmless
            res = yield Call("open_session", (packet_id,), {"claimant_id": claimant, "device_id": device})
            if res is not LOST:
                break
        if not isinstance(res, dict):
            run.note(res)
            return None
        run.sessions.append(res["session_id"])
        return ListenClient.from_session(res)

    def send(
        self,
        run: Run,
        client: ListenClient,
        body: dict[str, Any],
        *,
        lossy: bool,
        token: str | None = None,
        session_id: str | None = None,
    ) -> Generator[Any, Any, Any]:
        """Send one heartbeat; acknowledge, or resync after a lost answer."""
        res = yield Call(
            "heartbeat",
            (session_id or client.session_id,),
            {"token": token or client.token, "body": body},
            lossy=lossy,
        )
        if isinstance(res, dict):
            if session_id is None or session_id == client.session_id:
                client.acknowledge(res)
        else:
            run.note(res)
            if (
                isinstance(res, ProblemError)
                and res.reason == "replayed"
                and session_id in (None, client.session_id)
            ):
                view = yield Call("session", (client.session_id,), {"token": client.token})
                if isinstance(view, dict):
                    client.resync(view)
        return res

    def play(
        self,
        run: Run,
        client: ListenClient,
        tl: Timeline,
        *,
        device: Device = Device(),
        report_rate: float = 1.0,
        lossy: bool = True,
    ) -> Generator[Any, Any, None]:
        """Heartbeat on the device's timer while ``tl`` plays, then the final one (retried)."""
        interval = client.interval_s / device.rate
        next_tick = self.sched.now
        while True:
            pos, paused = tl.state(self.sched.now)
            if pos >= client.duration_ms:
                break
            for _ in range(3):
                # An unanswered heartbeat is retried with the *current* position (a stale resend
                # would lag server time and make the next one look like a skip); if the server
                # did get the first one, the retry is refused as replayed and send() resyncs.
                body = client.heartbeat(
                    pos, rate=report_rate, paused=paused, client_time_ms=device.ms(self.clock.now())
                )
                res = yield from self.send(run, client, body, lossy=lossy)
                if isinstance(res, dict) or self.sched.now + 0.5 >= next_tick + interval:
                    break
                if isinstance(res, ProblemError) and res.reason != "replayed":
                    break
                pos, paused = tl.state(self.sched.now)
                if pos >= client.duration_ms:
                    break
            next_tick += interval
            yield Wait(next_tick - self.sched.now)
        yield from self.final(run, client, report_rate=report_rate, device=device, lossy=lossy)

    def final(
        self,
        run: Run,
        client: ListenClient,
        *,
        report_rate: float = 1.0,
        device: Device = Device(),
        lossy: bool = True,
        paused: bool = False,
    ) -> Generator[Any, Any, bool]:
        body = client.heartbeat(
            client.duration_ms, rate=report_rate, paused=paused, client_time_ms=device.ms(self.clock.now())
        )
        for _ in range(12):
            res = yield from self.send(run, client, body, lossy=lossy)
            if isinstance(res, dict):
                return True
            if isinstance(res, ProblemError):
                if res.reason != "replayed":
                    return False
                body = client.heartbeat(
                    client.duration_ms,
                    rate=report_rate,
                    paused=paused,
                    client_time_ms=device.ms(self.clock.now()),
                )
            yield Wait(1.0)  # resend the identical body after a lost answer (idempotent)
        return False

    def pad(
        self,
        run: Run,
        client: ListenClient,
        opened_at: float,
        *,
        position_ms: int | None = None,
        paused: bool = True,
    ) -> Generator[Any, Any, None]:
        """Keep heartbeating in place until the server elapsed time would pass the song length."""
        pos = client.duration_ms if position_ms is None else position_ms
        while self.sched.now - opened_at < client.duration_ms / 1000.0 + 1.0:
            yield from self.send(run, client, client.heartbeat(pos, paused=paused), lossy=False)
            yield Wait(client.interval_s)

    def claim(self, run: Run, packet_id: str, session_id: str, claimant: str) -> Generator[Any, Any, Any]:
        key = self._id("idem")
        for _ in range(3):  # a lost answer is retried with the same key
            res = yield Call(
                "claim",
                (packet_id,),
                {"session_id": session_id, "claimant_id": claimant, "idempotency_key": key},
            )
            if res is not LOST:
                break
        run.note(res)
        return res

    # -- honest -----------------------------------------------------------------------------
    def honest(self, *, skew: bool = True) -> None:
        pid = self.packet(count=3)
        user, device = self.account(), self._id("dev")
        run = Run("honest", "honest", [pid], [user], allowed=0)
        self.runs.append(run)
        offset = self.rng.choice([0.0, 0.0, 0.0, 3600.0 * 9, -86400.0 * 3, 7.0]) if skew else 0.0
        dev = Device(offset_s=offset)
        n_pauses = self.rng.choices([0, 1, 2], weights=[6, 3, 1])[0]

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            yield Wait(self.rng.uniform(0.2, 2.5))  # the user taps play
            pauses = [
                (self.rng.randrange(0, client.duration_ms), self.rng.uniform(1.0, 40.0))
                for _ in range(n_pauses)
            ]
            tl = build_timeline(self.sched.now, client.duration_ms, pauses=pauses)
            yield from self.play(run, client, tl, device=dev)
            yield Wait(self.rng.uniform(0.1, 1.0))
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time(), net=HONEST_NET)

    # -- attacks ----------------------------------------------------------------------------
    def _attack_run(
        self, cls: str, variant: str, *, count: int = 3, allowed: int = 0
    ) -> tuple[Run, str, str, str]:
        pid = self.packet(count=count)
        user, device = self.account(), self._id("dev")
        run = Run(cls, variant, [pid], [user], allowed)
        self.runs.append(run)
        return run, pid, user, device

    def sped_up_playback(self, i: int) -> None:
        variants = ("true_rate_2x", "lying_rate", "lying_rate_then_wait")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("sped_up_playback", variant)
        speed = 2.0 if variant == "true_rate_2x" else self.rng.choice([1.25, 1.5, 2.0])

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            opened = self.sched.now
            tl = build_timeline(self.sched.now, client.duration_ms, speed=speed)
            yield from self.play(
                run, client, tl, report_rate=speed if variant == "true_rate_2x" else 1.0, lossy=False
            )
            if variant == "lying_rate_then_wait":
                yield from self.pad(run, client, opened)
                yield from self.final(run, client, lossy=False, paused=True)
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time())

    def seeking_skipping(self, i: int) -> None:
        variants = ("skip_middle", "skip_many_small", "seek_to_end_and_wait")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("seeking_skipping", variant)

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            opened = self.sched.now
            dur = client.duration_ms
            if variant == "skip_middle":
                a = self.rng.randrange(dur // 4, dur // 2)
                skips = [(a, a + int(dur * self.rng.uniform(0.05, 0.3)))]
            elif variant == "skip_many_small":
                # each jump alone exceeds the jitter tolerance (smaller ones are absorbed by design)
                jump = self.settings.jitter_tolerance_ms + 1000
                skips = [(p, p + jump) for p in range(5_000, dur - jump, 12_000)]
            else:
                skips = [(0, dur)]
            tl = build_timeline(self.sched.now, dur, skips=skips)
            yield from self.play(run, client, tl, lossy=False)
            yield from self.pad(run, client, opened)
            yield from self.final(run, client, lossy=False, paused=True)
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time())

    def forged_heartbeats(self, i: int) -> None:
        variants = ("random_mac", "precomputed_chain", "tampered_fields", "seq_jump")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("forged_heartbeats", variant)

        def forge(client: ListenClient, body: dict[str, Any], k: int) -> dict[str, Any]:
            body = dict(body)
            if variant == "random_mac":
                body["mac"] = f"{self.rng.getrandbits(256):064x}"
            elif variant == "precomputed_chain" and k > 0:
                # Chains a guessed nonce: the server's next nonces cannot be known in advance.
                from claims import tokens

                body["mac"] = tokens.heartbeat_mac(
                    client.key,
                    client.session_id,
                    seq=k + 1,
                    position_ms=body["position_ms"],
                    rate_milli=tokens.rate_to_milli(body["playback_rate"]),
                    paused=body["paused"],
                    prev_nonce=f"guess-{k}",
                )
                body["seq"] = k + 1
            elif variant == "tampered_fields":
                body["position_ms"] = body["position_ms"] + 7000  # the MAC covers the real position
            elif variant == "seq_jump":
                body["seq"] = body["seq"] + 1 + k
            return body

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            t0 = self.sched.now
            for k, pos in enumerate(range(0, client.duration_ms + 5000, 5000)):
                pos = min(pos, client.duration_ms)
                yield from self.send(run, client, forge(client, client.heartbeat(pos), k), lossy=False)
                yield Wait(t0 + 5.0 * (k + 1) - self.sched.now)
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time())

    def replayed_heartbeats(self, i: int) -> None:
        variants = (
            "victim_bodies_into_own_session",
            "victim_bodies_into_victim_session",
            "victim_bodies_with_victim_token",
        )
        variant = variants[i % len(variants)]
        run, pid, attacker, device = self._attack_run("replayed_heartbeats", variant)
        victim, victim_dev = self.account(), self._id("dev")
        captured: list[dict[str, Any]] = []

        def victim_actor() -> Actor:
            client = yield from self.open(run, pid, victim, victim_dev)
            if client is None:
                return
            tl = build_timeline(self.sched.now, client.duration_ms)
            next_tick = self.sched.now
            while True:
                pos, paused = tl.state(self.sched.now)
                body = client.heartbeat(min(pos, client.duration_ms), paused=paused)
                captured.append(body)
                yield from self.send(run, client, body, lossy=False)
                if pos >= client.duration_ms:
                    break
                next_tick += client.interval_s
                yield Wait(next_tick - self.sched.now)
            self.sched.spawn(attacker_actor(client))

        def attacker_actor(victim_client: ListenClient) -> Actor:
            client = yield from self.open(run, pid, attacker, device)
            if client is None:
                return
            t0 = self.sched.now
            for k, body in enumerate(captured):
                if variant == "victim_bodies_into_own_session":
                    yield from self.send(run, client, body, lossy=False)
                elif variant == "victim_bodies_into_victim_session":
                    yield from self.send(
                        run,
                        victim_client,
                        body,
                        lossy=False,
                        token=victim_client.token,
                        session_id=victim_client.session_id,
                    )
                else:
                    yield from self.send(run, client, body, lossy=False, token=victim_client.token)
                yield Wait(t0 + 5.0 * (k + 1) - self.sched.now)
            yield from self.claim(run, pid, client.session_id, attacker)

        self.sched.spawn(victim_actor(), at=self.start_time())

    def scripted_no_wait(self, i: int) -> None:
        variants = ("burst_5s_steps", "burst_1s_steps", "idle_then_burst")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("scripted_no_wait", variant)

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            if variant == "idle_then_burst":
                yield from self.pad(run, client, self.sched.now, position_ms=0)
            step = 1000 if variant == "burst_1s_steps" else 5000
            for pos in range(step, client.duration_ms + step, step):
                yield from self.send(run, client, client.heartbeat(min(pos, client.duration_ms)), lossy=False)
                yield Wait(0.05)
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time())

    def token_reuse(self, i: int) -> None:
        variants = ("claim_with_victim_session", "heartbeats_with_victim_token", "victim_key_on_own_session")
        variant = variants[i % len(variants)]
        run, pid, attacker, device = self._attack_run("token_reuse", variant)
        victim, victim_dev = self.account(), self._id("dev")

        def victim_actor() -> Actor:
            client = yield from self.open(run, pid, victim, victim_dev)
            if client is None:
                return
            yield from self.play(run, client, build_timeline(self.sched.now, client.duration_ms), lossy=False)
            self.sched.spawn(attacker_actor(client))

        def attacker_actor(v: ListenClient) -> Actor:
            if variant == "claim_with_victim_session":
                yield from self.claim(run, pid, v.session_id, attacker)
                return
            client = yield from self.open(run, pid, attacker, device)
            if client is None:
                return
            if variant == "victim_key_on_own_session":
                client.key = v.key  # heartbeats MACed with the victim's key
            t0 = self.sched.now
            for k, pos in enumerate(range(0, client.duration_ms + 5000, 5000)):
                body = client.heartbeat(min(pos, client.duration_ms))
                token = v.token if variant == "heartbeats_with_victim_token" else None
                yield from self.send(run, client, body, lossy=False, token=token)
                yield Wait(t0 + 5.0 * (k + 1) - self.sched.now)
            yield from self.claim(run, pid, client.session_id, attacker)

        self.sched.spawn(victim_actor(), at=self.start_time())

    def multi_account_device(self, i: int) -> None:
        variants = ("one_device_one_packet", "one_ip_one_packet", "one_device_many_packets")
        variant = variants[i % len(variants)]
        r = self.settings.risk
        shared_ip, shared_dev = self._ip(), self._id("dev")
        if variant == "one_device_one_packet":
            n, allowed = 6, r.max_accounts_per_device_per_packet
            pids = [self.packet(count=n)] * n
        elif variant == "one_ip_one_packet":
            n, allowed = r.max_accounts_per_ip_per_packet + 3, r.max_accounts_per_ip_per_packet
            pids = [self.packet(count=n)] * n
        else:
            n, allowed = r.max_accounts_per_device_per_day + 2, r.max_accounts_per_device_per_day
            pids = [self.packet(count=2) for _ in range(n)]
        users = [self.account(ip=shared_ip) for _ in range(n)]
        devices = [self._id("dev") if variant == "one_ip_one_packet" else shared_dev for _ in range(n)]
        run = Run("multi_account_device", variant, sorted(set(pids)), users, allowed)
        self.runs.append(run)
        start = self.start_time()

        def actor(pid: str, user: str, device: str) -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            yield from self.play(run, client, build_timeline(self.sched.now, client.duration_ms), lossy=False)
            yield from self.claim(run, pid, client.session_id, user)

        for k in range(n):
            self.sched.spawn(actor(pids[k], users[k], devices[k]), at=start + 0.5 * k)

    def double_claim_race(self, i: int) -> None:
        variants = ("same_session_many_keys", "two_sessions")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("double_claim_race", variant, count=10, allowed=1)

        def claimer(session_id: str) -> Actor:
            yield from self.claim(run, pid, session_id, user)

        def listen_once() -> Generator[Any, Any, ListenClient | None]:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return None
            yield from self.play(run, client, build_timeline(self.sched.now, client.duration_ms), lossy=False)
            return client

        def actor() -> Actor:
            first = yield from listen_once()
            if first is None:
                return
            sessions = [first.session_id]
            if variant == "two_sessions":
                second = yield from listen_once()
                if second is not None:
                    sessions.append(second.session_id)
            for k in range(8):  # all fired at the same instant
                self.sched.spawn(claimer(sessions[k % len(sessions)]))

        self.sched.spawn(actor(), at=self.start_time())

    def clock_skew(self, i: int) -> None:
        variants = ("fast_clock", "fast_clock_then_wait", "future_timestamps")
        variant = variants[i % len(variants)]
        run, pid, user, device = self._attack_run("clock_skew", variant)

        def actor() -> Actor:
            client = yield from self.open(run, pid, user, device)
            if client is None:
                return
            opened = self.sched.now
            if variant == "future_timestamps":
                # Claims (in client_time_ms) that 5 s passed between heartbeats sent 0.5 s apart.
                dev0 = Device(offset_s=3600.0)
                for k, pos in enumerate(range(0, client.duration_ms + 5000, 5000)):
                    body = client.heartbeat(
                        min(pos, client.duration_ms), client_time_ms=dev0.ms(self.clock.now()) + 4500 * k
                    )
                    yield from self.send(run, client, body, lossy=False)
                    yield Wait(0.5)
            else:
                dev = Device(offset_s=-7200.0, rate=1.5 if variant == "fast_clock" else 1.25)
                tl = build_timeline(self.sched.now, client.duration_ms, speed=dev.rate)
                yield from self.play(run, client, tl, device=dev, lossy=False)
                if variant == "fast_clock_then_wait":
                    yield from self.pad(run, client, opened)
                    yield from self.final(run, client, lossy=False, paused=True)
            yield from self.claim(run, pid, client.session_id, user)

        self.sched.spawn(actor(), at=self.start_time())

    # -- running and scoring -----------------------------------------------------------------
    def schedule(self, *, runs: int, honest_runs: int, classes: Sequence[str] = ATTACK_CLASSES) -> None:
        for name in classes:
            if name not in ATTACK_CLASSES:
                raise ValueError(f"unknown attack class {name!r}")
            for i in range(runs):
                getattr(self, name)(i)
        for _ in range(honest_runs):
            self.honest()

    def score(self) -> SimReport:
        with self.factory() as db:
            grants = Counter(
                {
                    (p, c): n
                    for p, c, n in db.execute(
                        select(Claim.packet_id, Claim.claimant_id, func.count()).group_by(
                            Claim.packet_id, Claim.claimant_id
                        )
                    )
                }
            )
        by_class: dict[str, ClassResult] = {}
        honest = HonestResult(0, 0, {})
        honest_reasons: Counter[str] = Counter()
        honest_events: Counter[str] = Counter()
        for run in self.runs:
            got = sum(grants.get((p, u), 0) for p in run.packet_ids for u in run.attackers)
            if run.cls == "honest":
                honest.runs += 1
                honest_events.update(run.notes)
                if got == 0:
                    honest.false_rejects += 1
                    honest_reasons.update(run.notes)
                    honest_reasons.update(self._verdict_reasons(run))
                continue
            res = by_class.setdefault(run.cls, ClassResult(run.cls, 0, 0, {}))
            res.runs += 1
            res.granted += int(got > run.allowed)
            for k, v in run.notes.items():
                res.refusals[k] = res.refusals.get(k, 0) + v
        honest.reasons = dict(honest_reasons)
        honest.events = dict(honest_events)
        ordered = [by_class[c] for c in ATTACK_CLASSES if c in by_class]
        return SimReport(ordered, honest, self.sched.calls, self.sched.now)

    def _verdict_reasons(self, run: Run) -> list[str]:
        from claims.sessions import verdict_of
        from claims.tables import ListenSession

        out = []
        with self.factory() as db:
            for sid in run.sessions:
                ls = db.get(ListenSession, sid)
                if ls is not None:
                    out += [f"verdict:{r['code']}" for r in verdict_of(ls, settings=self.settings).reasons]
        return out

    def run(self) -> SimReport:
        self.sched.run()
        return self.score()


def simulate(
    *,
    runs: int = 100,
    honest_runs: int | None = None,
    seed: int = 0,
    classes: Sequence[str] = ATTACK_CLASSES,
    settings: ClaimSettings | None = None,
    durations_s: tuple[float, float] = (20.0, 240.0),
    database_url: str | None = None,
) -> SimReport:
    """Run ``runs`` scenarios of every attack class and ``honest_runs`` honest listeners.

    Uses a fresh temporary SQLite database unless ``database_url`` names one whose claims tables
    exist (PostgreSQL works too). Deterministic for a given seed.
    """
    from db.base import Base
    from db.engine import make_engine, make_session_factory

    honest_runs = runs if honest_runs is None else honest_runs
    with contextlib.ExitStack() as stack:
        url = database_url
        if url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="songgate-sim-"))
            url = f"sqlite:///{tmp}/sim.db"
        engine = make_engine(url)
        stack.callback(engine.dispose)
        if database_url is None:
            Base.metadata.create_all(engine, tables=_claims_tables())
        sim = Simulator(make_session_factory(engine), seed=seed, settings=settings, durations_s=durations_s)
        sim.schedule(runs=runs, honest_runs=honest_runs, classes=classes)
        return sim.run()


def _claims_tables() -> list[Any]:
    from claims import tables as t
    from db.tables import Recording

    return [
        m.__table__
        for m in (
            Recording,
            t.Packet,
            t.ListenSession,
            t.HeartbeatRecord,
            t.Claim,
            t.Payout,
            t.OutboxMessage,
            t.RiskAudit,
            t.UserFlags,
        )
    ]


__all__ = [
    "ATTACK_CLASSES",
    "Simulator",
    "SimReport",
    "simulate",
    "build_timeline",
    "Timeline",
    "Device",
    "Net",
]


def placeholder_song(recording_id: str, *, duration_s: float, sha256: str) -> Any:
    """A recordings row standing for a song of ``duration_s`` seconds, for simulations and tests
    that exercise the claim path without uploading audio (the claim path reads only the duration)."""
    from db.tables import Recording

    return Recording(
        id=recording_id,
        user_id="sim",
        song_id=recording_id,
        kind="mix",
        sha256=sha256,
        size_bytes=1,
        filename=None,
        media_type="audio/wav",
        container="wav",
        codec="pcm_s16le",
        sample_rate=48000,
        channels=2,
        duration_s=duration_s,
        report={},
        report_version="sim",
    )
