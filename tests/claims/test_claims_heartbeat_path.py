"""The heartbeat hot path: the pure-ASGI fast path answers exactly like the FastAPI route and hands
it everything unusual; the writer batches heartbeats into transactions and isolates failures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select
from test_claims_api import _packet

import claims.heartbeat_writer as writer_mod
from api.heartbeat_fast_path import HeartbeatFastPath
from api.routers.listen_sessions import heartbeat_ctx, heartbeat_inputs
from api.schemas.claims import HeartbeatIn
from claims.client import HttpTransport, ListenClient
from claims.heartbeat_writer import HeartbeatWriter
from claims.tables import ListenSession


@pytest.fixture
def fast_path_log(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """True for each heartbeat the fast path served, False for each it handed to the route."""
    log: list[bool] = []
    original = HeartbeatFastPath._inputs

    def spy(self, scope, session_id, body):  # type: ignore[no-untyped-def]
        out = original(self, scope, session_id, body)
        log.append(out is not None)
        return out

    monkeypatch.setattr(HeartbeatFastPath, "_inputs", spy)
    return log


def _scenario(api) -> list[tuple[int, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """A listen with a forged, a replayed and a resent heartbeat; answers without the nonces."""
    p = _packet(api)
    t = HttpTransport(api)
    c = ListenClient.from_session(t.open_session(p["id"], claimant_id="ann", device_id="phone"))
    url = f"/v1/listen-sessions/{c.session_id}/heartbeats"
    clock = api.app.state.clock
    out = []

    def post(body: dict[str, Any]) -> dict[str, Any]:
        r = api.post(url, json=body, headers={"X-Listen-Token": c.token})
        answer = r.json()
        out.append((r.status_code, {k: v for k, v in answer.items() if k not in ("next_nonce", "instance")}))
        return answer  # type: ignore[no-any-return]

    for pos in (0, 5000, 10000):
        clock.advance(5.0)
        body = c.heartbeat(pos)
        c.acknowledge(post(body))
    post(body)  # identical resend: duplicate
    post({**c.heartbeat(15000), "position_ms": 15001})  # forged: bad_mac
    clock.advance(5.0)
    c.acknowledge(post(c.heartbeat(12000)))
    post({**c.heartbeat(16000), "seq": 1})  # replayed sequence
    return out


def test_fast_path_serves_heartbeats_and_answers_like_the_route(api, fast_path_log, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fast = _scenario(api)
    assert fast_path_log and all(fast_path_log)  # the key was cached by the packet request
    assert [s for s, _ in fast] == [200, 200, 200, 200, 403, 200, 409]
    monkeypatch.setattr(HeartbeatFastPath, "_inputs", lambda *a: None)  # everything through the route
    assert _scenario(api) == fast


def test_fast_path_hands_the_unusual_to_the_route(api, fast_path_log) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api)
    t = HttpTransport(api)
    c = ListenClient.from_session(t.open_session(p["id"], claimant_id="bo", device_id="phone"))
    url = f"/v1/listen-sessions/{c.session_id}/heartbeats"
    token = {"X-Listen-Token": c.token}
    body = c.heartbeat(0)
    auth = api.headers.pop("Authorization")
    try:
        r = api.post(url, json=body, headers=token)
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
        r = api.post(url, json=body, headers={**token, "Authorization": "Bearer not-a-key"})
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    finally:
        api.headers["Authorization"] = auth
    cases = [
        (json.dumps(body), {"Content-Type": "text/plain", **token}),  # not JSON by its type
        ("{", {"Content-Type": "application/json", **token}),  # broken JSON
        (json.dumps({**body, "pad": "x" * 5000}), {"Content-Type": "application/json", **token}),  # too big
        (json.dumps({**body, "seq": 0}), {"Content-Type": "application/json", **token}),  # invalid
        (json.dumps(body), {"Content-Type": "application/json"}),  # no token
    ]
    for content, headers in cases:
        r = api.post(url, content=content, headers=headers)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), (content[:40], r.text)
    assert not any(fast_path_log)  # all of them were the route's
    # a well-formed one still goes through fast and is accepted
    assert api.post(url, json=body, headers=token).json()["status"] == "accepted"
    assert fast_path_log[-1] is True


# --- the writer ---------------------------------------------------------------------------------


def _sessions(api, n: int) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """n open listen sessions with their next heartbeat's record_heartbeat arguments."""
    p = _packet(api, count=1)
    t = HttpTransport(api)
    ctx = heartbeat_ctx(api.app)
    out = []
    for i in range(n):
        c = ListenClient.from_session(t.open_session(p["id"], claimant_id=f"u{i}", device_id=f"d{i}"))
        kwargs = heartbeat_inputs(c.session_id, HeartbeatIn(**c.heartbeat(0)), c.token, ctx)
        out.append((c.session_id, kwargs))
    api.app.state.clock.advance(1.0)
    return out


def _last_seq(api, session_id: str) -> int:  # type: ignore[no-untyped-def]
    with api.app.state.session_factory() as s:
        return int(s.scalar(select(ListenSession.last_seq).where(ListenSession.id == session_id)))


async def _submit_all(writer: HeartbeatWriter, calls: list[dict[str, Any]]) -> list[Any]:
    return await asyncio.gather(*(writer.submit(**kw) for kw in calls), return_exceptions=True)


@pytest.mark.both_dbs
def test_writer_commits_many_heartbeats_per_transaction(api) -> None:  # type: ignore[no-untyped-def]
    sessions = _sessions(api, 40)
    writer = HeartbeatWriter(api.app.state.engine, max_batch=64)
    try:
        results = asyncio.run(_submit_all(writer, [kw for _, kw in sessions]))
    finally:
        writer.close()
    assert [r.status for r in results] == ["accepted"] * 40
    assert writer.batches <= 10  # 40 concurrent heartbeats, a handful of transactions
    assert all(_last_seq(api, sid) == 1 for sid, _ in sessions)


@pytest.mark.both_dbs
def test_writer_isolates_a_failing_heartbeat(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sessions = _sessions(api, 12)
    bad = sessions[5][0]
    real = writer_mod.record_heartbeat

    def flaky(conn, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs["session_id"] == bad:
            raise RuntimeError("disk on fire")
        return real(conn, **kwargs)

    monkeypatch.setattr(writer_mod, "record_heartbeat", flaky)
    writer = HeartbeatWriter(api.app.state.engine, max_batch=64)
    try:
        results = asyncio.run(_submit_all(writer, [kw for _, kw in sessions]))
    finally:
        writer.close()
    for (sid, _), result in zip(sessions, results, strict=True):
        if sid == bad:
            assert isinstance(result, RuntimeError)
            assert _last_seq(api, sid) == 0  # nothing of it was kept
        else:
            assert result.status == "accepted"
            assert _last_seq(api, sid) == 1  # the others were committed despite the failure


def test_writer_answers_refusals_per_heartbeat(api) -> None:  # type: ignore[no-untyped-def]
    """A refused heartbeat in a batch keeps its persisted trace and does not disturb the others."""
    sessions = _sessions(api, 6)
    calls = [kw for _, kw in sessions]
    hb = calls[2]["hb"]
    calls[2] = {**calls[2], "hb": type(hb)(hb.seq, hb.position_ms, hb.rate_milli, hb.paused, "0" * 64)}
    writer = HeartbeatWriter(api.app.state.engine)
    try:
        results = asyncio.run(_submit_all(writer, calls))
    finally:
        writer.close()
    assert getattr(results[2], "reason", None) == "bad_mac"
    assert [r.status for i, r in enumerate(results) if i != 2] == ["accepted"] * 5
    with api.app.state.session_factory() as s:
        assert s.scalar(select(ListenSession.rejected).where(ListenSession.id == sessions[2][0])) == 1
