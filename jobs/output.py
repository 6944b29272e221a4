"""``--output FILE``: one row per item of a job (failures included, with their error code), written
from the ``job_items`` table, so the file holds every committed item exactly once however often
the job was interrupted. JSONL or Parquet, chosen by the extension; the file is replaced atomically.

Row fields: ``job_id``, ``seq``, ``item`` (the item key), ``item_type``, ``recording_id``, ``path``,
``status`` (done|failed|pending), ``error_code``, ``error_detail``, ``result`` (JSON object; in
Parquet a JSON string, since results differ by item type).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.errors import InvalidSelection
from jobs.sessions import reader
from jobs.tables import JobItem

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
CHUNK = 2000


def output_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidSelection(f"--output {path}: use a .jsonl or .parquet file")
    return fmt


def iter_rows(
    factory: sessionmaker[Session], job_id: str, *, include_pending: bool = False
) -> Iterator[dict[str, Any]]:
    """Item rows in ``seq`` order, read in short transactions (SQLite writers are never blocked long)."""
    reads = reader(factory)
    last = -1
    while True:
        with reads() as s:
            stmt = (
                select(
                    JobItem.seq,
                    JobItem.item_key,
                    JobItem.item_type,
                    JobItem.recording_id,
                    JobItem.path,
                    JobItem.status,
                    JobItem.error_code,
                    JobItem.error_detail,
                    JobItem.result,
                )
                .where(JobItem.job_id == job_id, JobItem.seq > last)
                .order_by(JobItem.seq)
                .limit(CHUNK)
            )
            if not include_pending:
                stmt = stmt.where(JobItem.status != "pending")
            rows = s.execute(stmt).all()
        if not rows:
            return
        for r in rows:
            yield {
                "job_id": job_id,
                "seq": r.seq,
                "item": r.item_key,
                "item_type": r.item_type,
                "recording_id": r.recording_id,
                "path": r.path,
                "status": r.status,
                "error_code": r.error_code,
                "error_detail": r.error_detail,
                "result": r.result,
            }
        last = rows[-1].seq


def write_output(factory: sessionmaker[Session], job_id: str, path: str | Path) -> int:
    """Write every finished item of ``job_id`` to ``path`` (replacing it); returns the row count."""
    path = Path(path)
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        if fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in iter_rows(factory, job_id):
                    fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                    n += 1
        else:
            n = _write_parquet(factory, job_id, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _write_parquet(factory: sessionmaker[Session], job_id: str, tmp: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("job_id", pa.string()),
            ("seq", pa.int64()),
            ("item", pa.string()),
            ("item_type", pa.string()),
            ("recording_id", pa.string()),
            ("path", pa.string()),
            ("status", pa.string()),
            ("error_code", pa.string()),
            ("error_detail", pa.string()),
            ("result", pa.string()),
        ]
    )
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in iter_rows(factory, job_id):
            row["result"] = None if row["result"] is None else json.dumps(row["result"], ensure_ascii=False)
            batch.append(row)
            if len(batch) >= CHUNK:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


def read_output(path: str | Path) -> list[dict[str, Any]]:
    """Read an output file back (tests, tools): rows with ``result`` as a dict."""
    path = Path(path)
    if output_format(path) == "jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for r in rows:
        r["result"] = None if r["result"] is None else json.loads(r["result"])
    return rows
