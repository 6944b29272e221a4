"""Jobs tables: one ``jobs`` row per batch run and one ``job_items`` row per item of it.

The item list is written once when the job is created (a snapshot of the selection), so a resumed
job works on exactly the same items, in the same order, and ``total`` never moves. An item's result
and the write-back it causes (recording report, artifacts, voiceprint rows) commit in ONE
transaction together with its ``done``/``failed`` status: after a crash an item is either fully done
or still pending, never half done and never done twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UTCDateTime, utcnow

#: Job states. ``interrupted`` (Ctrl-C / SIGTERM), ``failed`` and a ``running`` job whose runner is
#: gone can all be resumed with ``--job-id``; ``done`` and ``cancelled`` are final.
JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ITEM_STATES = ("pending", "done", "failed")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    what: Mapped[str] = mapped_column(String(64))  # e.g. "checks,effects"
    source: Mapped[str] = mapped_column(String(16))  # db | manifest
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # error code -> items
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # rate, flips, output file...
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the job itself failed
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    runner_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    runner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobItem(Base):
    """One unit of work: a recording (``recording_id``), a manifest file (``path``), a voiceprint or
    a past verification attempt to re-embed (``item_type``)."""

    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "item_key", name="uq_job_items_job_key"),
        Index("ix_job_items_job_status_seq", "job_id", "status", "seq"),
    )

    job_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_key: Mapped[str] = mapped_column(String(255))  # see jobs.selection.item_key_for_path
    item_type: Mapped[str] = mapped_column(String(16))  # recording | file | voiceprint | attempt
    recording_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Job-private intermediate data (float32 vectors of a voiceprint job, needed by the flip report).
    # Never exported; cleared when the job finishes.
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
