"""Operational endpoints: liveness, readiness, Prometheus metrics (no auth, no /v1 prefix)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api import metrics as metrics_mod

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the event loop answers (it never runs CPU-heavy work)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness: database reachable, blob store writable; models reported but optional."""
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        with state.read_session_factory() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness must answer, whatever broke
        checks["database"] = f"error: {type(exc).__name__}"
    checks["blobs"] = "ok" if os.access(state.blobs.root, os.W_OK) else "error: not writable"
    checks["voiceprint_model"] = "ok" if getattr(state, "embedder", None) is not None else "unavailable"
    ready = checks["database"] == "ok" and checks["blobs"] == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return metrics_mod.render(request.app.state.metrics, request.app.state.pool.in_flight)
