"""Switch-over after a voiceprint re-embedding job: activate the staged voiceprints of the new model.

A staged version is activated only if the voiceprint it was re-embedded from is still its user's
active one (the user did not re-enroll or delete it since the job); stale ones are counted and left
staged (rerun the job for them). The old-model voiceprints stay active unless ``retire_old``: the
service verifies with the model it is configured with, so keeping them allows a rollback.
Each activation records a search-index change (``voiceprint.search.record_change``), as enrollment does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.writeback import STAGED

CHUNK = 500


def switch_over(
    factory: sessionmaker[Session],
    model_id: str,
    *,
    retire_old: bool = False,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Activate every staged voiceprint of ``model_id``; returns counts."""
    from voiceprint.search import record_change
    from voiceprint.tables import Voiceprint

    now = now or dt.datetime.now(dt.UTC)
    counts = {"activated": 0, "stale": 0, "already_active": 0, "retired": 0}
    last = ""
    while True:
        with factory() as s, s.begin():
            staged = list(
                s.scalars(
                    select(Voiceprint)
                    .where(Voiceprint.model_id == model_id, Voiceprint.status == STAGED, Voiceprint.id > last)
                    .order_by(Voiceprint.id)
                    .limit(CHUNK)
                )
            )
            if not staged:
                break
            last = staged[-1].id
            for vp in staged:
                source = s.get(Voiceprint, (vp.stats or {}).get("source_voiceprint_id", ""))
                if source is None or not source.active:
                    counts["stale"] += 1
                    continue
                current = s.scalar(
                    select(Voiceprint.id).where(
                        Voiceprint.user_id == vp.user_id,
                        Voiceprint.model_id == model_id,
                        Voiceprint.active.is_(True),
                    )
                )
                if current is not None:
                    counts["already_active"] += 1
                    continue
                counts["activated"] += 1
                if retire_old:
                    counts["retired"] += 1
                if dry_run:
                    continue
                vp.status, vp.active, vp.activated_at = "active", True, now
                s.flush()
                record_change(s, model_id, vp.user_id, vp.id)
                if retire_old:
                    source.active, source.status, source.superseded_at = False, "superseded", now
                    s.flush()
                    record_change(s, source.model_id, source.user_id, None)
    return counts
