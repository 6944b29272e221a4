"""``songgate outbox relay``, ``songgate simulate listen``, ``songgate packets expire`` and
``songgate risk ...`` (user flags, audit trail)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

import typer

outbox_app = typer.Typer(no_args_is_help=True, help="Payout outbox")
simulate_app = typer.Typer(no_args_is_help=True, help="Fraud simulations")
packets_app = typer.Typer(no_args_is_help=True, help="Red packets")
risk_app = typer.Typer(no_args_is_help=True, help="Risk rules: user flags and the audit trail")


def _db() -> tuple[Any, Any, Any]:
    from core.settings import get_settings
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade

    settings = get_settings()
    url = settings.resolved_database_url
    if settings.env != "production":
        upgrade(url)  # embedded defaults just work; production migrates explicitly
    engine = make_engine(url)
    return settings, engine, make_session_factory(engine)


@outbox_app.command("relay")
def relay(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then exit")] = False,
    sink: Annotated[
        str | None, typer.Option(help="JSONL file path or http(s) webhook URL (default: settings)")
    ] = None,
    expire: Annotated[bool, typer.Option("--expire/--no-expire", help="Also expire due packets")] = True,
) -> None:
    """Deliver payout messages at least once (payout id = idempotency key), with backoff."""
    from claims.relay import Relay, make_sink

    settings, engine, factory = _db()
    rs = settings.claims.relay
    target = sink or rs.sink or str(settings.data_dir / "payouts.jsonl")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stats = Relay(factory, make_sink(target, timeout_s=rs.webhook_timeout_s), settings=rs).run(
            once=once, expire=expire, stop=stop
        )
    finally:
        engine.dispose()
    typer.echo(
        f"relay to {target}: {stats.delivered} delivered, {stats.failed} failed attempts, {stats.refunds} refunds"
    )


@packets_app.command("expire")
def expire() -> None:
    """Expire due packets and queue refunds of their remainder (outbox)."""
    from claims.expiry import expire_packets
    from core.clock import SystemClock

    _, engine, factory = _db()
    try:
        refunds = expire_packets(factory, clock=SystemClock())
    finally:
        engine.dispose()
    for r in refunds:
        typer.echo(
            f"{r.packet_id}: expired, refund {r.amount_fen} fen to {r.sender_id} ({r.payout_id or 'nothing left'})"
        )
    typer.echo(f"{len(refunds)} packets expired")


@simulate_app.command("listen")
def simulate_listen(
    runs: Annotated[int, typer.Option(min=1, help="Scenarios per attack class")] = 100,
    honest: Annotated[int | None, typer.Option(min=0, help="Honest listeners (default: --runs x 10)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (deterministic)")] = 0,
    min_song_s: Annotated[float, typer.Option(help="Shortest song")] = 20.0,
    max_song_s: Annotated[float, typer.Option(help="Longest song")] = 240.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Honest listeners and every attack class through the real claim path on a virtual clock.

    Exit code 1 if any attack was granted or the honest false-reject rate exceeds 0.5 %.
    """
    import time

    from claims.simulator import simulate

    if not 1.0 <= min_song_s <= max_song_s:
        raise typer.BadParameter("need 1 <= --min-song-s <= --max-song-s")
    t0 = time.perf_counter()
    report = simulate(
        runs=runs,
        honest_runs=runs * 10 if honest is None else honest,
        seed=seed,
        durations_s=(min_song_s, max_song_s),
    )
    wall = time.perf_counter() - t0
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        typer.echo(report.table())
        typer.echo(
            f"\n{report.calls} server calls, {report.virtual_s / 3600:.2f} h of virtual time in {wall:.1f} s wall"
        )
    bad = any(c.granted for c in report.classes) or report.honest.false_reject_rate > 0.005
    raise typer.Exit(1 if bad else 0)


@risk_app.command("flag-user")
def flag_user(
    user_id: str,
    minor: Annotated[
        bool | None, typer.Option("--minor/--adult", help="Minor account (curfew applies)")
    ] = None,
    tz: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Asia/Shanghai")] = None,
) -> None:
    """Set a user's minor flag and/or time zone (the curfew rule reads them)."""
    from claims.flags import set_user_flags
    from claims.uow import unit_of_work
    from core.clock import SystemClock
    from core.errors import SonggateError

    _, engine, factory = _db()
    try:
        with unit_of_work(factory) as db:
            row = set_user_flags(db, user_id, minor=minor, tz=tz, now=SystemClock().now())
            typer.echo(f"{row.user_id}: minor={row.minor} tz={row.tz or '(default)'}")
    except SonggateError as exc:
        typer.echo(f"error [{exc.code}] {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@risk_app.command("audit")
def audit(
    user: Annotated[str | None, typer.Option(help="Only this user")] = None,
    packet: Annotated[str | None, typer.Option(help="Only this packet")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Print the latest risk decisions (one JSON object per line)."""
    from sqlalchemy import select

    from claims.tables import RiskAudit

    _, engine, factory = _db()
    try:
        with factory() as db:
            q = select(RiskAudit).order_by(RiskAudit.id.desc()).limit(limit)
            if user:
                q = q.where(RiskAudit.user_id == user)
            if packet:
                q = q.where(RiskAudit.packet_id == packet)
            for row in db.scalars(q):
                typer.echo(
                    json.dumps(
                        {
                            "at": row.created_at.isoformat(),
                            "action": row.action,
                            "decision": row.decision,
                            "code": row.code,
                            "rule": row.rule_id,
                            "user": row.user_id,
                            "packet": row.packet_id,
                            "device": row.device_id,
                            "ip": row.ip,
                            "rules": row.rules,
                        }
                    )
                )
    finally:
        engine.dispose()


def register(root: typer.Typer) -> None:
    root.add_typer(outbox_app, name="outbox")
    root.add_typer(simulate_app, name="simulate")
    root.add_typer(packets_app, name="packets")
    root.add_typer(risk_app, name="risk")
