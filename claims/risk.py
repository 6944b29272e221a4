"""Risk rules for sending and claiming red packets; every decision is audited.

Each rule has a stable id, applies to ``send`` and/or ``claim``, and returns ``pass``, ``deny``
(with a public reason code) or ``step_up`` (allowed only with a passed voiceprint verification).
Rules can be switched off by id (``claims.risk.disabled_rules``) and every limit is in
:class:`claims.config.RiskSettings`. Windows are trailing (``window_s``, default 24 h) on the
server clock. The caller holds the locks that make the counts exact (see :mod:`claims.claiming`).

Rule ids (in evaluation order):

================================  ======  =================  ============================================
id                                action  outcome            condition
================================  ======  =================  ============================================
packet_amount_cap                 send    limit_exceeded     total_fen > max_packet_fen
minor_curfew                      both    curfew             user flagged minor, local time in curfew
device_accounts_per_packet        claim   device_limit       another account already claimed on device
device_accounts_per_day           claim   device_limit       too many accounts claimed on device today
ip_accounts_per_packet            claim   device_limit       too many accounts claimed this from the IP
ip_accounts_per_day               claim   device_limit       too many accounts claimed from the IP today
user_daily_amount                 both    limit_exceeded     sent + claimed + this > max_user_daily_fen
sender_daily_count                send    step_up_required   sender already sent max_packets_per_day
sender_amount_anomaly             send    step_up_required   |amount - trailing avg| > deviation x avg
linked_accounts                   claim   step_up_required   voice search links the claimant to others
================================  ======  =================  ============================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claims.config import RiskSettings
from claims.stepup import StepUp
from claims.tables import Claim, Packet, RiskAudit, UserFlags

Action = Literal["send", "claim"]
Outcome = Literal["pass", "deny", "step_up"]


@dataclass
class RiskContext:
    """What a decision is about. ``amount_fen``: the packet total (send) or the drawn share (claim)."""

    action: Action
    user_id: str
    amount_fen: int
    now: dt.datetime
    packet_id: str | None = None
    device_id: str | None = None
    ip: str | None = None
    verification_id: str | None = None


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    outcome: Outcome
    code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule_id, "outcome": self.outcome, "code": self.code, **self.detail}


@dataclass(frozen=True)
class RiskDecision:
    allowed: bool
    code: str | None  # refusal reason code when not allowed
    rule_id: str | None  # the rule that decided a refusal (or required the step-up)
    results: list[RuleResult]
    stepped_up: bool = False


RuleFn = Callable[[Session, RiskContext, RiskSettings, StepUp], RuleResult]


@dataclass(frozen=True)
class Rule:
    id: str
    actions: tuple[Action, ...]
    fn: RuleFn


def _since(ctx: RiskContext, settings: RiskSettings) -> dt.datetime:
    return ctx.now - dt.timedelta(seconds=settings.window_s)


def _pass(rule_id: str, **detail: Any) -> RuleResult:
    return RuleResult(rule_id, "pass", None, detail)


# --- rules -------------------------------------------------------------------------------------
def packet_amount_cap(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
    rid = "packet_amount_cap"
    if ctx.amount_fen > s.max_packet_fen:
        return RuleResult(
            rid, "deny", "limit_exceeded", {"amount_fen": ctx.amount_fen, "limit_fen": s.max_packet_fen}
        )
    return _pass(rid)


def in_curfew(local: dt.datetime, *, start_hour: int, end_hour: int) -> bool:
    """True when ``local``'s hour lies in ``[start_hour, end_hour)`` (wrapping past midnight)."""
    h = local.hour
    if start_hour == end_hour:
        return False
    if start_hour > end_hour:
        return h >= start_hour or h < end_hour
    return start_hour <= h < end_hour


def minor_curfew(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
    rid = "minor_curfew"
    flags = db.get(UserFlags, ctx.user_id)
    if flags is None or not flags.minor:
        return _pass(rid)
    try:
        zone = ZoneInfo(flags.tz or s.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(s.default_timezone)
    local = ctx.now.astimezone(zone)
    if in_curfew(local, start_hour=s.curfew_start_hour, end_hour=s.curfew_end_hour):
        return RuleResult(rid, "deny", "curfew", {"local_time": local.strftime("%H:%M"), "tz": str(zone)})
    return _pass(rid, local_time=local.strftime("%H:%M"))


def _distinct_claimants(db: Session, ctx: RiskContext, *conds: Any) -> int:
    q = select(func.count(func.distinct(Claim.claimant_id))).where(Claim.claimant_id != ctx.user_id, *conds)
    return int(db.scalar(q) or 0)


def _account_cap(rid: str, attr: str, per_packet: bool, limit_attr: str) -> RuleFn:
    """A cap on distinct accounts claiming from one device (``attr="device_id"``) or IP."""
    column = getattr(Claim, attr)

    def rule(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
        value = getattr(ctx, attr)
        limit = int(getattr(s, limit_attr))
        if value is None:
            return _pass(rid, skipped="unknown")
        scope = Claim.packet_id == ctx.packet_id if per_packet else Claim.created_at >= _since(ctx, s)
        others = _distinct_claimants(db, ctx, column == value, scope)
        # ``others`` accounts already claimed here; this one would make others + 1.
        if others + 1 > limit:
            return RuleResult(rid, "deny", "device_limit", {"other_accounts": others, "limit": limit})
        return _pass(rid, other_accounts=others)

    rule.__name__ = rid
    return rule


device_accounts_per_packet = _account_cap(
    "device_accounts_per_packet", "device_id", True, "max_accounts_per_device_per_packet"
)
device_accounts_per_day = _account_cap(
    "device_accounts_per_day", "device_id", False, "max_accounts_per_device_per_day"
)
ip_accounts_per_packet = _account_cap("ip_accounts_per_packet", "ip", True, "max_accounts_per_ip_per_packet")
ip_accounts_per_day = _account_cap("ip_accounts_per_day", "ip", False, "max_accounts_per_ip_per_day")


def user_daily_amount(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
    rid = "user_daily_amount"
    since = _since(ctx, s)
    sent = int(
        db.scalar(
            select(func.coalesce(func.sum(Packet.total_fen), 0)).where(
                Packet.sender_id == ctx.user_id, Packet.created_at >= since
            )
        )
        or 0
    )
    claimed = int(
        db.scalar(
            select(func.coalesce(func.sum(Claim.amount_fen), 0)).where(
                Claim.claimant_id == ctx.user_id, Claim.created_at >= since
            )
        )
        or 0
    )
    total = sent + claimed + ctx.amount_fen
    detail = {
        "sent_fen": sent,
        "claimed_fen": claimed,
        "amount_fen": ctx.amount_fen,
        "limit_fen": s.max_user_daily_fen,
    }
    if total > s.max_user_daily_fen:
        return RuleResult(rid, "deny", "limit_exceeded", detail)
    return RuleResult(rid, "pass", None, detail)


def sender_daily_count(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
    rid = "sender_daily_count"
    n = int(
        db.scalar(
            select(func.count())
            .select_from(Packet)
            .where(Packet.sender_id == ctx.user_id, Packet.created_at >= _since(ctx, s))
        )
        or 0
    )
    # This packet would be number n + 1.
    if n + 1 > s.max_packets_per_day:
        return RuleResult(
            rid, "step_up", "step_up_required", {"packets_in_window": n, "limit": s.max_packets_per_day}
        )
    return _pass(rid, packets_in_window=n)


def sender_amount_anomaly(db: Session, ctx: RiskContext, s: RiskSettings, _: StepUp) -> RuleResult:
    rid = "sender_amount_anomaly"
    since = ctx.now - dt.timedelta(days=s.amount_history_days)
    n, avg = db.execute(
        select(func.count(), func.avg(Packet.total_fen)).where(
            Packet.sender_id == ctx.user_id, Packet.created_at >= since
        )
    ).one()
    if not n or n < s.amount_history_min or avg is None:
        return _pass(rid, history=int(n or 0))
    avg = float(avg)
    deviation = abs(ctx.amount_fen - avg) / avg if avg > 0 else 0.0
    detail = {
        "trailing_avg_fen": round(avg, 2),
        "deviation": round(deviation, 4),
        "limit": s.amount_deviation,
    }
    if deviation > s.amount_deviation:
        return RuleResult(rid, "step_up", "step_up_required", detail)
    return RuleResult(rid, "pass", None, detail)


def linked_accounts(db: Session, ctx: RiskContext, s: RiskSettings, stepup: StepUp) -> RuleResult:
    rid = "linked_accounts"
    linked = stepup.linked_accounts(db, ctx.user_id)
    if linked:
        return RuleResult(rid, "step_up", "step_up_required", {"linked_accounts": len(linked)})
    return _pass(rid)


RULES: tuple[Rule, ...] = (
    Rule("packet_amount_cap", ("send",), packet_amount_cap),
    Rule("minor_curfew", ("send", "claim"), minor_curfew),
    Rule("device_accounts_per_packet", ("claim",), device_accounts_per_packet),
    Rule("device_accounts_per_day", ("claim",), device_accounts_per_day),
    Rule("ip_accounts_per_packet", ("claim",), ip_accounts_per_packet),
    Rule("ip_accounts_per_day", ("claim",), ip_accounts_per_day),
    Rule("user_daily_amount", ("send", "claim"), user_daily_amount),
    Rule("sender_daily_count", ("send",), sender_daily_count),
    Rule("sender_amount_anomaly", ("send",), sender_amount_anomaly),
    Rule("linked_accounts", ("claim",), linked_accounts),
)
RULE_IDS = tuple(r.id for r in RULES)


def evaluate(
    db: Session, ctx: RiskContext, *, settings: RiskSettings, stepup: StepUp, audit: bool = True
) -> RiskDecision:
    """Run every enabled rule for ``ctx.action`` and decide; write one ``risk_audit`` row.

    The first ``deny`` wins. Otherwise any ``step_up`` needs ``ctx.verification_id`` to pass
    :meth:`StepUp.verification_passed` for ``ctx.user_id``; if it does not, the decision is a
    ``step_up_required`` refusal.
    """
    results: list[RuleResult] = []
    for rule in RULES:
        if ctx.action not in rule.actions:
            continue
        if rule.id in settings.disabled_rules:
            results.append(RuleResult(rule.id, "pass", None, {"disabled": True}))
            continue
        results.append(rule.fn(db, ctx, settings, stepup))

    decision: RiskDecision
    deny = next((r for r in results if r.outcome == "deny"), None)
    step = next((r for r in results if r.outcome == "step_up"), None)
    if deny is not None:
        decision = RiskDecision(False, deny.code, deny.rule_id, results)
    elif step is not None:
        ok = bool(ctx.verification_id) and stepup.verification_passed(
            db, ctx.verification_id or "", ctx.user_id, max_age_s=settings.stepup_max_age_s
        )
        if ok:
            decision = RiskDecision(True, None, step.rule_id, results, stepped_up=True)
        else:
            decision = RiskDecision(False, "step_up_required", step.rule_id, results)
    else:
        decision = RiskDecision(True, None, None, results)
    if audit:
        record(db, ctx, decision)
    return decision


def record(
    db: Session, ctx: RiskContext, decision: RiskDecision, *, extra: list[dict[str, Any]] | None = None
) -> None:
    """Write the audit row for a decision (also used for refusals decided before the rules)."""
    rules = [r.as_dict() for r in decision.results] + list(extra or [])
    if decision.stepped_up:
        rules.append({"rule": "step_up", "outcome": "pass", "verification_id": ctx.verification_id})
    db.add(
        RiskAudit(
            created_at=ctx.now,
            action=ctx.action,
            decision="allow" if decision.allowed else "deny",
            code=decision.code,
            rule_id=decision.rule_id,
            packet_id=ctx.packet_id,
            user_id=ctx.user_id,
            device_id=ctx.device_id,
            ip=ctx.ip,
            rules=rules,
        )
    )
