"""Proof of a full listen: a verdict with reasons, from evidence the server observed.

Complete when (a) at least ``coverage_threshold`` of the song's seconds were heard (see
:mod:`claims.evidence`) and (b) the server saw the session last at least ``duration -
elapsed_tolerance_s`` after it started, and the session was not burned by rejected heartbeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from claims.config import ClaimSettings
from claims.evidence import EvidenceState


@dataclass(frozen=True)
class Verdict:
    """``complete`` plus every failed condition as a stable reason code with numbers."""

    complete: bool
    coverage: float  # heard seconds / song seconds, in [0, 1]
    covered_seconds: int
    song_seconds: int
    elapsed_s: float  # server time from session start to the last accepted heartbeat
    required_elapsed_s: float
    reasons: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "complete": self.complete,
            "coverage": round(self.coverage, 4),
            "covered_seconds": self.covered_seconds,
            "song_seconds": self.song_seconds,
            "elapsed_s": round(self.elapsed_s, 3),
            "required_elapsed_s": round(self.required_elapsed_s, 3),
            "reasons": list(self.reasons),
        }


def evaluate(state: EvidenceState, *, settings: ClaimSettings, burned: bool = False) -> Verdict:
    """The current verdict of a session.

    Parameters
    ----------
    state : EvidenceState
        The session's evidence.
    settings : ClaimSettings
        ``coverage_threshold`` and ``elapsed_tolerance_s``.
    burned : bool
        The session exceeded ``max_rejected_heartbeats`` (it can never prove anything).
    """
    reasons: list[dict[str, object]] = []
    coverage = state.coverage_ratio
    elapsed_s = state.last_server_ms / 1000.0
    required = max(0.0, state.duration_ms / 1000.0 - settings.elapsed_tolerance_s)
    if burned:
        reasons.append({"code": "session_burned", "rejected_heartbeats": state.rejected})
    if state.accepted == 0:
        reasons.append({"code": "no_heartbeats"})
    # Compare in whole seconds so a float threshold never rounds a full listen away.
    needed = math.ceil(settings.coverage_threshold * state.n_seconds - 1e-9)
    if state.covered_seconds < needed:
        reasons.append(
            {
                "code": "coverage_too_low",
                "coverage": round(coverage, 4),
                "required": settings.coverage_threshold,
                "missing_seconds": state.n_seconds - state.covered_seconds,
            }
        )
    if elapsed_s < required:
        reasons.append(
            {"code": "elapsed_too_short", "elapsed_s": round(elapsed_s, 3), "required_s": round(required, 3)}
        )
    return Verdict(
        complete=not reasons,
        coverage=coverage,
        covered_seconds=state.covered_seconds,
        song_seconds=state.n_seconds,
        elapsed_s=elapsed_s,
        required_elapsed_s=required,
        reasons=reasons,
    )
