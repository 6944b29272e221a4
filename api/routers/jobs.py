"""Batch jobs: ``POST /v1/jobs`` starts one in the background, ``GET /v1/jobs/{id}`` shows its status
and progress (admin scope). The work itself is jobs.runner, the same code as ``songgate rescore``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from api.deps import Principal, SessionFactoryDep, SettingsDep, require_scope
from api.schemas.jobs import JobCreate, JobList, JobOut
from jobs.background import start_in_background
from jobs.errors import JobFinished
from jobs.runner import JobRequest, RunOptions, create_job, job_status, list_jobs, request_cancel

router = APIRouter(tags=["jobs"])
AdminScope = Annotated[Principal, Depends(require_scope("admin"))]


def on_startup(app: FastAPI) -> None:
    app.state.job_threads = {}


@router.post("/jobs", status_code=202, response_model=JobOut, responses={403: {}, 404: {}, 409: {}, 422: {}})
def start_job(
    body: JobCreate,
    request: Request,
    response: Response,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    _: AdminScope,
) -> dict[str, Any]:
    """Create a job (or resume ``job_id``) and start it in the background; 202 with its status
    (200 when ``job_id`` is already done, 409 when it was cancelled).

    The item list is read by the background run, so a large selection does not hold the request.
    """
    job_request = JobRequest(
        what=tuple(body.what),
        where=tuple(body.where),
        manifest=body.manifest,
        kind=body.kind,
        dry_run=body.dry_run,
        embedder=body.embedder,
    )
    workers = settings.jobs.api_workers if body.workers is None else body.workers
    options = RunOptions(
        engine=body.engine, workers=workers, output=body.output, ray_address=body.ray_address
    )
    job_id, created = create_job(
        factory, settings, job_request, options=options, job_id=body.job_id, materialize_now=False
    )
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    if not created:
        current = job_status(factory, job_id)
        if current["status"] == "cancelled":
            raise JobFinished(f"job {job_id} was cancelled", job_id=job_id)
        if current["status"] == "done":
            response.status_code = 200  # nothing left to do
            return current
    threads = getattr(request.app.state, "job_threads", None)
    if threads is None:
        threads = request.app.state.job_threads = {}
    start_in_background(factory, settings, job_id, options=options, threads=threads)
    return job_status(factory, job_id)


@router.get("/jobs", response_model=JobList)
def read_jobs(
    factory: SessionFactoryDep,
    _: AdminScope,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The most recent jobs, newest first."""
    return {"items": list_jobs(factory, status=status, limit=limit)}


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {}})
def read_job(job_id: str, factory: SessionFactoryDep, _: AdminScope) -> dict[str, Any]:
    """Status and progress: counts, failures by error code, rate, ETA, and the summary when done."""
    return job_status(factory, job_id[:64])


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses={404: {}, 409: {}})
def cancel_job(job_id: str, factory: SessionFactoryDep, _: AdminScope) -> dict[str, Any]:
    """Cancel: a running job stops at its next commit (finished items stay)."""
    return request_cancel(factory, job_id[:64])
