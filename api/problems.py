"""RFC 9457 problem+json for every error: domain errors keep their stable codes, validation errors
become 422 ``invalid_request``, and anything unexpected is a 500 ``internal_error`` that leaks nothing."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import SonggateError

log = logging.getLogger("songgate.api")

PROBLEM_JSON = "application/problem+json"
BASE = "https://songgate.dev/problems/"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def problem(status: int, code: str, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": BASE + code, "code": code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_problem(exc: SonggateError, instance: str) -> JSONResponse:
    """The problem+json answer for a domain error (its stable code, status and extras)."""
    body = exc.to_problem()
    body["instance"] = instance
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if exc.status == 429 and "retry_after_s" in exc.extra:
        headers = {"Retry-After": str(int(exc.extra["retry_after_s"]) + 1)}
    return JSONResponse(body, status_code=exc.status, media_type=PROBLEM_JSON, headers=headers)


def internal_error(instance: str) -> JSONResponse:
    return problem(500, "internal_error", "Internal server error", instance=instance)


def install(app: FastAPI) -> None:
    @app.exception_handler(SonggateError)
    async def _domain(request: Request, exc: SonggateError) -> JSONResponse:
        return domain_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return problem(
            422,
            "invalid_request",
            "Invalid request",
            "the request failed validation",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        title = code.replace("_", " ").capitalize()
        detail = exc.detail if isinstance(exc.detail, str) else None
        resp = problem(exc.status_code, code, title, detail, instance=request.url.path)
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error(request.url.path)
