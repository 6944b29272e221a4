"""A small Python client for the listen/heartbeat protocol -- what an app implements.

Protocol, from the app's side:

1. ``POST /v1/packets/{id}/listen-sessions`` with ``claimant_id`` and ``device_id``; keep
   ``session_id``, ``token`` (send it as ``X-Listen-Token``), ``heartbeat_key`` (base64url, never
   sent back), ``nonce`` and ``heartbeat_interval_s``.
2. Every ``heartbeat_interval_s`` (and once at the end of the song) send
   ``{seq, position_ms, playback_rate, paused, mac}`` where ``seq`` is one more than the last
   acknowledged heartbeat and ``mac = hex HMAC-SHA256(heartbeat_key, "hb1|session|seq|position_ms|
   rate_milli|paused(0/1)|prev_nonce")``, ``rate_milli = round(rate * 1000)``, ``prev_nonce`` the
   nonce of the last answer. The answer carries ``next_nonce``.
3. A request that got no answer: resend it unchanged (an identical resend is idempotent), or send
   the next tick with the *same* ``seq`` and ``prev_nonce``. If the server says
   ``heartbeat_rejected`` / ``replayed`` it did receive the lost one: ``GET
   /v1/listen-sessions/{id}`` with the token returns ``last_seq`` and ``next_nonce`` to resync.
4. After the final heartbeat is acknowledged, the platform backend claims with
   ``POST /v1/packets/{id}/claims`` and an ``Idempotency-Key``.

:class:`ListenClient` is the pure state machine; a :class:`Transport` moves its messages
(:class:`HttpTransport` over HTTP, :class:`LocalTransport` in-process for the simulator).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from claims import tokens


class ProblemError(Exception):
    """A problem+json answer (``status``, ``code``, the whole ``body``)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code = str(body.get("code", "error"))
        self.reason = body.get("reason")
        super().__init__(f"{status} {self.code}: {body.get('detail', '')}")


@dataclass
class ListenClient:
    """Chain state of one listen session on the app side."""

    session_id: str
    token: str
    key: bytes
    nonce: str
    duration_ms: int
    interval_s: float
    acked_seq: int = 0

    @classmethod
    def from_session(cls, opened: dict[str, Any]) -> ListenClient:
        return cls(
            session_id=opened["session_id"],
            token=opened["token"],
            key=tokens.decode_key(opened["heartbeat_key"]),
            nonce=opened["nonce"],
            duration_ms=int(round(float(opened["duration_s"]) * 1000)),
            interval_s=float(opened["heartbeat_interval_s"]),
        )

    def heartbeat(
        self, position_ms: int, *, rate: float = 1.0, paused: bool = False, client_time_ms: int | None = None
    ) -> dict[str, Any]:
        """The next heartbeat body (does not change the state until :meth:`acknowledge`)."""
        seq = self.acked_seq + 1
        position_ms = max(0, int(position_ms))
        mac = tokens.heartbeat_mac(
            self.key,
            self.session_id,
            seq=seq,
            position_ms=position_ms,
            rate_milli=tokens.rate_to_milli(rate),
            paused=paused,
            prev_nonce=self.nonce,
        )
        body: dict[str, Any] = {
            "seq": seq,
            "position_ms": position_ms,
            "playback_rate": rate,
            "paused": paused,
            "mac": mac,
        }
        if client_time_ms is not None:
            body["client_time_ms"] = client_time_ms
        return body

    def acknowledge(self, answer: dict[str, Any]) -> None:
        self.acked_seq = int(answer["seq"])
        self.nonce = str(answer["next_nonce"])

    def resync(self, view: dict[str, Any]) -> None:
        """Adopt the server's chain state (``GET`` of the session with the token)."""
        self.acked_seq = int(view["last_seq"])
        self.nonce = str(view["next_nonce"])


class Transport(Protocol):
    def open_session(self, packet_id: str, *, claimant_id: str, device_id: str) -> dict[str, Any]: ...

    def heartbeat(self, session_id: str, *, token: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def session(self, session_id: str, *, token: str | None = None) -> dict[str, Any]: ...

    def claim(
        self,
        packet_id: str,
        *,
        session_id: str,
        claimant_id: str,
        idempotency_key: str,
        verification_id: str | None = None,
    ) -> dict[str, Any]: ...


class HttpTransport:
    """The protocol over HTTP (``httpx.Client`` with the service's base URL and API key)."""

    def __init__(self, client: Any) -> None:
        self.http = client

    def _json(self, resp: Any) -> dict[str, Any]:
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"code": "http_error", "detail": resp.text[:200]}
            raise ProblemError(resp.status_code, body)
        return dict(resp.json())

    def open_session(self, packet_id: str, *, claimant_id: str, device_id: str) -> dict[str, Any]:
        return self._json(
            self.http.post(
                f"/v1/packets/{packet_id}/listen-sessions",
                json={"claimant_id": claimant_id, "device_id": device_id},
            )
        )

    def heartbeat(self, session_id: str, *, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(
            self.http.post(
                f"/v1/listen-sessions/{session_id}/heartbeats", json=body, headers={"X-Listen-Token": token}
            )
        )

    def session(self, session_id: str, *, token: str | None = None) -> dict[str, Any]:
        headers = {"X-Listen-Token": token} if token else {}
        return self._json(self.http.get(f"/v1/listen-sessions/{session_id}", headers=headers))

    def claim(
        self,
        packet_id: str,
        *,
        session_id: str,
        claimant_id: str,
        idempotency_key: str,
        verification_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"session_id": session_id, "claimant_id": claimant_id}
        if verification_id:
            body["verification_id"] = verification_id
        return self._json(
            self.http.post(
                f"/v1/packets/{packet_id}/claims", json=body, headers={"Idempotency-Key": idempotency_key}
            )
        )


class LocalTransport:
    """The same operations in-process (the simulator): each call is one transaction through the
    very functions the HTTP routes call, on the given clock."""

    def __init__(
        self,
        factory: Any,
        *,
        clock: Any,
        settings: Any,
        secret: bytes,
        stepup: Any,
        rng: Any = None,
        ip_of: Any = None,
    ) -> None:
        from claims.money import SYSTEM_RNG

        self.factory = factory
        self.clock = clock
        self.settings = settings
        self.secret = secret
        self.stepup = stepup
        self.rng = rng or SYSTEM_RNG
        self.ip_of = ip_of or (lambda claimant_id, device_id: None)

    def _call(self, fn: Any) -> Any:
        from claims.uow import unit_of_work
        from core.errors import SonggateError

        try:
            with unit_of_work(self.factory) as db:
                return fn(db)
        except SonggateError as exc:
            raise ProblemError(exc.status, exc.to_problem()) from exc

    def open_session(self, packet_id: str, *, claimant_id: str, device_id: str) -> dict[str, Any]:
        from claims.sessions import open_session

        def go(db: Any) -> dict[str, Any]:
            o = open_session(
                db,
                packet_id=packet_id,
                claimant_id=claimant_id,
                device_id=device_id,
                ip=self.ip_of(claimant_id, device_id),
                clock=self.clock,
                settings=self.settings,
                secret=self.secret,
            )
            return {
                "session_id": o.session.id,
                "token": o.token,
                "heartbeat_key": o.heartbeat_key,
                "nonce": o.nonce,
                "duration_s": o.session.duration_ms / 1000.0,
                "heartbeat_interval_s": o.heartbeat_interval_s,
            }

        return self._call(go)

    def heartbeat(self, session_id: str, *, token: str, body: dict[str, Any]) -> dict[str, Any]:
        from claims.evidence import Heartbeat
        from claims.sessions import record_heartbeat

        hb = Heartbeat(
            seq=int(body["seq"]),
            position_ms=int(body["position_ms"]),
            rate_milli=tokens.rate_to_milli(float(body["playback_rate"])),
            paused=bool(body["paused"]),
            mac=str(body["mac"]),
        )

        def go(db: Any) -> dict[str, Any]:
            a = record_heartbeat(
                db,
                session_id=session_id,
                token=token,
                hb=hb,
                clock=self.clock,
                settings=self.settings,
                secret=self.secret,
                client_time_ms=body.get("client_time_ms"),
            )
            return {
                "status": a.status,
                "seq": a.seq,
                "next_nonce": a.next_nonce,
                "coverage": a.coverage,
                "elapsed_s": a.elapsed_s,
                "complete": a.complete,
            }

        return self._call(go)

    def session(self, session_id: str, *, token: str | None = None) -> dict[str, Any]:
        from claims.sessions import session_view

        return self._call(
            lambda db: session_view(
                db, session_id, clock=self.clock, settings=self.settings, secret=self.secret, token=token
            )
        )

    def claim(
        self,
        packet_id: str,
        *,
        session_id: str,
        claimant_id: str,
        idempotency_key: str,
        verification_id: str | None = None,
    ) -> dict[str, Any]:
        from claims.claiming import ClaimRequest, claim

        def go(db: Any) -> dict[str, Any]:
            from claims.tables import ListenSession

            ls = db.get(ListenSession, session_id)
            ip = self.ip_of(claimant_id, ls.device_id) if ls is not None else None
            g = claim(
                db,
                ClaimRequest(packet_id, session_id, claimant_id, verification_id=verification_id, ip=ip),
                clock=self.clock,
                settings=self.settings,
                stepup=self.stepup,
                rng=self.rng,
            )
            return g.as_dict()

        return self._call(go)


def device_time_ms(now: dt.datetime, *, offset_s: float = 0.0) -> int:
    """What a device with a wrong wall clock would report (informational only; never trusted)."""
    return int((now.timestamp() + offset_s) * 1000)
