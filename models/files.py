"""File helpers shared by the registry and the sources: streaming sha256 and byte copies."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import IO

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh: IO[bytes], *, out: IO[bytes] | None = None, limit: int | None = None) -> str:
    """Hex sha256 of a stream, optionally copying it to ``out``; refuses more than ``limit`` bytes."""
    h = hashlib.sha256()
    total = 0
    while chunk := fh.read(CHUNK):
        total += len(chunk)
        if limit is not None and total > limit:
            raise ValueError(f"stream larger than {limit} bytes")
        h.update(chunk)
        if out is not None:
            out.write(chunk)
    return h.hexdigest()


def copy_file(src: Path, dst: Path) -> None:
    """Copy bytes (no metadata, follows links), creating parent folders."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
