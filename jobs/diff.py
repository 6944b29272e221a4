"""What would flip: the report a job leaves behind before anyone switches over.

Checks: every re-scored recording's stored verdict (before the job) against the new one, as counts
of transitions (``pass->fail``...) and, per check code, how many recordings start or stop failing it.

Voiceprint model change: with the new model's voiceprints (re-embedded enrollment audio) and the
re-embedded audio of past verification attempts,

* decisions: each past attempt is scored again -- new probe vector against the user's new
  voiceprint, the new model's thresholds, AS-norm when enough other new voiceprints exist to form a
  cohort (as the service does with enrolled cohorts), else raw cosine -- and compared with the
  decision stored at the time;
* voice-search links: pairs of re-embedded users whose voiceprints are within the search threshold,
  under the old model (old vectors, old threshold) and under the new one; links gained and lost.
  Only users re-embedded by the job are compared (a subset job compares within its subset).

Thresholds come from the model registry's calibration, else ``voiceprint.thresholds`` in settings,
each for its exact model id (a model without thresholds is reported as unavailable, never guessed).
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.errors import SonggateError
from core.settings import Settings
from jobs.sessions import reader
from jobs.tables import JobItem

log = logging.getLogger("songgate.jobs.diff")
CHUNK = 2000
EXAMPLES = 10


# --- checks ---------------------------------------------------------------------------------------


def checks_flips(factory: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    """Verdict transitions of a job's recordings (stored report before the job -> new report)."""
    transitions: collections.Counter[str] = collections.Counter()
    started: collections.Counter[str] = collections.Counter()
    stopped: collections.Counter[str] = collections.Counter()
    examples: list[dict[str, Any]] = []
    compared = no_previous = 0
    for result, key in _iter_results(factory, job_id, item_types=("recording", "file")):
        checks = (result or {}).get("checks")
        if not checks:
            continue
        prev = checks.get("previous")
        if prev is None:
            no_previous += 1
            continue
        compared += 1
        old, new = prev.get("verdict"), checks.get("verdict")
        transitions[f"{old}->{new}"] += 1
        if old != new and len(examples) < EXAMPLES:
            examples.append({"item": key, "from": old, "to": new})
        was, now = set(prev.get("failed_checks") or []), set(checks.get("failed_checks") or [])
        started.update(now - was)
        stopped.update(was - now)
    changed = sum(n for t, n in transitions.items() if t.split("->")[0] != t.split("->")[1])
    return {
        "compared": compared,
        "changed": changed,
        "transitions": dict(sorted(transitions.items())),
        "started_failing": dict(sorted(started.items())),
        "stopped_failing": dict(sorted(stopped.items())),
        "no_previous_report": no_previous,
        "examples": examples,
    }


def _iter_results(factory: sessionmaker[Session], job_id: str, *, item_types: tuple[str, ...]) -> Any:
    reads = reader(factory)
    last = -1
    while True:
        with reads() as s:
            rows = s.execute(
                select(JobItem.seq, JobItem.item_key, JobItem.result)
                .where(
                    JobItem.job_id == job_id,
                    JobItem.status == "done",
                    JobItem.seq > last,
                    JobItem.item_type.in_(item_types),
                )
                .order_by(JobItem.seq)
                .limit(CHUNK)
            ).all()
        if not rows:
            return
        for r in rows:
            yield r.result, r.item_key
        last = rows[-1].seq


# --- voiceprints ----------------------------------------------------------------------------------


def model_thresholds(model_id: str, settings: Settings) -> Any:
    """The decision thresholds of ``model_id`` exactly as the voiceprint service picks them
    (:func:`voiceprint.service.thresholds_for`: registry calibration for that id, else settings).

    Raises ThresholdUnavailable when neither has them for this exact id.
    """
    from voiceprint.service import thresholds_for

    return thresholds_for(model_id, settings)


def _vec(payload: bytes | None) -> np.ndarray | None:
    if payload is None:
        return None
    return np.frombuffer(payload, dtype="<f4").astype(np.float32)


def _links(
    users: list[str], x: np.ndarray, *, model_id: str, threshold: float, k: int, settings: Settings
) -> set[tuple[str, str]]:
    """Unordered user pairs within ``threshold`` (cosine), found like the service's voice search:
    the k nearest neighbours of each voiceprint in a :class:`voiceprint.search.VoiceIndex`."""
    from voiceprint.search import IndexParams, VoiceIndex

    if len(users) < 2:
        return set()
    index = VoiceIndex(model_id, x.shape[1], IndexParams.from_settings(settings.voiceprint))
    index.upsert(users, users, x)
    out: set[tuple[str, str]] = set()
    for start in range(0, len(users), 1024):
        block = users[start : start + 1024]
        hits = index.search(x[start : start + 1024], k=min(k + 1, len(users)))
        for user, row in zip(block, hits, strict=True):
            for h in row:
                if h.user_id != user and h.score >= threshold:
                    out.add((min(user, h.user_id), max(user, h.user_id)))
    return out


def voiceprint_flips(
    factory: sessionmaker[Session], job_id: str, *, new_model_id: str, settings: Settings
) -> dict[str, Any]:
    """Past decisions and voice-search links that would flip under ``new_model_id``.

    Also stores on each attempt item's result its would-be decision (``new_decision``...).
    """
    from voiceprint.scoring import as_unit_vectors
    from voiceprint.tables import Embedding, Voiceprint, vector_from_bytes

    vs = settings.voiceprint
    # 1. New voiceprint vectors (job payloads), keyed by the OLD voiceprint id they replace.
    new_by_old: dict[str, np.ndarray] = {}
    vp_failed = 0
    with reader(factory)() as s:
        for r in s.execute(
            select(JobItem.item_key, JobItem.status, JobItem.payload).where(
                JobItem.job_id == job_id, JobItem.item_type == "voiceprint"
            )
        ):
            vec = _vec(r.payload)
            if r.status == "done" and vec is not None:
                new_by_old[r.item_key.removeprefix("vp:")] = vec
            elif r.status == "failed":
                vp_failed += 1
        # 2. The old vectors of the same voiceprints.
        old: dict[str, tuple[str, str, np.ndarray]] = {}  # old vp id -> (user, old model, vector)
        ids = list(new_by_old)
        for i in range(0, len(ids), CHUNK):
            rows = s.execute(
                select(
                    Voiceprint.id,
                    Voiceprint.user_id,
                    Voiceprint.model_id,
                    Embedding.vector,
                    Embedding.dimension,
                )
                .join(
                    Embedding, (Embedding.voiceprint_id == Voiceprint.id) & (Embedding.kind == "voiceprint")
                )
                .where(Voiceprint.id.in_(ids[i : i + CHUNK]))
            ).all()
            for row in rows:
                old[row.id] = (row.user_id, row.model_id, vector_from_bytes(row.vector, row.dimension))
    summary: dict[str, Any] = {
        "new_model_id": new_model_id,
        "voiceprints": {"reembedded": len(new_by_old), "failed": vp_failed},
    }

    new_thr, new_thr_error = _try_thresholds(new_model_id, settings)

    # 3. Voice-search links, per old model.
    links: dict[str, Any] = {}
    by_model: dict[str, list[str]] = collections.defaultdict(list)
    for vp_id, (_, model, _) in old.items():
        by_model[model].append(vp_id)
    for model, vp_ids in sorted(by_model.items()):
        old_thr, old_err = _try_thresholds(model, settings)
        if old_thr is None or new_thr is None:
            links[model] = {"unavailable": old_err or new_thr_error}
            continue
        users = [old[v][0] for v in vp_ids]
        before = _links(
            users,
            as_unit_vectors(np.stack([old[v][2] for v in vp_ids])),
            model_id=model,
            threshold=old_thr.search,
            k=vs.search_k,
            settings=settings,
        )
        after = _links(
            users,
            as_unit_vectors(np.stack([new_by_old[v] for v in vp_ids])),
            model_id=new_model_id,
            threshold=new_thr.search,
            k=vs.search_k,
            settings=settings,
        )
        gained, lost = sorted(after - before), sorted(before - after)
        links[model] = {
            "users": len(users),
            "threshold_old": old_thr.search,
            "threshold_new": new_thr.search,
            "links_old": len(before),
            "links_new": len(after),
            "gained": len(gained),
            "lost": len(lost),
            "examples_gained": [list(p) for p in gained[:EXAMPLES]],
            "examples_lost": [list(p) for p in lost[:EXAMPLES]],
        }
    summary["search_links"] = links

    # 4. Past verification decisions.
    summary["decisions"] = _decision_flips(
        factory,
        job_id,
        new_by_old=new_by_old,
        old=old,
        new_model_id=new_model_id,
        thresholds=new_thr,
        thresholds_error=new_thr_error,
        settings=settings,
    )
    return summary


def _try_thresholds(model_id: str, settings: Settings) -> tuple[Any, str | None]:
    try:
        return model_thresholds(model_id, settings), None
    except SonggateError as exc:
        return None, f"{exc.code}: {exc.detail}"


def _decision_flips(
    factory: sessionmaker[Session],
    job_id: str,
    *,
    new_by_old: dict[str, np.ndarray],
    old: dict[str, tuple[str, str, np.ndarray]],
    new_model_id: str,
    thresholds: Any,
    thresholds_error: str | None,
    settings: Settings,
) -> dict[str, Any]:
    from voiceprint.scoring import Cohort, ModelVector, as_unit_vectors, score_verification
    from voiceprint.tables import VerificationAttempt

    vs = settings.voiceprint
    out: dict[str, Any] = {
        "rescored": 0,
        "flipped": 0,
        "transitions": {},
        "audio_unavailable": 0,
        "no_new_voiceprint": 0,
        "failed": 0,
        "cohort_size": 0,
    }
    if thresholds is None:
        out["unavailable"] = thresholds_error
    # An enrolled-style cohort, as the service forms one from enrolled voiceprints: up to
    # cohort_max_size of the job's new voiceprints (+1 so that excluding the claimant keeps the size).
    pool_ids = sorted(new_by_old)[: vs.cohort_max_size + 1]
    pool_users = np.array([old[v][0] if v in old else "" for v in pool_ids], dtype=object)
    pool = as_unit_vectors(np.stack([new_by_old[v] for v in pool_ids])) if pool_ids else None
    use_cohort = pool is not None and vs.cohort_source in ("auto", "enrolled")
    shared = (
        Cohort(new_model_id, pool[: vs.cohort_max_size], "job") if use_cohort and pool is not None else None
    )
    in_pool = set(pool_users.tolist())
    transitions: collections.Counter[str] = collections.Counter()
    reads = reader(factory)
    last = -1
    while True:
        with reads() as s:
            items = s.execute(
                select(
                    JobItem.seq,
                    JobItem.item_key,
                    JobItem.status,
                    JobItem.error_code,
                    JobItem.payload,
                    JobItem.result,
                )
                .where(JobItem.job_id == job_id, JobItem.item_type == "attempt", JobItem.seq > last)
                .order_by(JobItem.seq)
                .limit(CHUNK)
            ).all()
            if not items:
                break
            last = items[-1].seq
            attempt_ids = [r.item_key.removeprefix("attempt:") for r in items]
            attempts = {
                a.id: a
                for a in s.scalars(select(VerificationAttempt).where(VerificationAttempt.id.in_(attempt_ids)))
            }
        updates = []
        for r, attempt_id in zip(items, attempt_ids, strict=True):
            if r.status == "failed":
                out["audio_unavailable" if r.error_code == "file_not_found" else "failed"] += 1
                continue
            a = attempts.get(attempt_id)
            probe = _vec(r.payload)
            if r.status != "done" or a is None or probe is None:
                continue
            new_vp = new_by_old.get(a.voiceprint_id or "")
            if new_vp is None:
                out["no_new_voiceprint"] += 1
                continue
            if thresholds is None:
                continue
            cohort = shared
            if use_cohort and pool is not None and a.user_id in in_pool:  # never normalize against oneself
                keep = pool_users != a.user_id
                cohort = Cohort(new_model_id, pool[keep][: vs.cohort_max_size], "job")
            if cohort is not None and len(cohort) < vs.cohort_min_size:
                cohort = None
            res = score_verification(
                ModelVector(new_model_id, probe),
                ModelVector(new_model_id, new_vp),
                thresholds=thresholds,
                cohort=cohort,
                top_n=vs.asnorm_top_n,
                min_cohort=vs.cohort_min_size,
            )
            out["rescored"] += 1
            out["cohort_size"] = max(out["cohort_size"], res.cohort_size)
            transitions[f"{a.decision}->{res.decision}"] += 1
            result = dict(r.result or {})
            result.update(
                {
                    "user_id": a.user_id,
                    "old_model_id": a.model_id,
                    "old_decision": a.decision,
                    "old_score": a.score,
                    "new_decision": res.decision,
                    "new_score": round(res.score, 6),
                    "new_normalized_score": None
                    if res.normalized_score is None
                    else round(res.normalized_score, 6),
                    "new_threshold": res.threshold,
                    "new_method": res.method,
                    "flipped": a.decision != res.decision,
                }
            )
            updates.append((r.seq, result))
        if updates:
            with factory() as s, s.begin():
                for seq, result in updates:
                    s.execute(
                        update(JobItem)
                        .where(JobItem.job_id == job_id, JobItem.seq == seq)
                        .values(result=result)
                    )
    out["transitions"] = dict(sorted(transitions.items()))
    out["flipped"] = sum(n for t, n in transitions.items() if len(set(t.split("->"))) == 2)
    return out


def flips_summary_lines(flips: dict[str, Any]) -> list[str]:
    """Human-readable lines for the end-of-job summary."""
    lines: list[str] = []
    checks = flips.get("checks")
    if checks and not checks["compared"]:
        lines.append("checks: no stored reports to compare with (manifest files)")
    elif checks:
        lines.append(
            f"checks: {checks['changed']} of {checks['compared']} verdicts would change "
            f"{checks['transitions']}"
        )
        if checks.get("started_failing"):
            lines.append(f"  newly failing checks: {checks['started_failing']}")
        if checks.get("stopped_failing"):
            lines.append(f"  no longer failing: {checks['stopped_failing']}")
    vp = flips.get("voiceprint")
    if vp:
        d = vp["decisions"]
        lines.append(
            f"voiceprint -> {vp['new_model_id']}: {vp['voiceprints']['reembedded']} voiceprints re-embedded, "
            f"{vp['voiceprints']['failed']} failed"
        )
        if d.get("unavailable"):
            lines.append(f"  decisions: unavailable ({d['unavailable']})")
        else:
            lines.append(
                f"  decisions: {d['flipped']} of {d['rescored']} past decisions would flip {d['transitions']}"
                f" (audio unavailable: {d['audio_unavailable']}, no new voiceprint: {d['no_new_voiceprint']})"
            )
        for model, link in vp["search_links"].items():
            if "unavailable" in link:
                lines.append(f"  search links ({model}): unavailable ({link['unavailable']})")
            else:
                lines.append(
                    f"  search links ({model} -> new): {link['links_old']} -> {link['links_new']}, "
                    f"gained {link['gained']}, lost {link['lost']}"
                )
    return lines
