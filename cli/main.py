"""The ``songgate`` command line. Each area module in cli/ defines ``register(root)``."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="songgate: audio verification service")
db_app = typer.Typer(no_args_is_help=True, help="Database commands")
keys_app = typer.Typer(no_args_is_help=True, help="Service API keys")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")

AREAS = ["models", "eval", "claims", "jobs"]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
) -> None:
    """Run the API with uvicorn."""
    import uvicorn

    from api.app import create_app
    from core.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        proxy_headers=False,
    )


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="Audio files to check", exists=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object per file in a list)")
    ] = False,
    kind: Annotated[str, typer.Option(help="mix or vocal")] = "mix",
) -> None:
    """Decode each file and print its recording check report. Exit code 1 if any file fails.

    Files are checked as they are decoded, block by block: memory does not grow with duration."""
    from audio.checks import check_file, format_table
    from core.errors import SonggateError
    from core.settings import get_settings

    if kind not in ("mix", "vocal"):
        raise typer.BadParameter("kind must be mix or vocal")
    settings = get_settings()
    results = []
    failed = False
    for path in files:
        try:
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            report, info = check_file(path, kind=kind, settings=settings.checks, limits=settings.limits)
            results.append({"file": str(path), **report})
            failed |= report.get("verdict") == "fail"
            if not as_json:
                typer.echo(
                    f"== {path} ({info.container}/{info.codec}, "
                    f"{info.sample_rate} Hz, {info.channels} ch, {report['duration_s']:.2f} s)"
                )
                typer.echo(format_table(report))
        except (SonggateError, FileNotFoundError) as exc:
            failed = True
            code = getattr(exc, "code", "not_found")
            results.append({"file": str(path), "error": {"code": code, "detail": str(exc)}})
            if not as_json:
                typer.echo(f"== {path}: error [{code}] {exc}", err=True)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    raise typer.Exit(1 if failed else 0)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (every package's branch) to the configured database."""
    from core.settings import get_settings
    from db.migrate import current_heads, upgrade

    url = get_settings().resolved_database_url
    upgrade(url)
    typer.echo(f"database at {', '.join(sorted(current_heads(url)))}")


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", help="upload, claim or admin (repeatable)")],
    name: Annotated[str, typer.Option(help="Who the key is for")] = "service",
) -> None:
    """Create an API key; the key itself is printed alone on the last line (shown only once)."""
    from core.settings import get_settings
    from db import keys
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as s, s.begin():
            row, plaintext = keys.create_key(s, name=name, scopes=scope)
    except keys.UnknownScope as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        engine.dispose()
    typer.echo(f"created key {row.id} ({name}) with scopes {','.join(row.scopes)}")
    typer.echo(plaintext)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    from core.settings import get_settings
    from db import keys
    from db.engine import make_engine, make_session_factory

    engine = make_engine(get_settings().resolved_database_url)
    with make_session_factory(engine)() as s, s.begin():
        ok = keys.revoke(s, key_id)
    engine.dispose()
    if not ok:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


for _area in AREAS:
    importlib.import_module(f"cli.{_area}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
