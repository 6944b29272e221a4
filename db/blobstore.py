"""Content-addressed blob store for uploaded audio.

Blobs live at ``ROOT/ab/cd/<sha256>``. Writes stream into a temp file in the same directory tree,
are fsynced and then renamed, so a reader never sees a partial blob and a crash leaves at most a
stray temp file. :class:`BlobStore` is the small interface an object store can implement later.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from audio.errors import TooLarge

CHUNK = 1 << 20


class BlobStore(Protocol):
    def put_stream(self, chunks: Iterator[bytes], *, max_bytes: int) -> tuple[str, int]: ...
    def path(self, sha256: str) -> Path: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...


class PendingBlob:
    """A blob being written: feed chunks, then :meth:`commit` (atomic) or :meth:`discard`."""

    def __init__(self, store: LocalBlobStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        self.created = False
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="up-")
        self.tmp_path = Path(name)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        assert self._fh is not None, "blob already finished"
        self.size += len(chunk)
        if self.size > self._max:
            self.discard()
            raise TooLarge(f"upload exceeds {self._max} bytes", limit_bytes=self._max)
        self._hash.update(chunk)
        self._fh.write(chunk)

    def commit(self) -> tuple[str, int]:
        assert self._fh is not None, "blob already finished"
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        digest = self._hash.hexdigest()
        final = self._store.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            self.tmp_path.unlink(missing_ok=True)  # same content already stored
        else:
            os.replace(self.tmp_path, final)
            _fsync_dir(final.parent)
            self.created = True
        return digest, self.size

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp_path.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)

    def begin(self, *, max_bytes: int) -> PendingBlob:
        return PendingBlob(self, max_bytes)

    def put_stream(self, chunks: Iterator[bytes], *, max_bytes: int) -> tuple[str, int]:
        pending = self.begin(max_bytes=max_bytes)
        try:
            for chunk in chunks:
                pending.write(chunk)
        except BaseException:
            pending.discard()
            raise
        return pending.commit()

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream(iter([data]), max_bytes=max(len(data), 1))

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
