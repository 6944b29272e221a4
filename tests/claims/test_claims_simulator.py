"""The fraud simulator through the real claim path: no attack class is ever granted (the honest
false-reject rate is in test_claims_simulator_honest.py)."""

from __future__ import annotations

import json

import pytest

from claims.simulator import ATTACK_CLASSES, build_timeline, simulate


def test_no_attack_class_is_ever_granted() -> None:
    report = simulate(runs=30, honest_runs=0, seed=11, durations_s=(20.0, 90.0))
    assert [c.name for c in report.classes] == list(ATTACK_CLASSES)
    for c in report.classes:
        assert c.runs == 30, c.name
        assert c.granted == 0, (c.name, c.refusals)
    # Each class was stopped by the defence meant for it, not by accident.
    refusals = {c.name: c.refusals for c in report.classes}
    assert refusals["forged_heartbeats"].get("hb:bad_mac", 0) > 0
    assert refusals["replayed_heartbeats"].get("hb:replayed", 0) > 0
    assert refusals["token_reuse"].get("session_mismatch", 0) > 0
    assert refusals["multi_account_device"].get("device_limit", 0) > 0
    assert refusals["double_claim_race"].get("already_claimed", 0) > 0
    for name in ("sped_up_playback", "seeking_skipping", "scripted_no_wait", "clock_skew"):
        assert refusals[name].get("not_listened", 0) == 30, name


def test_simulation_is_deterministic_and_json_shaped() -> None:
    a = simulate(runs=2, honest_runs=20, seed=5, classes=("sped_up_playback", "double_claim_race"))
    b = simulate(runs=2, honest_runs=20, seed=5, classes=("sped_up_playback", "double_claim_race"))
    assert a.as_json() == b.as_json() and a.calls == b.calls
    doc = json.loads(json.dumps(a.as_json()))
    assert set(doc) == {"classes", "honest"}
    assert [set(c) for c in doc["classes"]] == [{"name", "runs", "granted"}] * 2
    assert set(doc["honest"]) == {"runs", "false_rejects", "false_reject_rate"}
    assert "honest" in a.table() and "sped_up_playback" in a.table()


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError):
        simulate(runs=1, honest_runs=0, classes=("teleportation",))


def test_timeline_positions() -> None:
    tl = build_timeline(10.0, 30_000, pauses=[(5_000, 4.0)], skips=[(20_000, 25_000)])
    assert tl.state(9.0) == (0, True)
    assert tl.state(12.0) == (2_000, False)
    assert tl.state(16.0) == (5_000, True)  # paused at 5 s for 4 s
    assert tl.state(20.0) == (6_000, False)
    assert tl.state(29.5) == (15_500, False)
    assert tl.state(34.5) == (25_500, False)  # jumped from 20 s to 25 s at t = 34
    assert tl.end == pytest.approx(39.0)
    fast = build_timeline(0.0, 10_000, speed=2.0)
    assert fast.state(2.0) == (4_000, False) and fast.end == pytest.approx(5.0)
