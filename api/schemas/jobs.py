"""Request/response schemas for batch jobs (``/v1/jobs``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

What = Literal["checks", "effects", "voiceprint"]


class JobCreate(BaseModel):
    """``POST /v1/jobs``: what to re-score, over which items, how."""

    what: list[What] = Field(min_length=1, max_length=3, description="checks, effects and/or voiceprint")
    where: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="KEY=VALUE selections over stored recordings/voiceprints (see docs/batch.md)",
    )
    manifest: str | None = Field(
        None, max_length=4096, description="Server-side manifest file (CSV/JSONL/Parquet)"
    )
    kind: Literal["mix", "vocal"] = Field("mix", description="Kind of manifest files without a kind column")
    dry_run: bool = Field(False, description="Report what would change; write nothing back")
    embedder: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:@-]+$",
        description="Voiceprint model to re-embed with (default: the configured backend)",
    )
    engine: Literal["local", "ray"] = "local"
    workers: int | None = Field(None, ge=0, le=256, description="Default: settings jobs.api_workers")
    ray_address: str | None = Field(None, max_length=300)
    output: str | None = Field(None, max_length=4096, description="Server-side .jsonl/.parquet output file")
    job_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$",
        description="Create under this id, or resume this job",
    )

    model_config = {"extra": "forbid"}


class JobOut(BaseModel):
    id: str
    what: list[str]
    source: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    dry_run: bool
    total: int
    done: int
    failed: int
    pending: int
    progress: float = Field(description="Finished share of the items, 0..1")
    errors: dict[str, int] = Field(description="Failed items by error code")
    items_per_s: float | None
    eta_s: float | None
    error: str | None
    summary: dict[str, Any]
    params: dict[str, Any]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobList(BaseModel):
    items: list[JobOut]
