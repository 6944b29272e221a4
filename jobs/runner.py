"""Job orchestration: create a job (snapshot its items), run it on an engine, commit results with
idempotent write-backs, report progress, survive interruption, and finish with a summary.

Exactly-once results: an item's result row, its write-back (recording report, artifacts, staged
voiceprint) and the job's counters commit in ONE transaction, guarded by ``status = 'pending'``.
Killing the runner at any point (Ctrl-C, SIGTERM, SIGKILL) loses at most the uncommitted items,
which are still ``pending`` and are redone when the job is resumed with its id; an item already
committed is never applied again. The settings that shape results (limits, check thresholds,
effect parameters) are stored with the job when it is created, so a resumed job grades its
remaining items exactly like the first ones, whatever the environment says now.

Only short transactions are used (SQLite takes its write lock at BEGIN), and the runner is the only
writer: workers compute, the runner writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from audio.checks.config import CheckSettings
from audio.limits import AudioLimits
from core.clock import Clock, SystemClock
from core.errors import NotFound, SonggateError
from core.settings import Settings
from db.base import new_id
from db.blobstore import LocalBlobStore
from db.tables import Recording
from effects.config import EffectSettings
from jobs import diff as diff_mod
from jobs import selection, writeback
from jobs.engines import Engine
from jobs.errors import (
    InvalidSelection,
    JobAlreadyRunning,
    JobFinished,
    JobMismatch,
    JobNotFound,
    JobsError,
    ManifestError,
)
from jobs.items import WHATS, ItemTask, Outcome, WorkerSpec, error_code_of, load_embedder
from jobs.output import output_format, write_output
from jobs.progress import NullProgress, Progress
from jobs.sessions import reader
from jobs.tables import Job, JobItem
from voiceprint.config import VoiceprintSettings

log = logging.getLogger("songgate.jobs")
HOST = socket.gethostname()
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
ENGINES = ("local", "ray")
INSERT_CHUNK = 1000


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """What a job does; fixed when it is created (a resumed job must not change it)."""

    what: tuple[str, ...]
    where: tuple[str, ...] = ()
    manifest: str | None = None
    kind: str = "mix"
    dry_run: bool = False
    embedder: str | None = None


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run executes; may differ between the first run and a resume."""

    engine: str | None = None  # None: "local" for a new job, the stored one on resume
    workers: int | None = None
    output: str | None = None
    ray_address: str | None = None


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE (a CursorResult's rowcount; typed loosely by SQLAlchemy)."""
    return int(result.rowcount)


def normalize_what(what: Iterable[str]) -> tuple[str, ...]:
    parts = [w.strip().lower() for item in what for w in str(item).split(",") if w.strip()]
    bad = [w for w in parts if w not in WHATS]
    if bad or not parts:
        raise InvalidSelection(
            f"--what takes a comma-separated subset of {', '.join(WHATS)}; got {parts or 'nothing'}"
        )
    return tuple(w for w in WHATS if w in parts)  # canonical order, no duplicates


def _validate(request: JobRequest, options: RunOptions) -> None:
    if request.manifest and request.where:
        raise InvalidSelection("give either --manifest or --where, not both")
    if request.manifest and "voiceprint" in request.what:
        raise InvalidSelection("voiceprints are re-embedded from the database; a manifest lists audio files")
    if request.kind not in selection.KINDS:
        raise InvalidSelection("kind must be mix or vocal")
    if (options.engine or "local") not in ENGINES:
        raise InvalidSelection(f"--engine must be one of {', '.join(ENGINES)}")
    if options.output:
        output_format(options.output)
    selection.check_conditions(selection.parse_where(request.where), what=request.what)


def _identity(params: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    return {
        "what": list(params["what"]),
        "where": list(params.get("where") or []),
        "manifest": params.get("manifest"),
        "kind": params.get("kind"),
        "dry_run": bool(dry_run),
        "embedder": params.get("embedder"),
    }


# --- creating a job --------------------------------------------------------------------------------


def create_job(
    factory: sessionmaker[Session],
    settings: Settings,
    request: JobRequest,
    *,
    options: RunOptions | None = None,
    job_id: str | None = None,
    materialize_now: bool = True,
    clock: Clock | None = None,
) -> tuple[str, bool]:
    """Create a job (or find the one named ``job_id``); returns ``(job_id, created)``.

    With ``materialize_now`` the item list is written in the same call (one transaction); otherwise
    the first :func:`run_job` writes it (the API answers before a large selection is read).

    Raises
    ------
    InvalidSelection, ManifestError : a bad request.
    JobMismatch : ``job_id`` exists with another request.
    """
    options = options or RunOptions()
    clock = clock or SystemClock()
    if job_id is not None and not JOB_ID_RE.match(job_id):
        raise InvalidSelection("a job id is 1-40 characters: letters, digits, '_', '.', '-'")
    request = dataclasses.replace(request, what=normalize_what(request.what))
    if request.manifest:
        manifest = Path(request.manifest).expanduser().resolve()
        if not manifest.is_file():
            raise ManifestError(f"manifest not found: {manifest}")
        request = dataclasses.replace(request, manifest=str(manifest))
    _validate(request, options)
    embedder = request.embedder or (settings.voiceprint.backend if "voiceprint" in request.what else None)
    request = dataclasses.replace(request, embedder=embedder)
    params: dict[str, Any] = {
        "what": list(request.what),
        "where": list(request.where),
        "manifest": request.manifest,
        "kind": request.kind,
        "embedder": embedder,
        "settings": {
            "limits": settings.limits.model_dump(mode="json"),
            "checks": settings.checks.model_dump(mode="json"),
            "effects": settings.effects.model_dump(mode="json"),
            "voiceprint": settings.voiceprint.model_dump(mode="json"),
        },
        "checks_version": settings.checks.version,
        "engine": options.engine or "local",
        "workers": options.workers,
        "output": options.output,
        "ray_address": options.ray_address,
        "materialized": False,
    }
    if job_id is not None:
        with reader(factory)() as s:
            existing = s.get(Job, job_id)
            if existing is not None:
                if _identity(existing.params, existing.dry_run) != _identity(params, request.dry_run):
                    raise JobMismatch(
                        f"job {job_id} exists with other parameters; resume it without them "
                        f"or choose another id",
                        job_id=job_id,
                    )
                return job_id, False
    if "voiceprint" in request.what:
        # Fail fast on a model that cannot load, and learn its exact id: the selection needs it.
        model = load_embedder(
            embedder or "", model_dir=str(settings.resolved_model_dir), settings=settings.voiceprint
        )
        params["target_model_id"] = str(model.model_id)
        params["target_dimension"] = int(model.dimension)
        del model
    job_id = job_id or new_id("job")
    with factory() as s, s.begin():
        s.add(
            Job(
                id=job_id,
                what=",".join(request.what),
                source="manifest" if request.manifest else "db",
                params=params,
                status="queued",
                dry_run=request.dry_run,
                total=0,
                done=0,
                failed=0,
                errors={},
                summary={},
                cancel_requested=False,
                created_at=clock.now(),
            )
        )
    if materialize_now:
        materialize(factory, job_id)
    return job_id, True


def _item_rows(session: Session, params: dict[str, Any]) -> Iterator[selection.ItemRow]:
    what = params["what"]
    if params.get("manifest"):
        yield from selection.read_manifest(params["manifest"], default_kind=params.get("kind") or "mix")
        return
    conditions = selection.parse_where(params.get("where") or [])
    if "checks" in what or "effects" in what:
        yield from selection.select_recordings(session, conditions)
    if "voiceprint" in what:
        yield from selection.select_voiceprints(
            session, conditions, target_model_id=params["target_model_id"]
        )


def materialize(factory: sessionmaker[Session], job_id: str) -> int:
    """Write the job's item list once (one transaction; a crash leaves none, so this just reruns)."""
    with factory() as s, s.begin():
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.params.get("materialized"):
            return job.total
        seq = 0
        buf: list[dict[str, Any]] = []
        for row in _item_rows(s, job.params):
            buf.append(
                {
                    "job_id": job_id,
                    "seq": seq,
                    "item_key": row.key,
                    "item_type": row.item_type,
                    "recording_id": row.recording_id,
                    "path": row.path,
                    "kind": row.kind,
                    "status": "pending",
                    "attempts": 0,
                }
            )
            seq += 1
            if len(buf) >= INSERT_CHUNK:
                s.execute(insert(JobItem), buf)
                buf = []
        if buf:
            s.execute(insert(JobItem), buf)
        job.total = seq
        job.params = {**job.params, "materialized": True}
    return seq


# --- liveness --------------------------------------------------------------------------------------


def runner_alive(job: Job, *, lease_s: float, now: dt.datetime) -> bool:
    """Is the runner recorded on ``job`` still alive? On this host: its process exists (not a zombie)
    and is older than its last heartbeat (a recycled pid is younger). Elsewhere: a fresh heartbeat."""
    if job.runner_host == HOST and job.runner_pid:
        import psutil

        try:
            proc = psutil.Process(job.runner_pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            beat = job.heartbeat_at.timestamp() if job.heartbeat_at else time.time()
            return proc.create_time() <= beat + 1.0
        except psutil.Error:
            return False
    if job.heartbeat_at is None:
        return False
    return (now - job.heartbeat_at).total_seconds() < lease_s


# --- running a job ---------------------------------------------------------------------------------


def make_engine(
    name: str, spec: WorkerSpec, *, workers: int, settings: Settings, ray_address: str | None
) -> Engine:
    js = settings.jobs
    if name == "local":
        from jobs.engines.local import LocalEngine

        return LocalEngine(
            spec,
            workers=workers,
            max_in_flight_per_worker=js.max_in_flight_per_worker,
            max_attempts=js.max_item_attempts,
        )
    if name == "ray":
        from jobs.engines.ray_engine import RayEngine

        return RayEngine(
            spec,
            workers=max(1, workers),
            address=ray_address,
            batch_size=js.ray_batch_size,
            chunk=js.ray_chunk,
            local_num_cpus=js.ray_local_num_cpus,
            object_store_mb=js.ray_object_store_mb,
            num_gpus_per_actor=js.ray_num_gpus_per_actor,
        )
    raise InvalidSelection(f"unknown engine {name!r}")


def worker_spec(params: dict[str, Any], settings: Settings) -> WorkerSpec:
    """The workers' settings: the snapshot stored with the job, not the current environment."""
    snap = params.get("settings") or {}
    try:
        limits = AudioLimits.model_validate(snap.get("limits") or {})
        checks = CheckSettings.model_validate(snap.get("checks") or {})
        effects = EffectSettings.model_validate(snap.get("effects") or {})
        voiceprint = VoiceprintSettings.model_validate(snap.get("voiceprint") or {})
    except ValueError as exc:
        raise JobsError(f"the job's stored settings no longer validate: {exc}") from exc
    return WorkerSpec(
        what=tuple(params["what"]),
        limits=limits,
        checks=checks,
        effects=effects,
        embedder=params.get("embedder"),
        model_dir=str(settings.resolved_model_dir),
        voiceprint=voiceprint,
    )


class JobRunner:
    """Runs one job to completion, interruption or cancellation. Use :func:`run_job`."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        job_id: str,
        *,
        options: RunOptions | None = None,
        progress: Progress | None = None,
        clock: Clock | None = None,
        stop_event: threading.Event | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.factory = factory
        self.reads = reader(factory)
        self.settings = settings
        self.job_id = job_id
        self.options = options
        self.progress = progress or NullProgress()
        self.clock = clock or SystemClock()
        self.stop_event = stop_event
        self.engine = engine
        self.blobs = LocalBlobStore(settings.resolved_blob_dir)
        self.params: dict[str, Any] = {}
        self.dry_run = False
        self._in_flight: dict[int, ItemTask] = {}
        self._beat_stop = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------
    def _acquire(self) -> Job | None:
        """Mark the job running under this process; None when it is already done."""
        now = self.clock.now()
        with self.factory() as s, s.begin():
            job = s.get(Job, self.job_id, with_for_update=True)
            if job is None:
                raise JobNotFound(f"no job {self.job_id}", job_id=self.job_id)
            if job.status == "cancelled":
                raise JobFinished(f"job {self.job_id} was cancelled", job_id=self.job_id)
            if job.status == "done":
                s.expunge(job)
                return None
            if job.status == "running" and runner_alive(job, lease_s=self.settings.jobs.lease_s, now=now):
                raise JobAlreadyRunning(
                    f"job {self.job_id} is running on {job.runner_host} (pid {job.runner_pid})",
                    job_id=self.job_id,
                )
            params = dict(job.params)
            if self.options is not None:
                for field in ("engine", "workers", "output", "ray_address"):
                    value = getattr(self.options, field)
                    if value is not None:
                        params[field] = value
            job.params = params
            job.status = "running"
            job.runner_host, job.runner_pid, job.heartbeat_at = HOST, os.getpid(), now
            job.started_at = job.started_at or now
            job.finished_at = None
            job.error = None
            s.flush()
            s.expunge(job)
            return job

    def _heartbeat(self) -> None:
        every = max(1.0, min(self.settings.jobs.lease_s / 4, 30.0))
        while not self._beat_stop.wait(every):
            try:
                with self.factory() as s, s.begin():
                    s.execute(
                        update(Job)
                        .where(Job.id == self.job_id, Job.runner_pid == os.getpid(), Job.status == "running")
                        .values(heartbeat_at=self.clock.now())
                    )
            except Exception as exc:  # a missed beat only shortens the lease
                log.warning("job heartbeat failed: %s", exc)

    def run(self) -> dict[str, Any]:
        job = self._acquire()
        if job is None:  # already done: nothing to redo; (re)write the output file if one is asked for
            if self.options is not None and self.options.output:
                self.params = {"output": self.options.output}
                output = self._write_output()
                with self.factory() as s, s.begin():
                    done = s.get(Job, self.job_id)
                    if done is not None:
                        done.summary = {**(done.summary or {}), "output": output}
            return self._finished_summary()
        self.params = job.params
        self.dry_run = job.dry_run
        beat = threading.Thread(target=self._heartbeat, name=f"job-heartbeat-{self.job_id}", daemon=True)
        beat.start()
        try:
            return self._run()
        except KeyboardInterrupt:
            self._set_status("interrupted")
            raise
        except BaseException as exc:
            self._set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._beat_stop.set()
            beat.join(timeout=5)

    def _run(self) -> dict[str, Any]:
        materialize(self.factory, self.job_id)
        counts = self._counts()
        spec = worker_spec(self.params, self.settings)
        workers = self.params.get("workers")
        workers = self.settings.jobs.default_workers if workers is None else int(workers)
        engine = self.engine or make_engine(
            self.params.get("engine") or "local",
            spec,
            workers=workers,
            settings=self.settings,
            ray_address=self.params.get("ray_address"),
        )
        self.engine = engine
        total, finished = counts["total"], counts["done"] + counts["failed"]
        self.progress.start(total=total, completed=finished, description=f"rescore {','.join(spec.what)}")
        reason: str | None = None
        processed = 0
        started = time.perf_counter()
        buffer: list[tuple[ItemTask | None, Outcome]] = []
        last_commit = time.monotonic()
        js = self.settings.jobs
        stream = engine.process(self._pending_tasks())
        try:
            try:
                for outcome in stream:
                    buffer.append((self._in_flight.pop(outcome.seq, None), outcome))
                    processed += 1
                    self.progress.advance(failed=outcome.status == "failed")
                    if (
                        len(buffer) >= js.commit_every
                        or time.monotonic() - last_commit >= js.commit_interval_s
                    ):
                        cancelled = self._commit(buffer, processed, started)
                        buffer, last_commit = [], time.monotonic()
                        if cancelled:
                            reason = "cancelled"
                            break
                    if self.stop_event is not None and self.stop_event.is_set():
                        reason = "interrupted"
                        break
            except KeyboardInterrupt:
                reason = "interrupted"
            finally:
                stream.close()  # stops the engine: queued items are dropped, they stay pending
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            self.progress.stop()
        if buffer:
            self._commit(buffer, processed, started)
        wall = time.perf_counter() - started
        run_stats = {
            "processed_this_run": processed,
            "wall_s": round(wall, 3),
            "items_per_s": round(processed / wall, 3) if wall > 0 else None,
            "engine": engine.name,
            "workers": engine.workers,
        }
        if reason is not None:
            # The file first, then the status: whoever sees the new status also finds the file.
            output = self._write_output()
            self._set_status(reason, summary={**run_stats, **({"output": output} if output else {})})
            return self._finished_summary()
        if self._counts()["pending"]:
            raise JobsError("the engine finished with items still pending; resume the job to retry them")
        self._finalize(run_stats)
        return self._finished_summary()

    # --- items ----------------------------------------------------------------------------------
    def _pending_tasks(self) -> Iterator[ItemTask]:
        """Pending items in seq order, read a chunk at a time in short transactions."""
        from voiceprint.tables import EnrollmentUtterance, VerificationAttempt

        last = -1
        chunk = self.settings.jobs.load_chunk
        while True:
            with self.reads() as s:
                rows = s.execute(
                    select(
                        JobItem.seq,
                        JobItem.item_key,
                        JobItem.item_type,
                        JobItem.recording_id,
                        JobItem.path,
                        JobItem.kind,
                    )
                    .where(JobItem.job_id == self.job_id, JobItem.status == "pending", JobItem.seq > last)
                    .order_by(JobItem.seq)
                    .limit(chunk)
                ).all()
                if not rows:
                    return
                rec_ids = [r.recording_id for r in rows if r.item_type == "recording"]
                recs = (
                    {
                        r.id: r
                        for r in s.execute(
                            select(Recording.id, Recording.sha256, Recording.kind).where(
                                Recording.id.in_(rec_ids)
                            )
                        )
                    }
                    if rec_ids
                    else {}
                )
                vp_ids = [r.item_key.removeprefix("vp:") for r in rows if r.item_type == "voiceprint"]
                utts: dict[str, list[tuple[str, str]]] = {}
                if vp_ids:
                    for u in s.execute(
                        select(
                            EnrollmentUtterance.voiceprint_id,
                            EnrollmentUtterance.id,
                            EnrollmentUtterance.sha256,
                        )
                        .where(EnrollmentUtterance.voiceprint_id.in_(vp_ids))
                        .order_by(EnrollmentUtterance.created_at, EnrollmentUtterance.id)
                    ):
                        utts.setdefault(u.voiceprint_id, []).append((u.id, str(self.blobs.path(u.sha256))))
                at_ids = [r.item_key.removeprefix("attempt:") for r in rows if r.item_type == "attempt"]
                audio = (
                    {
                        a.id: a.audio_sha256
                        for a in s.execute(
                            select(VerificationAttempt.id, VerificationAttempt.audio_sha256).where(
                                VerificationAttempt.id.in_(at_ids)
                            )
                        )
                    }
                    if at_ids
                    else {}
                )
            for r in rows:
                task = self._task(r, recs, utts, audio)
                self._in_flight[task.seq] = task
                yield task
            last = rows[-1].seq

    def _task(
        self,
        r: Any,
        recs: dict[str, Any],
        utts: dict[str, list[tuple[str, str]]],
        audio: dict[str, str | None],
    ) -> ItemTask:
        if r.item_type == "recording":
            rec = recs.get(r.recording_id)
            path = str(self.blobs.path(rec.sha256)) if rec is not None else None
            return ItemTask(r.seq, "recording", r.item_key, path=path, kind=rec.kind if rec else r.kind)
        if r.item_type == "voiceprint":
            return ItemTask(
                r.seq, "voiceprint", r.item_key, inputs=tuple(utts.get(r.item_key.removeprefix("vp:"), ()))
            )
        if r.item_type == "attempt":
            sha = audio.get(r.item_key.removeprefix("attempt:"))
            return ItemTask(r.seq, "attempt", r.item_key, path=str(self.blobs.path(sha)) if sha else None)
        return ItemTask(r.seq, r.item_type, r.item_key, path=r.path, kind=r.kind)

    # --- committing -----------------------------------------------------------------------------
    def _commit(self, buffer: list[tuple[ItemTask | None, Outcome]], processed: int, started: float) -> bool:
        """Commit a batch of outcomes; returns True when cancellation was requested."""
        now = self.clock.now()
        with self.factory() as s, s.begin():
            done = failed = 0
            errors: Counter[str] = Counter()
            for task, outcome in buffer:
                applied = self._apply(s, task, outcome, now)
                if applied is None:
                    continue
                status, code = applied
                if status == "done":
                    done += 1
                else:
                    failed += 1
                    errors[code or "internal_error"] += 1
            job = s.get(Job, self.job_id, with_for_update=True)
            if job is None:
                raise JobNotFound(f"job {self.job_id} was deleted")
            job.done += done
            job.failed += failed
            if errors:
                merged = Counter(job.errors or {})
                merged.update(errors)
                job.errors = dict(merged)
            job.heartbeat_at = now
            wall = time.perf_counter() - started
            rate = processed / wall if wall > 0 else 0.0
            remaining = job.total - job.done - job.failed
            job.summary = {
                **(job.summary or {}),
                "items_per_s": round(rate, 3),
                "eta_s": round(remaining / rate, 1) if rate > 0 else None,
            }
            return bool(job.cancel_requested)

    def _apply(
        self, s: Session, task: ItemTask | None, o: Outcome, now: dt.datetime
    ) -> tuple[str, str | None] | None:
        """Record one outcome (and its write-back) unless the item is already finished."""
        status, code, detail, result, payload = o.status, o.error_code, o.error_detail, dict(o.result), None
        guard = (JobItem.job_id == self.job_id, JobItem.seq == o.seq, JobItem.status == "pending")
        savepoint = s.begin_nested()
        try:
            if status == "done" and task is not None:
                payload = self._writeback(s, task, o, result, now)
            values = dict(
                status=status,
                error_code=code,
                error_detail=detail,
                result=result,
                payload=payload,
                finished_at=now,
                attempts=JobItem.attempts + 1,
            )
            if _rowcount(s.execute(update(JobItem).where(*guard).values(**values))) != 1:
                savepoint.rollback()
                return None
            savepoint.commit()
            return status, code
        except Exception as exc:  # the write-back failed: the item fails, the batch goes on
            savepoint.rollback()
            code = error_code_of(exc) if isinstance(exc, SonggateError) else "writeback_failed"
            values = dict(
                status="failed",
                error_code=code,
                error_detail=f"{type(exc).__name__}: {exc}"[:2000],
                result=dict(o.result),
                payload=None,
                finished_at=now,
                attempts=JobItem.attempts + 1,
            )
            if _rowcount(s.execute(update(JobItem).where(*guard).values(**values))) != 1:
                return None
            return "failed", code

    def _writeback(
        self, s: Session, task: ItemTask, o: Outcome, result: dict[str, Any], now: dt.datetime
    ) -> bytes | None:
        """Apply a finished item to the domain tables (not on a dry run); returns its job payload."""
        what = self.params["what"]
        if task.item_type == "recording":
            rec_id = task.key
            if o.report is not None:
                prev = writeback.previous_report(s, rec_id)
                if prev is None:
                    raise NotFound(f"recording {rec_id} no longer exists")
                result["checks"] = {**result.get("checks", {}), "previous": prev}
                if not self.dry_run:
                    writeback.write_report(
                        s, rec_id, o.report, default_version=self.params.get("checks_version", "")
                    )
            if "effects" in what and not self.dry_run:
                if s.get(Recording, rec_id) is None:
                    raise NotFound(f"recording {rec_id} no longer exists")
                writeback.replace_artifacts(s, rec_id, o.artifacts)
            return None
        if task.item_type == "voiceprint":
            from voiceprint.scoring import as_unit_vectors, mean_voiceprint
            from voiceprint.tables import Voiceprint

            source_id = task.key.removeprefix("vp:")
            source = s.get(Voiceprint, source_id)
            if source is None:
                raise NotFound(f"voiceprint {source_id} no longer exists")
            result.update(
                {"user_id": source.user_id, "old_voiceprint_id": source_id, "old_model_id": source.model_id}
            )
            if self.dry_run:
                vector = mean_voiceprint(as_unit_vectors(np.stack(list(o.vectors.values()))))
            else:
                vp_id, vector = writeback.stage_voiceprint(
                    s,
                    source_id=source_id,
                    model_id=str(o.model_id),
                    vectors=o.vectors,
                    job_id=self.job_id,
                    now=now,
                )
                result["voiceprint_id"] = vp_id
            return np.ascontiguousarray(vector, dtype="<f4").tobytes()
        if task.item_type == "attempt":
            return np.ascontiguousarray(o.vectors["probe"], dtype="<f4").tobytes()
        return None

    # --- the end --------------------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        with self.reads() as s:
            rows = s.execute(
                select(JobItem.status, func.count())
                .where(JobItem.job_id == self.job_id)
                .group_by(JobItem.status)
            ).all()
        by = {r[0]: int(r[1]) for r in rows}
        return {
            "total": sum(by.values()),
            "done": by.get("done", 0),
            "failed": by.get("failed", 0),
            "pending": by.get("pending", 0),
        }

    def _finalize(self, run_stats: dict[str, Any]) -> None:
        flips: dict[str, Any] = {}
        what = self.params["what"]
        if "checks" in what:
            flips["checks"] = diff_mod.checks_flips(self.factory, self.job_id)
        if "voiceprint" in what:
            # Thresholds and cohort rules as they were when the job was created.
            snap = worker_spec(self.params, self.settings).voiceprint or self.settings.voiceprint
            flips["voiceprint"] = diff_mod.voiceprint_flips(
                self.factory,
                self.job_id,
                new_model_id=self.params["target_model_id"],
                settings=self.settings.model_copy(update={"voiceprint": snap}),
            )
        counts = self._counts()
        output = self._write_output()  # before 'done' is visible (all items are final already)
        with self.factory() as s, s.begin():
            # Vectors were only kept for the flip report: biometric data does not outlive the job.
            s.execute(
                update(JobItem)
                .where(JobItem.job_id == self.job_id, JobItem.payload.is_not(None))
                .values(payload=None)
            )
            job = s.get(Job, self.job_id, with_for_update=True)
            if job is None:
                raise JobNotFound(f"job {self.job_id} was deleted")
            job.done, job.failed = counts["done"], counts["failed"]
            job.summary = {**run_stats, "flips": flips, **({"output": output} if output else {})}
            job.status = "done"
            job.finished_at = self.clock.now()

    def _write_output(self) -> dict[str, Any] | None:
        """Write ``--output`` (if asked for) from the item table; returns {"path", "rows"}."""
        out = self.params.get("output")
        if not out:
            return None
        return {"path": str(out), "rows": write_output(self.factory, self.job_id, out)}

    def _set_status(
        self, status: str, *, error: str | None = None, summary: dict[str, Any] | None = None
    ) -> None:
        try:
            with self.factory() as s, s.begin():
                job = s.get(Job, self.job_id, with_for_update=True)
                if job is None:
                    return
                job.status = status
                job.error = error
                job.heartbeat_at = self.clock.now()
                if summary:
                    job.summary = {**(job.summary or {}), **summary}
                if status in ("failed", "cancelled", "interrupted"):
                    job.finished_at = self.clock.now()
        except Exception as exc:  # the job row keeps 'running'; the next run detects the dead runner
            log.error("could not mark job %s %s: %s", self.job_id, status, exc)

    def _finished_summary(self) -> dict[str, Any]:
        return job_status(self.factory, self.job_id)


def job_status(factory: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    """Status, progress and summary of a job (what the API and the CLI show)."""
    with reader(factory)() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}", job_id=job_id)
        return status_of(job)


def list_jobs(
    factory: sessionmaker[Session], *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The most recent jobs (newest first), as :func:`job_status` shows them."""
    with reader(factory)() as s:
        q = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status:
            q = q.where(Job.status == status)
        return [status_of(j) for j in s.scalars(q)]


def status_of(job: Job) -> dict[str, Any]:
    """The JSON-able status of a loaded job row."""
    finished = job.done + job.failed
    summary = dict(job.summary or {})
    return {
        "id": job.id,
        "what": job.what.split(","),
        "source": job.source,
        "status": job.status,
        "dry_run": job.dry_run,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "pending": max(job.total - finished, 0),
        "progress": round(finished / job.total, 4) if job.total else (1.0 if job.status == "done" else 0.0),
        "errors": dict(job.errors or {}),
        "items_per_s": summary.get("items_per_s"),
        "eta_s": summary.get("eta_s") if job.status == "running" else None,
        "error": job.error,
        "summary": summary,
        "params": _public_params(job.params),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "what",
        "where",
        "manifest",
        "kind",
        "embedder",
        "target_model_id",
        "checks_version",
        "engine",
        "workers",
        "output",
        "ray_address",
    )
    return {k: params.get(k) for k in keep if k in params}


def run_job(factory: sessionmaker[Session], settings: Settings, job_id: str, **kwargs: Any) -> dict[str, Any]:
    """Run (or resume) ``job_id``; returns :func:`job_status` at the end. See :class:`JobRunner`."""
    return JobRunner(factory, settings, job_id, **kwargs).run()


def request_cancel(factory: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    """Ask a job to stop: a queued/interrupted/failed job is cancelled now, a running one at its next
    commit (its committed items stay)."""
    with factory() as s, s.begin():
        job = s.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job {job_id}", job_id=job_id)
        if job.status == "done":
            raise JobFinished(f"job {job_id} has already finished", job_id=job_id)
        if job.status == "running":
            job.cancel_requested = True
        else:
            job.status = "cancelled"
            job.finished_at = job.finished_at or dt.datetime.now(dt.UTC)
    return job_status(factory, job_id)
