"""One check result and the helpers that grade a value against thresholds."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

Verdict = Literal["pass", "warn", "fail"]
VERDICT_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report. ``value`` is a finite float, an int or None (with the reason in
    ``message``)."""

    code: str
    value: float | int | None
    unit: str
    verdict: Verdict
    message: str

    def __post_init__(self) -> None:
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError(f"{self.code}: non-finite value {self.value}")  # a bug, never user input

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def worst(verdicts: list[Verdict]) -> Verdict:
    """The most severe verdict (``pass`` for none)."""
    out: Verdict = "pass"
    for v in verdicts:
        if VERDICT_RANK[v] > VERDICT_RANK[out]:
            out = v
    return out


def above(value: float, *, warn: float | None, fail: float | None) -> Verdict:
    """fail if value > fail, warn if value > warn (a None threshold is off)."""
    if fail is not None and value > fail:
        return "fail"
    if warn is not None and value > warn:
        return "warn"
    return "pass"


def at_least(value: float, *, warn: float | None, fail: float | None) -> Verdict:
    """fail if value >= fail, warn if value >= warn (counts: 1 dropout warns)."""
    if fail is not None and value >= fail:
        return "fail"
    if warn is not None and value >= warn:
        return "warn"
    return "pass"


def below(value: float, *, warn: float | None, fail: float | None) -> Verdict:
    """fail if value < fail, warn if value < warn."""
    if fail is not None and value < fail:
        return "fail"
    if warn is not None and value < warn:
        return "warn"
    return "pass"


def rnd(value: float | None, digits: int = 2) -> float | None:
    """Round for the report (plain Python float; None stays None)."""
    return None if value is None else round(float(value), digits)


def db(power_ratio: float, floor: float = -120.0, ceil: float = 120.0) -> float:
    """10 log10 clamped to [floor, ceil] so that 0 and inf stay finite."""
    if power_ratio <= 0.0:
        return floor
    if math.isinf(power_ratio):
        return ceil
    return min(max(10.0 * math.log10(power_ratio), floor), ceil)
