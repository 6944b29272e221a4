"""Install a model version: try its sources in order, verify every sha256, install atomically.

The files land in a staging directory next to the target; only a staging directory that passes
:func:`models.registry.verify` is renamed to ``<model_dir>/<name>/<version>``, so a reader never
sees a half-written model. A per-model lock file serializes concurrent pulls.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from models.errors import IntegrityError, ModelNotInstalled, PullFailed, SourceUnavailable
from models.files import copy_file
from models.registry import CALIBRATION_FILE, SOURCE_FILE, ModelSpec, get, install_dir, verify
from models.sources import SOURCE_DIR_ENV, HubSource, LocalDirSource, PackageSource, Source, WheelSource

log = logging.getLogger(__name__)


def default_sources(spec: ModelSpec, *, source_dir: Path | None = None) -> list[Source]:
    """A local directory first (``source_dir`` or ``SONGGATE_MODEL_SOURCE_DIR``), then the spec's own."""
    out: list[Source] = []
    local = source_dir or os.environ.get(SOURCE_DIR_ENV) or None
    if local:
        out.append(LocalDirSource(Path(local)))
    out.extend(spec.sources)
    return out


def parse_source(text: str, spec: ModelSpec) -> list[Source]:
    """A ``--source`` value: ``hub``, ``wheel``, ``package`` (the spec's sources of that kind) or a
    directory path."""
    kinds = {"hub": HubSource, "wheel": WheelSource, "package": PackageSource}
    if text in kinds:
        return [s for s in spec.sources if isinstance(s, kinds[text])]
    return [LocalDirSource(Path(text).expanduser())]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fill_derived(spec: ModelSpec, directory: Path) -> None:
    """Write files that are byte copies of another (e.g. label_encoder.txt from .ckpt) if missing."""
    for rel, origin in spec.derived.items():
        if not (directory / rel).is_file() and (directory / origin).is_file():
            copy_file(directory / origin, directory / rel)


def pull(
    name: str | ModelSpec,
    *,
    model_dir: Path,
    sources: Sequence[Source] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Install a model into ``<model_dir>/<name>/<version>`` and return that directory.

    Parameters
    ----------
    name : registry name or alias, or a ModelSpec
    model_dir : the model cache root (``Settings().resolved_model_dir``)
    sources : tried in order; default :func:`default_sources`
    force : re-fetch even if a verified copy is installed
    progress : called with one line per step (the CLI prints them)

    Raises
    ------
    PullFailed : no source produced files that pass the sha256 check (``extra['attempts']``)
    """
    spec = get(name)
    say = progress or log.info
    model_dir = Path(model_dir)
    target = install_dir(spec, model_dir)
    with _locked(model_dir / spec.name / ".lock"):
        if not force:
            try:
                verify(spec, target)
                say(f"{spec.model_id}: already installed and verified at {target}")
                return target
            except ModelNotInstalled:
                pass
            except IntegrityError as exc:
                say(f"{spec.model_id}: installed copy fails verification ({exc}); re-fetching")
        attempts: list[dict[str, str]] = []
        for source in sources if sources is not None else default_sources(spec):
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".staging-{spec.version}-"))
            staging.chmod(0o755)  # mkdtemp makes 0700; the service user must read the model
            try:
                say(f"{spec.model_id}: trying {source.label}")
                source.fetch(spec, staging)
                _fill_derived(spec, staging)
                verify(spec, staging)
            except (SourceUnavailable, ModelNotInstalled, IntegrityError) as exc:
                say(f"{spec.model_id}: {source.label}: {exc.detail}")
                attempts.append({"source": source.label, "error": exc.detail})
                shutil.rmtree(staging, ignore_errors=True)
                continue
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            _install(spec, staging, target, source.label)
            say(f"{spec.model_id}: installed from {source.label} at {target}")
            return target
        raise PullFailed(
            f"could not install {spec.model_id} from any source: "
            + "; ".join(f"{a['source']}: {a['error']}" for a in attempts),
            model_id=spec.model_id,
            attempts=attempts,
        )


def _install(spec: ModelSpec, staging: Path, target: Path, label: str) -> None:
    """Atomically put a verified staging directory in place, keeping an existing calibration."""
    (staging / SOURCE_FILE).write_text(
        json.dumps(
            {
                "model_id": spec.model_id,
                "source": label,
                "pulled_at": dt.datetime.now(dt.UTC).isoformat(),
                "files": dict(spec.files),
            },
            indent=2,
        )
        + "\n"
    )
    old = None
    if target.exists():
        # Same version means same weights: its calibration still applies.
        if (target / CALIBRATION_FILE).is_file():
            copy_file(target / CALIBRATION_FILE, staging / CALIBRATION_FILE)
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
