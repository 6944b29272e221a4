"""Honest listeners in the fraud simulator (network jitter and spikes, 5 % lost heartbeats,
pause/resume, skewed device clocks) are almost never refused: false-reject rate <= 0.5 %."""

from __future__ import annotations

from claims.simulator import simulate


def test_honest_false_reject_rate_is_at_most_half_a_percent() -> None:
    # Short songs are the strict case: up to 50 s, 98 % coverage means every single second.
    report = simulate(runs=1, honest_runs=1000, seed=12, classes=(), durations_s=(20.0, 60.0))
    assert report.honest.runs == 1000
    assert report.honest.false_reject_rate <= 0.005, report.honest.reasons
    # The network really was hostile: requests and answers were lost, chains had to be resynced.
    assert report.honest.events.get("lost", 0) > 0.03 * report.calls
    assert report.honest.events.get("hb:replayed", 0) > 50
