"""Tokens, the heartbeat chain, per-second coverage and the proof verdict (pure logic)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claims import tokens
from claims.config import ClaimSettings
from claims.errors import TokenInvalid
from claims.evidence import EvidenceState, Heartbeat, apply_heartbeat, mark_interval
from claims.proof import evaluate

SECRET = b"evidence-test-secret-0123456789ab"
S = ClaimSettings()
J = S.jitter_tolerance_ms
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class Chain:
    """A session's evidence plus a well-behaved client that MACs every heartbeat correctly."""

    def __init__(self, duration_ms: int, settings: ClaimSettings = S) -> None:
        self.sid = "ls_test"
        self.key = tokens.heartbeat_key(self.sid, secret=SECRET)
        self.st = EvidenceState(
            self.sid, duration_ms, nonce=tokens.next_nonce(self.sid, 0, "", secret=SECRET)
        )
        self.settings = settings
        self.credited = 0

    def hb(
        self,
        position_ms: int,
        *,
        rate: float = 1.0,
        paused: bool = False,
        seq: int | None = None,
        nonce: str | None = None,
    ) -> Heartbeat:
        seq = self.st.last_seq + 1 if seq is None else seq
        rm = tokens.rate_to_milli(rate)
        mac = tokens.heartbeat_mac(
            self.key,
            self.sid,
            seq=seq,
            position_ms=position_ms,
            rate_milli=rm,
            paused=paused,
            prev_nonce=nonce or self.st.nonce,
        )
        return Heartbeat(seq, position_ms, rm, paused, mac)

    def send(self, hb: Heartbeat, server_ms: int):  # type: ignore[no-untyped-def]
        out = apply_heartbeat(
            self.st, hb, server_ms=server_ms, key=self.key, secret=SECRET, settings=self.settings
        )
        self.credited += out.credited_ms
        return out

    def play(self, position_ms: int, server_ms: int, **kw):  # type: ignore[no-untyped-def]
        return self.send(self.hb(position_ms, **kw), server_ms)


# --- tokens -----------------------------------------------------------------------------------
def _claims(**kw) -> tokens.TokenClaims:  # type: ignore[no-untyped-def]
    base = dict(
        session_id="ls_1",
        packet_id="pkt_1",
        claimant_id="alice",
        device_id="d1",
        issued_at=int(NOW.timestamp()),
        expires_at=int(NOW.timestamp()) + 600,
    )
    base.update(kw)
    return tokens.TokenClaims(**base)  # type: ignore[arg-type]


def test_token_round_trip_binds_session_packet_claimant_device() -> None:
    tok = tokens.issue_token(_claims(), secret=SECRET)
    assert tokens.verify_token(tok, secret=SECRET, now=NOW) == _claims()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: (
            tokens.issue_token(_claims(claimant_id="mallory"), secret=SECRET).split(".")[0]
            + "."
            + t.split(".")[1]
        ),  # payload swapped, old signature
        lambda t: t.replace(".", ""),
        lambda t: "",
        lambda t: tokens.issue_token(_claims(), secret=b"another-secret-entirely-xxxxxxxx"),
    ],
)
def test_tampered_or_foreign_tokens_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    tok = tokens.issue_token(_claims(), secret=SECRET)
    with pytest.raises(TokenInvalid):
        tokens.verify_token(mutate(tok), secret=SECRET, now=NOW)


def test_expired_token_is_refused() -> None:
    tok = tokens.issue_token(_claims(), secret=SECRET)
    with pytest.raises(TokenInvalid):
        tokens.verify_token(tok, secret=SECRET, now=NOW + dt.timedelta(seconds=601))


def test_heartbeat_keys_and_nonces_differ_per_session() -> None:
    assert tokens.heartbeat_key("ls_a", secret=SECRET) != tokens.heartbeat_key("ls_b", secret=SECRET)
    assert tokens.next_nonce("ls_a", 1, "m", secret=SECRET) != tokens.next_nonce(
        "ls_b", 1, "m", secret=SECRET
    )


# --- the chain --------------------------------------------------------------------------------
def test_honest_listen_covers_every_second() -> None:
    c = Chain(32_500)
    c.play(0, 400)
    t = 400
    for pos in range(5000, 32_500, 5000):
        t += 5000
        assert c.play(pos, t).status == "accepted"
    c.play(32_500, t + 2500)
    assert c.st.covered_seconds == c.st.n_seconds == 33
    v = evaluate(c.st, settings=S)
    assert v.complete and v.reasons == []


def test_replayed_reordered_forged_heartbeats_are_rejected() -> None:
    c = Chain(60_000)
    first = c.hb(0)
    assert c.send(first, 300).status == "accepted"
    second = c.hb(5000)
    assert c.send(second, 5300).status == "accepted"
    before = (c.st.last_seq, c.st.nonce, c.st.covered_seconds)
    assert c.send(first, 5400).reason == "replayed"  # an old heartbeat
    assert c.send(c.hb(10_000, seq=4), 10_300).reason == "out_of_order"  # seq 3 skipped
    forged = c.hb(10_000)
    assert (
        c.send(Heartbeat(forged.seq, 20_000, 1000, False, forged.mac), 10_300).reason == "bad_mac"
    )  # tampered
    assert c.send(c.hb(10_000, nonce="guessed"), 10_300).reason == "bad_mac"  # chained to a wrong nonce
    other = Chain(60_000)
    other.sid = "ls_other"
    assert c.send(Heartbeat(3, 10_000, 1000, False, "0" * 64), 10_300).reason == "bad_mac"
    assert (c.st.last_seq, c.st.nonce, c.st.covered_seconds) == before
    assert c.st.rejected == 5


def test_identical_resend_is_idempotent() -> None:
    c = Chain(60_000)
    c.play(0, 300)
    hb = c.hb(5000)
    a = c.send(hb, 5300)
    b = c.send(hb, 5900)  # the answer was lost; the client resends byte for byte
    assert a.status == "accepted" and b.status == "duplicate"
    assert a.next_nonce == b.next_nonce
    assert c.st.accepted == 2 and c.st.covered_seconds == 5
    tampered = Heartbeat(hb.seq, 9000, hb.rate_milli, hb.paused, hb.mac)  # same MAC, other position
    assert c.send(tampered, 6000).reason == "replayed"


def test_cross_session_heartbeat_is_rejected() -> None:
    a, b = Chain(60_000), Chain(60_000)
    b.sid = "ls_b"
    b.key = tokens.heartbeat_key("ls_b", secret=SECRET)
    b.st = EvidenceState("ls_b", 60_000, nonce=tokens.next_nonce("ls_b", 0, "", secret=SECRET))
    hb = a.hb(0)
    assert b.send(hb, 100).reason == "bad_mac"


def test_double_speed_earns_nothing_even_when_reported_as_normal() -> None:
    truthful, liar = Chain(60_000), Chain(60_000)
    truthful.play(0, 100, rate=2.0)
    liar.play(0, 100)
    for k in range(1, 7):
        truthful.play(10_000 * k, 100 + 5000 * k, rate=2.0)
        liar.play(10_000 * k, 100 + 5000 * k)  # lies about the rate
    assert truthful.st.covered_seconds == 0
    assert liar.credited <= 30_100 + J  # never more than server time + jitter tolerance
    assert not evaluate(liar.st, settings=S).complete


def test_seeking_ahead_and_background_gaps_earn_nothing() -> None:
    c = Chain(120_000)
    c.play(0, 100)
    c.play(5000, 5100)
    c.play(40_000, 10_100)  # seek 30 s ahead
    c.play(45_000, 15_100)
    c.play(70_000, 15_100 + 40_000)  # app in the background for 40 s, position jumped 25 s
    heard = {s for s in range(120) if c.st.heard(s)}
    assert heard == set(range(0, 5)) | set(range(40, 45))


def test_pause_and_resume_is_fine() -> None:
    c = Chain(20_000)
    c.play(0, 200)
    c.play(5000, 5200)
    c.play(7000, 10_200, paused=True)  # paused at 7 s
    c.play(7000, 15_200, paused=True)
    c.play(9000, 20_200)  # resumed 2 s ago
    c.play(14_000, 25_200)
    c.play(19_000, 30_200)
    c.play(20_000, 31_200)
    assert c.st.covered_seconds == 20


def test_network_jitter_up_to_tolerance_costs_nothing() -> None:
    c = Chain(30_000)
    delays = [50, 2900, 40, 2500, 60, 100, 2800]  # one-way delays of each heartbeat (ms)
    for k, d in enumerate(delays):
        pos = min(30_000, 5000 * k)
        assert c.play(pos, 5000 * k + d).status == "accepted"
    assert c.st.covered_seconds == 30


def test_midpoint_rule_counts_the_last_partial_second() -> None:
    st = EvidenceState("x", 2_400, nonce="n")  # seconds 0, 1 and a 0.4 s tail
    assert mark_interval(st, 0, 2_400) == 3
    assert st.coverage_ratio == 1.0
    assert mark_interval(st, 0, 2_400) == 0  # re-listening adds nothing


# --- invariants -------------------------------------------------------------------------------
beats = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=20_000),  # server ms since the previous heartbeat
        st.integers(min_value=-30_000, max_value=60_000),  # position change the client claims
        st.sampled_from([1.0, 1.0, 1.0, 2.0, 0.5, 1.25]),
        st.booleans(),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(beats=beats, duration_ms=st.integers(min_value=1000, max_value=400_000))
def test_credit_never_exceeds_server_time_plus_tolerance(beats, duration_ms) -> None:  # type: ignore[no-untyped-def]
    c = Chain(duration_ms)
    t, pos = 0, 0
    for dt_ms, dpos, rate, paused in beats:
        t += dt_ms
        pos = max(0, pos + dpos)
        c.play(pos, t, rate=rate, paused=paused)
        assert c.credited <= c.st.last_server_ms + J
        assert 0.0 <= c.st.coverage_ratio <= 1.0
        assert 0 <= c.st.lead_ms <= J
    v = evaluate(c.st, settings=S)
    assert 0.0 <= v.coverage <= 1.0
    assert v.complete == (not v.reasons)


@settings(max_examples=150, deadline=None)
@given(
    duration_ms=st.integers(min_value=5_000, max_value=300_000),
    speed=st.sampled_from([1.25, 1.5, 2.0, 3.0]),
    interval_ms=st.integers(min_value=200, max_value=10_000),
)
def test_faster_than_real_time_never_completes_before_the_song_is_over(
    duration_ms, speed, interval_ms
) -> None:  # type: ignore[no-untyped-def]
    c = Chain(duration_ms)
    t, pos = 100, 0
    c.play(0, t)
    while pos < duration_ms:
        t += interval_ms
        pos = min(duration_ms, int(pos + interval_ms * speed))
        c.play(pos, t)  # reports 1.0x
        if evaluate(c.st, settings=S).complete:
            assert t >= duration_ms - S.elapsed_tolerance_s * 1000
    # Whatever it did, it could not have been credited more than server time allows.
    assert c.credited <= t + J


def test_verdict_reasons() -> None:
    c = Chain(60_000)
    v = evaluate(c.st, settings=S)
    assert {r["code"] for r in v.reasons} == {"no_heartbeats", "coverage_too_low", "elapsed_too_short"}
    c.play(0, 100)
    c.play(5000, 5100)
    v = evaluate(c.st, settings=S, burned=True)
    codes = {r["code"] for r in v.reasons}
    assert codes == {"session_burned", "coverage_too_low", "elapsed_too_short"}
    assert not v.complete and v.covered_seconds == 5 and v.song_seconds == 60


def test_coverage_threshold_is_configurable() -> None:
    lenient = S.model_copy(update={"coverage_threshold": 0.5})
    c = Chain(20_000, lenient)
    c.play(0, 100)
    c.play(5000, 5100)
    c.play(10_000, 10_100)
    c.play(20_000, 12_100, paused=True)  # skipped 10..20 s in 2 s: not credited
    c.play(20_000, 20_100, paused=True)  # waits out the song length
    assert c.st.covered_seconds == 10
    assert evaluate(c.st, settings=lenient).complete
    assert not evaluate(c.st, settings=S).complete
