"""Write a finished item back to the domain tables (idempotent; inside the runner's transaction).

* checks: ``UPDATE recordings SET report, report_version`` (the same columns the upload path fills);
  the report stored before is read first so the result row can say what changed.
* effects: each artifact replaces the row of the same (recording, kind, params_key), then
  :func:`effects.store.save_artifacts` stores it (that function alone keeps existing rows).
* voiceprint: the enrollment utterances' new-model embeddings become a ``staged`` voiceprint
  version of the new model id (adapter below: the voiceprint service has no re-embedding function).
  The old voiceprint stays active; :mod:`jobs.switchover` activates staged versions.

Each function is safe to call again for the same item: it replaces, never appends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from db.base import new_id
from db.tables import Recording

STAGED = "staged"


def previous_report(session: Session, recording_id: str) -> dict[str, Any] | None:
    """Summary (verdict, settings version, failed/warned check codes) of the stored report, or None
    when the recording no longer exists."""
    from jobs.items import report_summary

    row = session.execute(
        select(Recording.report, Recording.report_version).where(Recording.id == recording_id)
    ).first()
    if row is None:
        return None
    summary = report_summary(row.report or {})
    summary["settings_version"] = row.report_version
    return summary


def write_report(
    session: Session, recording_id: str, report: dict[str, Any], *, default_version: str
) -> None:
    session.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(report=report, report_version=str(report.get("settings_version", default_version)))
    )


def replace_artifacts(session: Session, recording_id: str, artifacts: list[Any]) -> None:
    """Store ``artifacts`` of ``recording_id``, replacing any stored with the same (kind, params_key)."""
    if not artifacts:
        return
    from effects.store import save_artifacts
    from effects.tables import EffectArtifact

    keys = [(a.kind, a.params_key) for a in artifacts]
    session.execute(
        delete(EffectArtifact).where(
            EffectArtifact.recording_id == recording_id,
            tuple_(EffectArtifact.kind, EffectArtifact.params_key).in_(keys),
        )
    )
    session.flush()
    save_artifacts(session, recording_id, artifacts)


# --- voiceprints ----------------------------------------------------------------------------------


def voiceprint_inputs(session: Session, voiceprint_id: str) -> list[tuple[str, str]]:
    """(utterance id, blob sha256) of a voiceprint's enrollment utterances, oldest first."""
    from voiceprint.tables import EnrollmentUtterance

    rows = session.execute(
        select(EnrollmentUtterance.id, EnrollmentUtterance.sha256)
        .where(EnrollmentUtterance.voiceprint_id == voiceprint_id)
        .order_by(EnrollmentUtterance.created_at, EnrollmentUtterance.id)
    ).all()
    return [(r.id, r.sha256) for r in rows]


def stage_voiceprint(
    session: Session,
    *,
    source_id: str,
    model_id: str,
    vectors: dict[str, np.ndarray],
    job_id: str,
    now: dt.datetime,
) -> tuple[str, np.ndarray]:
    """Create (or replace) the staged new-model version of voiceprint ``source_id``.

    Parameters
    ----------
    source_id : the old-model voiceprint whose utterances were re-embedded
    model_id : the new model's exact id
    vectors : utterance id -> np.ndarray [shape=(d,)], float32 (the new model's embeddings)

    Returns
    -------
    (voiceprint id, voiceprint vector [shape=(d,)], float32 unit norm)
    """
    from voiceprint.enrollment import voiceprint_stats
    from voiceprint.scoring import as_unit_vectors, mean_voiceprint
    from voiceprint.tables import Embedding, EnrollmentUtterance, Voiceprint, vector_to_bytes

    source = session.get(Voiceprint, source_id)
    if source is None:
        raise LookupError(f"voiceprint {source_id} no longer exists")
    ids = [u for u in vectors]
    unit = as_unit_vectors(np.stack([vectors[u] for u in ids]))
    vp_vector = mean_voiceprint(unit)
    utterances = {
        u.id: u for u in session.scalars(select(EnrollmentUtterance).where(EnrollmentUtterance.id.in_(ids)))
    }
    qualities = [dict(utterances[u].quality or {}) for u in ids if u in utterances]
    stats = {
        **voiceprint_stats(unit, vp_vector, qualities),
        "source_voiceprint_id": source.id,
        "source_model_id": source.model_id,
        "staged_by_job": job_id,
    }
    existing = [
        v
        for v in session.scalars(
            select(Voiceprint).where(Voiceprint.user_id == source.user_id, Voiceprint.model_id == model_id)
        )
    ]
    staged = next(
        (
            v
            for v in existing
            if v.status == STAGED and (v.stats or {}).get("source_voiceprint_id") == source.id
        ),
        None,
    )
    if staged is None:
        staged = Voiceprint(
            id=new_id("vp"),
            user_id=source.user_id,
            model_id=model_id,
            version=max((v.version for v in existing), default=0) + 1,
            status=STAGED,
            active=False,
            n_utterances=0,
            stats={},
            created_at=now,
        )
        session.add(staged)
        session.flush()
    else:  # a re-run: replace the embeddings and utterance copies, keep the version
        session.execute(delete(Embedding).where(Embedding.voiceprint_id == staged.id))
        session.execute(delete(EnrollmentUtterance).where(EnrollmentUtterance.voiceprint_id == staged.id))
    staged.n_utterances = len(ids)
    staged.stats = stats
    dim = int(unit.shape[1])
    for i, u in enumerate(ids):
        src = utterances.get(u)
        if src is None:
            continue
        # The staged version owns copies of the utterance rows (the blobs are content-addressed and
        # shared), so it survives on its own when the old version is deleted after switch-over.
        copy = EnrollmentUtterance(
            id=new_id("utt"),
            voiceprint_id=staged.id,
            user_id=src.user_id,
            sha256=src.sha256,
            size_bytes=src.size_bytes,
            duration_s=src.duration_s,
            speech_s=src.speech_s,
            quality=dict(src.quality or {}),
            created_at=src.created_at,
        )
        session.add(copy)
        session.flush()
        session.add(
            Embedding(
                id=new_id("emb"),
                voiceprint_id=staged.id,
                utterance_id=copy.id,
                kind="utterance",
                model_id=model_id,
                dimension=dim,
                vector=vector_to_bytes(unit[i]),
                created_at=now,
            )
        )
    session.add(
        Embedding(
            id=new_id("emb"),
            voiceprint_id=staged.id,
            utterance_id=None,
            kind="voiceprint",
            model_id=model_id,
            dimension=dim,
            vector=vector_to_bytes(vp_vector),
            created_at=now,
        )
    )
    session.flush()
    return staged.id, vp_vector
