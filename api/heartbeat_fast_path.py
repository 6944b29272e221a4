"""A pure ASGI fast path for ``POST /v1/listen-sessions/{id}/heartbeats``, the hottest route.

Every listener sends a heartbeat every few seconds, and for this tiny request FastAPI's routing
across every route, dependency resolution and request parsing cost several times the heartbeat's
own work (py-spy: ~80 % of the event loop's time). This middleware serves the ordinary request
with the same pieces the route uses -- the cached API-key check, the ``HeartbeatIn`` schema, the
batching heartbeat writer, the same response body and problem+json renderer -- and hands
anything else to the FastAPI route unchanged, replaying the body it read: a key that is missing,
not cached yet or lacks the scope, a missing token, a body that is not JSON, too large or
invalid. So every refusal of the framework (401, 403, 413, 422) and the OpenAPI description
still come from the route, and the answers are the same either way (the tests run both).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import _cached_principal
from api.errors import Unauthorized
from api.problems import domain_problem, internal_error
from api.routers.listen_sessions import heartbeat_ctx, heartbeat_inputs, heartbeat_json
from api.schemas.claims import HeartbeatIn
from core.errors import SonggateError

log = logging.getLogger("songgate.api")

PATH = re.compile(r"/v1/listen-sessions/([^/]+)/heartbeats")
MAX_BODY = 4096  # a heartbeat is ~200 bytes; anything larger takes the framework's path
MAX_TOKEN = 4096  # as the route's header declaration
SCOPES = frozenset({"claim", "admin"})

_BODY = TypeAdapter(HeartbeatIn)


class HeartbeatFastPath:
    """Serve well-formed heartbeats directly; pass everything else on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        messages, body, complete = await _read_body(receive)
        inputs = self._inputs(scope, match.group(1), body) if complete else None
        if inputs is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        app, ctx, route_inputs = inputs
        scope["route"] = self._heartbeat_route(app)  # the metrics label, as the router would set
        response: JSONResponse
        try:
            answer = await ctx.writer.submit(**route_inputs)
        except SonggateError as exc:
            response = domain_problem(exc, scope["path"])
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            response = internal_error(scope["path"])
        else:
            response = JSONResponse(heartbeat_json(answer))
        await response(scope, receive, send)

    def _inputs(self, scope: Scope, session_id: str, body: bytes) -> tuple[Any, Any, dict[str, Any]] | None:
        """``(app, heartbeat context, record_heartbeat kwargs)``, or None: the route answers."""
        request = Request(scope)
        headers = request.headers
        if not headers.get("content-type", "").startswith("application/json"):
            return None
        token = headers.get("x-listen-token")
        if not token or len(token) > MAX_TOKEN:
            return None
        try:
            principal = _cached_principal(request)
        except Unauthorized:
            return None
        if principal is None or not (principal.scopes & SCOPES):
            return None
        try:
            parsed = _BODY.validate_json(body)
        except ValidationError:
            return None
        app = request.app
        ctx = heartbeat_ctx(app)
        return app, ctx, heartbeat_inputs(session_id, parsed, token, ctx)

    def _heartbeat_route(self, app: Any) -> Any:
        if self._route is None:
            for route in app.routes:
                if getattr(route, "path", None) == "/v1/listen-sessions/{session_id}/heartbeats":
                    self._route = route
        return self._route


async def _read_body(receive: Receive) -> tuple[list[Message], bytes, bool]:
    """The request messages read, the body, and whether it is complete and within MAX_BODY."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # disconnect: let the framework deal with it
            return messages, b"", False
        size += len(message.get("body", b""))
        if size > MAX_BODY:
            return messages, b"", False
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages), True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
