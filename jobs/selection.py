"""What a job works on: recordings or voiceprints selected from the database with ``--where``
conditions, or audio files listed in a manifest (CSV with a ``path`` column, JSONL, Parquet).

``--where`` grammar: ``KEY=VALUE`` (a comma-separated VALUE means any of them), ``KEY!=VALUE``, and for
dates ``created>=DATE`` / ``created<DATE`` (aliases ``since=DATE`` and ``until=DATE``); dates are ISO
8601, naive ones are UTC. Keys for recordings: ``id``, ``user``, ``song``, ``kind``,
``settings_version`` (the check-settings version that produced the stored report), ``created``.
Keys for voiceprints: ``id``, ``user``, ``model_id`` (the model the voiceprint was made with), ``created``.

Selections are read in a stable order (creation time, then id) and in chunks, so millions of rows
never sit in memory at once.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.tables import Recording
from jobs.errors import InvalidSelection, ManifestError

#: Longest item key kept verbatim (UTF-8 bytes); longer paths are keyed by their hash.
MAX_KEY_BYTES = 200
KINDS = ("mix", "vocal")


@dataclasses.dataclass(frozen=True)
class Condition:
    key: str
    op: str  # "=", "!=", ">=", "<"
    values: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ItemRow:
    """One item as materialized into ``job_items``."""

    key: str
    item_type: str  # recording | file | voiceprint | attempt
    recording_id: str | None = None
    path: str | None = None
    kind: str | None = None


_WHERE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|>=|<=|=|<|>)\s*(.*?)\s*$")


def parse_where(pairs: Sequence[str]) -> list[Condition]:
    """Parse ``--where`` arguments into conditions (keys are checked against the target later).

    Raises
    ------
    InvalidSelection : a malformed condition or an empty value.
    """
    out: list[Condition] = []
    for raw in pairs:
        m = _WHERE_RE.match(raw)
        if m is None:
            raise InvalidSelection(f"--where {raw!r}: expected KEY=VALUE, KEY!=VALUE or created>=DATE")
        key, op, value = m.group(1).lower(), m.group(2), m.group(3)
        if key == "since":
            key, op = "created", ">=" if op == "=" else op
        elif key == "until":
            key, op = "created", "<" if op == "=" else op
        if op in ("<=", ">"):
            raise InvalidSelection(f"--where {raw!r}: dates take >= (from) and < (before)")
        values = tuple(v.strip() for v in value.split(",")) if op in ("=", "!=") else (value,)
        if not values or any(not v for v in values):
            raise InvalidSelection(f"--where {raw!r}: empty value")
        out.append(Condition(key, op, values))
    return out


def parse_date(value: str) -> dt.datetime:
    """ISO 8601 date or datetime -> aware UTC datetime (naive values are taken as UTC)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSelection(f"not an ISO 8601 date: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _apply(stmt: Any, conditions: Sequence[Condition], columns: dict[str, Any], target: str) -> Any:
    for c in conditions:
        col = columns.get(c.key)
        if col is None:
            raise InvalidSelection(
                f"--where {c.key}: not a key for {target} (known: {', '.join(sorted(columns))})"
            )
        if c.key == "created":
            if c.op not in (">=", "<"):
                raise InvalidSelection("created takes >= (from) or < (before), or since= / until=")
            when = parse_date(c.values[0])
            stmt = stmt.where(col >= when if c.op == ">=" else col < when)
            continue
        if c.op not in ("=", "!="):
            raise InvalidSelection(f"--where {c.key}: only = and != apply")
        if c.key == "kind" and any(v not in KINDS for v in c.values):
            raise InvalidSelection(f"kind is one of {', '.join(KINDS)}")
        clause = col.in_(c.values) if len(c.values) > 1 else col == c.values[0]
        stmt = stmt.where(clause if c.op == "=" else ~clause)
    return stmt


def recording_columns() -> dict[str, Any]:
    return {
        "id": Recording.id,
        "user": Recording.user_id,
        "user_id": Recording.user_id,
        "song": Recording.song_id,
        "song_id": Recording.song_id,
        "kind": Recording.kind,
        "settings_version": Recording.report_version,
        "report_version": Recording.report_version,
        "created": Recording.created_at,
    }


def select_recordings(
    session: Session, conditions: Sequence[Condition], *, chunk: int = 5000
) -> Iterator[ItemRow]:
    """Recordings matching ``conditions``, oldest first (keyset-paginated by (created_at, id))."""
    stmt = _apply(
        select(Recording.id, Recording.created_at, Recording.kind),
        conditions,
        recording_columns(),
        "recordings",
    )
    for row in _keyset(session, stmt, Recording.created_at, Recording.id, chunk=chunk):
        yield ItemRow(key=row.id, item_type="recording", recording_id=row.id, kind=row.kind)


def voiceprint_columns() -> dict[str, Any]:
    from voiceprint.tables import Voiceprint

    return {
        "id": Voiceprint.id,
        "user": Voiceprint.user_id,
        "user_id": Voiceprint.user_id,
        "model_id": Voiceprint.model_id,
        "model": Voiceprint.model_id,
        "created": Voiceprint.created_at,
    }


def _keyset(session: Session, stmt: Any, created: Any, ident: Any, *, chunk: int) -> Iterator[Any]:
    """Rows of ``stmt`` in (created, id) order, fetched ``chunk`` at a time by keyset pagination
    (each page is read completely, so the caller may write to the same session in between)."""
    last: tuple[Any, Any] | None = None
    while True:
        page = stmt.order_by(created, ident).limit(chunk)
        if last is not None:
            page = page.where((created > last[0]) | ((created == last[0]) & (ident > last[1])))
        rows = session.execute(page).all()
        if not rows:
            return
        yield from rows
        last = (rows[-1][1], rows[-1][0])


def select_voiceprints(
    session: Session, conditions: Sequence[Condition], *, target_model_id: str, chunk: int = 5000
) -> Iterator[ItemRow]:
    """Active voiceprints matching ``conditions`` that were NOT made with ``target_model_id``, then
    the verification attempts decided against them (re-embedded to count flipped decisions)."""
    from voiceprint.tables import VerificationAttempt, Voiceprint

    vp_filter = _apply(
        select(Voiceprint.id, Voiceprint.created_at).where(
            Voiceprint.active.is_(True), Voiceprint.model_id != target_model_id
        ),
        conditions,
        voiceprint_columns(),
        "voiceprints",
    )
    for row in _keyset(session, vp_filter, Voiceprint.created_at, Voiceprint.id, chunk=chunk):
        yield ItemRow(key=f"vp:{row[0]}", item_type="voiceprint")
    selected = vp_filter.with_only_columns(Voiceprint.id)
    attempts = (
        select(VerificationAttempt.id, VerificationAttempt.created_at)
        .where(VerificationAttempt.voiceprint_id.in_(selected))
        .where(VerificationAttempt.decision.in_(("accept", "reject")))
    )
    for row in _keyset(
        session, attempts, VerificationAttempt.created_at, VerificationAttempt.id, chunk=chunk
    ):
        yield ItemRow(key=f"attempt:{row[0]}", item_type="attempt")


def check_conditions(conditions: Sequence[Condition], *, what: Sequence[str]) -> None:
    """Validate ``conditions`` for the targets of ``what`` without touching the database.

    A key must apply to every target: recordings (checks, effects) and voiceprints (voiceprint).
    """
    if any(w in ("checks", "effects") for w in what):
        _apply(select(Recording.id), conditions, recording_columns(), "recordings")
    if "voiceprint" in what:
        from voiceprint.tables import Voiceprint

        _apply(select(Voiceprint.id), conditions, voiceprint_columns(), "voiceprints")


# --- manifests -----------------------------------------------------------------------------------


def item_key_for_path(path: str) -> str:
    """The item key of a manifest file: the path itself, or ``sha256:<hex>`` of it when it is long."""
    if len(path.encode()) <= MAX_KEY_BYTES:
        return path
    return "sha256:" + hashlib.sha256(path.encode()).hexdigest()


def _manifest_records(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ManifestError(f"{path}: a CSV manifest needs a 'path' column")
            yield from reader
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{n}: not JSON ({exc.msg})") from None
                if not isinstance(rec, dict):
                    raise ManifestError(f"{path}:{n}: each line must be a JSON object")
                yield rec
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if "path" not in pf.schema_arrow.names:
            raise ManifestError(f"{path}: a Parquet manifest needs a 'path' column")
        cols = [c for c in ("path", "kind") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=10_000, columns=cols):
            yield from batch.to_pylist()
    else:
        raise ManifestError(f"{path}: manifest must be .csv, .jsonl or .parquet")


def read_manifest(path: str | Path, *, default_kind: str = "mix") -> Iterator[ItemRow]:
    """Audio files listed in a manifest, in file order, each once.

    A row needs ``path`` (relative paths are taken from the manifest's folder) and may give ``kind``
    (mix|vocal, default ``default_kind``). A file listed twice is one item.

    Raises
    ------
    ManifestError : unreadable manifest, a row without a path, an unknown kind.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError(f"manifest not found: {manifest}")
    base = manifest.resolve().parent
    seen: set[str] = set()
    for n, rec in enumerate(_manifest_records(manifest), 1):
        raw = rec.get("path")
        if not isinstance(raw, str) or not raw.strip():
            raise ManifestError(f"{manifest}: row {n} has no path")
        p = Path(raw.strip()).expanduser()
        full = str(p if p.is_absolute() else base / p)
        kind = rec.get("kind") or default_kind
        if kind not in KINDS:
            raise ManifestError(f"{manifest}: row {n}: kind must be mix or vocal, got {kind!r}")
        key = item_key_for_path(full)
        if key in seen:
            continue
        seen.add(key)
        yield ItemRow(key=key, item_type="file", path=full, kind=kind)
