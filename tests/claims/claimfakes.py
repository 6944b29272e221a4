"""Helpers for the claims tests: a database world on a virtual clock, and honest listens."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from claims import tokens
from claims.claiming import ClaimRequest, Grant, claim
from claims.config import ClaimSettings
from claims.evidence import Heartbeat
from claims.packets import PacketRequest, create_packet
from claims.sessions import OpenedSession, open_session, record_heartbeat
from claims.simulator import placeholder_song
from claims.stepup import StaticStepUp
from claims.uow import unit_of_work
from core.clock import VirtualClock
from db.engine import make_engine, make_session_factory

#: 04:00 UTC = noon in Beijing (outside the minors' curfew).
NOON_BEIJING = dt.datetime(2026, 2, 16, 4, 0, tzinfo=dt.UTC)
SECRET = b"claims-test-secret-0123456789abcdef"


@dataclass
class World:
    """A migrated database, a virtual clock and default collaborators for the claims services."""

    factory: Any
    engine: Any
    clock: VirtualClock = field(default_factory=lambda: VirtualClock(NOON_BEIJING))
    settings: ClaimSettings = field(default_factory=ClaimSettings)
    stepup: StaticStepUp = field(default_factory=StaticStepUp)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _n: Any = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> World:
        engine = make_engine(url)
        return cls(make_session_factory(engine), engine, **kw)

    def uid(self, prefix: str) -> str:
        return f"{prefix}-{next(self._n)}"

    def recording(self, duration_s: float = 30.0) -> str:
        rid = self.uid("rec")
        with unit_of_work(self.factory) as db:
            db.add(placeholder_song(rid, duration_s=duration_s, sha256=f"{next(self._n):064x}"))
        return rid

    def packet(
        self,
        *,
        total_fen: int = 1000,
        count: int = 3,
        mode: str = "lucky",
        duration_s: float = 30.0,
        sender: str | None = None,
        **kw: Any,
    ) -> str:
        rec = self.recording(duration_s)
        with unit_of_work(self.factory) as db:
            p = create_packet(
                db,
                PacketRequest(
                    sender_id=sender or self.uid("sender"),
                    recording_id=rec,
                    total_fen=total_fen,
                    count=count,
                    mode=mode,
                    **kw,
                ),  # type: ignore[arg-type]
                clock=self.clock,
                settings=self.settings,
                stepup=self.stepup,
            )
            return p.id

    def open(
        self, packet_id: str, claimant: str, device: str = "dev-1", ip: str | None = "10.0.0.1"
    ) -> OpenedSession:
        with unit_of_work(self.factory) as db:
            return open_session(
                db,
                packet_id=packet_id,
                claimant_id=claimant,
                device_id=device,
                ip=ip,
                clock=self.clock,
                settings=self.settings,
                secret=SECRET,
            )

    def beat(
        self,
        s: Listener,
        position_ms: int,
        *,
        rate: float = 1.0,
        paused: bool = False,
        client_time_ms: int | None = None,
        mac: str | None = None,
        seq: int | None = None,
    ) -> Any:
        seq = s.seq + 1 if seq is None else seq
        rm = tokens.rate_to_milli(rate)
        mac = mac or tokens.heartbeat_mac(
            s.key, s.sid, seq=seq, position_ms=position_ms, rate_milli=rm, paused=paused, prev_nonce=s.nonce
        )
        with unit_of_work(self.factory) as db:
            a = record_heartbeat(
                db,
                session_id=s.sid,
                token=s.token,
                hb=Heartbeat(seq, position_ms, rm, paused, mac),
                clock=self.clock,
                settings=self.settings,
                secret=SECRET,
                client_time_ms=client_time_ms,
            )
        s.seq, s.nonce = a.seq, a.next_nonce
        return a

    def listen_fully(
        self,
        packet_id: str,
        claimant: str,
        *,
        device: str = "dev-1",
        ip: str | None = "10.0.0.1",
        step_s: float = 5.0,
    ) -> Listener:
        """An honest listen: heartbeats every ``step_s`` at 1.0x, then the final one."""
        o = self.open(packet_id, claimant, device, ip)
        s = Listener.of(o)
        dur = o.session.duration_ms
        pos = 0
        self.clock.advance(0.3)
        self.beat(s, 0)
        while pos < dur:
            self.clock.advance(step_s)
            pos = min(dur, pos + int(step_s * 1000))
            self.beat(s, pos)
        return s

    def claim(
        self,
        packet_id: str,
        s: Listener,
        claimant: str | None = None,
        *,
        ip: str | None = None,
        verification_id: str | None = None,
    ) -> Grant:
        with unit_of_work(self.factory) as db:
            return claim(
                db,
                ClaimRequest(packet_id, s.sid, claimant or s.claimant, verification_id, ip),
                clock=self.clock,
                settings=self.settings,
                stepup=self.stepup,
                rng=self.rng,
            )


@dataclass
class Listener:
    sid: str
    token: str
    key: bytes
    nonce: str
    claimant: str
    seq: int = 0

    @classmethod
    def of(cls, o: OpenedSession) -> Listener:
        return cls(o.session.id, o.token, tokens.decode_key(o.heartbeat_key), o.nonce, o.session.claimant_id)
