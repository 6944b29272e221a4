"""``songgate rescore`` (batch re-scoring) and ``songgate jobs ...`` (show, list, cancel, switch-over).

Exit codes of ``rescore``: 0 the job is done (items may have failed: see the summary), 130 it was
interrupted (resume with ``--job-id``), 1 it failed or was cancelled, 2 a bad request.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

jobs_app = typer.Typer(no_args_is_help=True, help="Batch jobs: status, cancel, voiceprint switch-over")


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


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def _print_summary(status: dict[str, Any]) -> None:
    from jobs.diff import flips_summary_lines

    summary = status.get("summary") or {}
    typer.echo(
        f"job {status['id']}: {status['status']} -- {status['done']} done, {status['failed']} failed, "
        f"{status['pending']} pending of {status['total']}"
    )
    if status["errors"]:
        by = ", ".join(f"{code}: {n}" for code, n in sorted(status["errors"].items(), key=lambda kv: -kv[1]))
        typer.echo(f"  failed by error code: {by}")
    if summary.get("items_per_s") is not None:
        typer.echo(
            f"  this run: {summary.get('processed_this_run', 0)} items in {summary.get('wall_s', 0):.1f} s "
            f"= {summary['items_per_s']:.2f} items/s ({summary.get('engine')}, {summary.get('workers')} workers)"
        )
    for line in flips_summary_lines(summary.get("flips") or {}):
        typer.echo(f"  {line}")
    if summary.get("output"):
        typer.echo(f"  output: {summary['output']['path']} ({summary['output']['rows']} rows)")
    if status.get("error"):
        typer.echo(f"  error: {status['error']}")
    if status["status"] == "interrupted":
        typer.echo(f"  resume with: songgate rescore --job-id {status['id']}")


def _sigterm_as_interrupt() -> None:
    """SIGTERM stops a job like Ctrl-C: commit what is finished, mark it interrupted."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def rescore(
    what: Annotated[
        str | None, typer.Option(help="Comma-separated: checks, effects, voiceprint (not needed to resume)")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="KEY=VALUE selection, repeatable (user, song, kind, settings_version, model_id, since, until, id)",
        ),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="CSV (with a 'path' column), JSONL or Parquet list of audio files")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="Kind of manifest files without a 'kind' column: mix or vocal")
    ] = "mix",
    engine: Annotated[str | None, typer.Option(help="local (process pool) or ray")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes / Ray actors (0: in this process)")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write one row per item to FILE (.jsonl or .parquet)")
    ] = None,
    job_id: Annotated[
        str | None, typer.Option("--job-id", help="Resume this job, or create it under this id")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (else a local instance)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and report what would change; write nothing back")
    ] = False,
    embedder: Annotated[
        str | None, typer.Option(help="Voiceprint model to re-embed with (backend name or module:attr)")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final status as JSON")] = False,
) -> None:
    """Re-run checks, effects and/or voiceprint embeddings over stored recordings or a manifest.

    Resumable: rerun with the same --job-id after Ctrl-C, SIGTERM or a crash; finished items are
    never redone. One item's failure is recorded with its error code and never stops the batch.
    """
    from core.errors import SonggateError
    from jobs.progress import NullProgress, RichProgress
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from jobs.sessions import reader
    from jobs.tables import Job

    settings, db_engine, factory = _db()
    try:
        options = RunOptions(
            engine=engine, workers=workers, output=str(output) if output else None, ray_address=ray_address
        )
        resume = False
        if job_id is not None and what is None:
            with reader(factory)() as s:
                resume = s.get(Job, job_id) is not None
            if not resume:
                raise typer.BadParameter(f"no job {job_id}: give --what to create it")
        if not resume:
            if what is None:
                raise typer.BadParameter("--what is required for a new job")
            request = JobRequest(
                what=tuple(what.split(",")),
                where=tuple(where or ()),
                manifest=str(manifest) if manifest else None,
                kind=kind,
                dry_run=dry_run,
                embedder=embedder,
            )
            the_job, created = create_job(factory, settings, request, options=options, job_id=job_id)
            typer.echo(f"job {the_job} {'created' if created else 'resumed'}")
        else:
            the_job = str(job_id)
            typer.echo(f"job {the_job} resumed")
        sys.stdout.flush()
        # On resume only what the user gave overrides the stored options.
        run_options = RunOptions(
            engine=engine, workers=workers, output=str(output) if output else None, ray_address=ray_address
        )
        show = sys.stderr.isatty() if progress is None else progress
        _sigterm_as_interrupt()
        try:
            status = run_job(
                factory,
                settings,
                the_job,
                options=run_options,
                progress=RichProgress() if show else NullProgress(),
            )
        except KeyboardInterrupt:
            from jobs.runner import job_status

            status = job_status(factory, the_job)
    except SonggateError as exc:
        typer.echo(f"error [{exc.code}]: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db_engine.dispose()
    if as_json:
        typer.echo(json.dumps(status, default=_json_default, indent=2))
    else:
        _print_summary(status)
    code = {"done": 0, "interrupted": 130}.get(status["status"], 1)
    raise typer.Exit(code)


@jobs_app.command("show")
def show(job_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Status, progress and summary of a job."""
    from core.errors import SonggateError
    from jobs.runner import job_status

    _, db_engine, factory = _db()
    try:
        status = job_status(factory, job_id)
    except SonggateError as exc:
        typer.echo(f"error [{exc.code}]: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db_engine.dispose()
    if as_json:
        typer.echo(json.dumps(status, default=_json_default, indent=2))
    else:
        _print_summary(status)


@jobs_app.command("list")
def list_jobs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """The most recent jobs."""
    from jobs.runner import list_jobs as recent

    _, db_engine, factory = _db()
    try:
        for j in recent(factory, limit=limit):
            typer.echo(
                f"{j['id']}  {j['status']:<11} {','.join(j['what']):<24} {j['done'] + j['failed']}/{j['total']} "
                f"({j['failed']} failed)  {j['created_at']:%Y-%m-%d %H:%M}"
            )
    finally:
        db_engine.dispose()


@jobs_app.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a job (a running one stops at its next commit)."""
    from core.errors import SonggateError
    from jobs.runner import request_cancel

    _, db_engine, factory = _db()
    try:
        status = request_cancel(factory, job_id)
    except SonggateError as exc:
        typer.echo(f"error [{exc.code}]: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db_engine.dispose()
    typer.echo(
        f"job {job_id}: {status['status']}{' (stop requested)' if status['status'] == 'running' else ''}"
    )


@jobs_app.command("switch-over")
def switch_over_cmd(
    model_id: str,
    retire_old: Annotated[
        bool, typer.Option(help="Also retire the old-model voiceprints (no rollback)")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Activate the voiceprints a re-embedding job staged for MODEL_ID (then point the service at it)."""
    from jobs.switchover import switch_over

    _, db_engine, factory = _db()
    try:
        counts = switch_over(factory, model_id, retire_old=retire_old, dry_run=dry_run)
    finally:
        db_engine.dispose()
    typer.echo(json.dumps({"model_id": model_id, "dry_run": dry_run, **counts}))


def register(root: typer.Typer) -> None:
    """Add ``rescore`` and the ``jobs`` group to the root app."""
    root.command("rescore")(rescore)
    root.add_typer(jobs_app, name="jobs")
