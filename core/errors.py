"""The root of every package's exception tree.

Each package defines its own subclasses in its ``errors.py``; each class carries a stable ``code``
(the problem+json ``type`` suffix), an HTTP ``status`` and a short ``title``. api/ maps any
:class:`SonggateError` to RFC 9457 problem+json without knowing the individual classes.
"""

from __future__ import annotations

from typing import Any


class SonggateError(Exception):
    """Base class: a failure a caller can act on, with a stable machine-readable code."""

    code: str = "error"
    status: int = 400
    title: str = "Request failed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 body (without ``instance``)."""
        body: dict[str, Any] = {
            "type": f"https://songgate.dev/problems/{self.code}",
            "code": self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class NotFound(SonggateError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(SonggateError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidRequest(SonggateError):
    code = "invalid_request"
    status = 422
    title = "Invalid request"
