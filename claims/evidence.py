"""Heartbeat evidence: which seconds of the song the server saw being played at normal speed.

Pure logic on an :class:`EvidenceState` (the listen-session row holds the same fields); the
server time of each heartbeat comes from the caller's clock, never from the client.

Rules (all tunable in :class:`claims.config.ClaimSettings`):

* The chain: a heartbeat must carry ``seq == last_seq + 1`` and a MAC (session key) over
  ``(session, seq, position_ms, rate, paused, prev_nonce)`` where ``prev_nonce`` is the nonce the
  server issued last. Anything else is rejected (``replayed``, ``out_of_order``, ``bad_mac``).
  Resending the last accepted heartbeat byte for byte is an idempotent retry: same next nonce,
  no new evidence.
* The interval between the previous accepted heartbeat ``p`` and this one ``h`` earns coverage
  only if both report rate 1.0, the server-time gap ``dt`` is at most ``max_gap_s`` (longer gaps
  are background time), and the position advanced by ``0 < dpos <= dt + (J - lead)``, where ``J``
  is the jitter tolerance and ``lead`` is how far the position already ran ahead of server time.
  ``lead`` grows by ``dpos - dt`` on credited intervals and decays with server time otherwise,
  never below 0, so network jitter is absorbed but never accumulates: the total credited playback
  can never exceed the server time elapsed plus ``J`` -- 2x playback, seeking ahead and scripted
  clients that do not wait earn nothing beyond that.
* Coverage is a per-second bitmap: second ``s`` counts once the midpoint of
  ``[s, min(s + 1, duration))`` lies inside a credited interval. Re-listening adds nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from claims.config import ClaimSettings
from claims.tokens import heartbeat_mac, macs_equal, next_nonce

NORMAL_RATE_MILLI = 1000


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat as received (already schema-validated).

    ``position_ms`` is the client's playback position (ms into the song), ``rate_milli`` the
    playback rate in thousandths (1000 = 1.0x), ``mac`` the hex HMAC the client computed.
    """

    seq: int
    position_ms: int
    rate_milli: int
    paused: bool
    mac: str


@dataclass
class EvidenceState:
    """The evidence of one listen session (mirrors the ``listen_sessions`` columns)."""

    session_id: str
    duration_ms: int
    nonce: str  # the nonce the next heartbeat must chain
    last_seq: int = 0
    last_mac: str | None = None
    last_position_ms: int = 0
    last_rate_milli: int = NORMAL_RATE_MILLI
    last_paused: bool = True  # session start acts as a paused heartbeat at position 0
    last_server_ms: int = 0  # server ms since the session started, of the last accepted heartbeat
    lead_ms: int = 0
    coverage: bytearray = field(default_factory=bytearray)
    covered_seconds: int = 0
    accepted: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        if self.duration_ms <= 0:
            raise ValueError("duration_ms must be positive")
        if not self.coverage:
            self.coverage = bytearray((self.n_seconds + 7) // 8)

    @property
    def n_seconds(self) -> int:
        return math.ceil(self.duration_ms / 1000)

    @property
    def coverage_ratio(self) -> float:
        return self.covered_seconds / self.n_seconds

    def heard(self, second: int) -> bool:
        return bool(self.coverage[second >> 3] & (1 << (second & 7)))


@dataclass(frozen=True)
class HeartbeatOutcome:
    """What :func:`apply_heartbeat` decided.

    ``status`` is ``accepted``, ``duplicate`` (idempotent resend) or ``rejected`` (then
    ``reason`` says why and the state only counts the rejection).
    """

    status: str
    next_nonce: str | None = None
    reason: str | None = None
    credited_ms: int = 0
    new_seconds: int = 0
    server_ms: int = 0


def _midpoint(second: int, duration_ms: int) -> int:
    start = second * 1000
    return (start + min(start + 1000, duration_ms)) // 2


def mark_interval(state: EvidenceState, start_ms: int, end_ms: int) -> int:
    """Mark every second whose midpoint lies in ``[start_ms, end_ms)``; return how many were new."""
    new = 0
    end_ms = min(end_ms, state.duration_ms)
    if end_ms <= start_ms:
        return 0
    for s in range(max(0, start_ms // 1000), min(state.n_seconds, (end_ms - 1) // 1000 + 1)):
        if start_ms <= _midpoint(s, state.duration_ms) < end_ms:
            byte, bit = s >> 3, 1 << (s & 7)
            if not state.coverage[byte] & bit:
                state.coverage[byte] |= bit
                new += 1
    state.covered_seconds += new
    return new


def credit_interval(
    state: EvidenceState, hb: Heartbeat, *, server_ms: int, settings: ClaimSettings
) -> tuple[int, int]:
    """Credit the interval from the last accepted heartbeat to ``hb`` (see module rules).

    Returns ``(credited_ms, new_seconds)`` and updates ``lead_ms`` and the bitmap; does not touch
    the chain fields.
    """
    dt = max(0, server_ms - state.last_server_ms)  # a wall clock stepped back earns nothing
    pos = min(hb.position_ms, state.duration_ms)
    dpos = pos - min(state.last_position_ms, state.duration_ms)
    budget = dt + settings.jitter_tolerance_ms - state.lead_ms
    ok = (
        state.last_rate_milli == NORMAL_RATE_MILLI
        and hb.rate_milli == NORMAL_RATE_MILLI
        and dt <= settings.max_gap_s * 1000
        and 0 < dpos <= budget
    )
    if not ok:
        state.lead_ms = max(0, state.lead_ms - dt)
        return 0, 0
    state.lead_ms = max(0, state.lead_ms + dpos - dt)
    return dpos, mark_interval(state, state.last_position_ms, pos)


def apply_heartbeat(
    state: EvidenceState,
    hb: Heartbeat,
    *,
    server_ms: int,
    key: bytes,
    secret: bytes,
    settings: ClaimSettings,
) -> HeartbeatOutcome:
    """Check one heartbeat against the chain and fold it into ``state`` (mutated in place).

    Parameters
    ----------
    state : EvidenceState
        The session's evidence so far.
    hb : Heartbeat
        The received heartbeat.
    server_ms : int
        Server time of arrival, ms since the session started (from the server's clock).
    key : bytes
        The session's heartbeat MAC key.
    secret : bytes
        The server secret (derives the next nonce).
    settings : ClaimSettings
        Jitter tolerance, gap limit.
    """
    if (
        hb.seq == state.last_seq
        and state.last_mac is not None
        and macs_equal(hb.mac, state.last_mac)
        and (hb.position_ms, hb.rate_milli, hb.paused)
        == (state.last_position_ms, state.last_rate_milli, state.last_paused)
    ):  # byte for byte the last accepted heartbeat: an idempotent resend after a lost answer
        return HeartbeatOutcome("duplicate", next_nonce=state.nonce, server_ms=state.last_server_ms)
    reason = None
    if hb.seq <= state.last_seq:
        reason = "replayed"
    elif hb.seq != state.last_seq + 1:
        reason = "out_of_order"
    else:
        expected = heartbeat_mac(
            key,
            state.session_id,
            seq=hb.seq,
            position_ms=hb.position_ms,
            rate_milli=hb.rate_milli,
            paused=hb.paused,
            prev_nonce=state.nonce,
        )
        if not macs_equal(hb.mac, expected):
            reason = "bad_mac"
    if reason is not None:
        state.rejected += 1
        return HeartbeatOutcome("rejected", reason=reason, server_ms=server_ms)

    credited, new = credit_interval(state, hb, server_ms=server_ms, settings=settings)
    state.last_seq = hb.seq
    state.last_mac = hb.mac
    state.last_position_ms = hb.position_ms
    state.last_rate_milli = hb.rate_milli
    state.last_paused = hb.paused
    state.last_server_ms = max(state.last_server_ms, server_ms)
    state.accepted += 1
    state.nonce = next_nonce(state.session_id, hb.seq, hb.mac, secret=secret)
    return HeartbeatOutcome(
        "accepted", next_nonce=state.nonce, credited_ms=credited, new_seconds=new, server_ms=server_ms
    )
