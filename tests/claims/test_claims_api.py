"""The HTTP surface: packets, listen sessions, heartbeats, claims, problem codes, scopes and
Idempotency-Key behaviour, with the app's clock swapped for a virtual one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from claimfakes import NOON_BEIJING
from sqlalchemy import func, select

from claims.client import HttpTransport, ListenClient, ProblemError
from claims.stepup import StaticStepUp
from claims.tables import Claim
from core.clock import VirtualClock
from db.tables import IdempotencyRecord, Recording


def _recording(api, duration_s: float = 12.0) -> str:  # type: ignore[no-untyped-def]
    rid = f"rec_{duration_s}".replace(".", "_")
    with api.app.state.session_factory() as s, s.begin():
        if s.get(Recording, rid) is None:
            s.add(
                Recording(
                    id=rid,
                    user_id="u",
                    song_id="song",
                    kind="mix",
                    sha256=f"{abs(hash(rid)):064d}"[:64],
                    size_bytes=1,
                    filename=None,
                    media_type="audio/wav",
                    container="wav",
                    codec="pcm_s16le",
                    sample_rate=48000,
                    channels=2,
                    duration_s=duration_s,
                    report={},
                    report_version="t",
                )
            )
    return rid


def _packet(api, **kw: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    body = {"sender_id": "sender", "recording_id": _recording(api), "total_fen": 1000, "count": 3, **kw}
    r = api.post("/v1/packets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _listen(api, pid: str, claimant: str, *, device: str = "phone") -> ListenClient:  # type: ignore[no-untyped-def]
    t = HttpTransport(api)
    c = ListenClient.from_session(t.open_session(pid, claimant_id=claimant, device_id=device))
    clock: VirtualClock = api.app.state.clock
    pos = 0
    clock.advance(0.4)
    c.acknowledge(t.heartbeat(c.session_id, token=c.token, body=c.heartbeat(0)))
    while pos < c.duration_ms:
        clock.advance(5.0)
        pos = min(c.duration_ms, pos + 5000)
        c.acknowledge(t.heartbeat(c.session_id, token=c.token, body=c.heartbeat(pos)))
    return c


def test_scopes(client, auth_headers) -> None:  # type: ignore[no-untyped-def]
    body = {"sender_id": "s", "recording_id": "r", "total_fen": 100, "count": 1}
    assert client.post("/v1/packets", json=body).status_code == 401
    r = client.post("/v1/packets", json=body, headers=auth_headers("upload"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert client.get("/v1/packets/pkt_x", headers=auth_headers("claim")).json()["code"] == "packet_not_found"


def test_listen_and_claim_over_http(api) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api, greeting="恭喜发财")
    assert (p["status"], p["remaining_count"], p["duration_s"], p["greeting"]) == (
        "active",
        3,
        12.0,
        "恭喜发财",
    )
    c = _listen(api, p["id"], "alice")
    view = api.get(f"/v1/listen-sessions/{c.session_id}").json()
    assert view["verdict"]["complete"] and view["verdict"]["coverage"] == 1.0
    assert "next_nonce" not in view  # the chain state needs the token
    r = api.post(
        f"/v1/packets/{p['id']}/claims",
        json={"session_id": c.session_id, "claimant_id": "alice"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert r.status_code == 200, r.text
    grant = r.json()
    assert (
        grant["share_index"] == 1
        and 1 <= grant["amount_fen"] <= 666
        and grant["payout_id"].startswith("pay_")
    )
    after = api.get(f"/v1/packets/{p['id']}").json()
    assert after["remaining_count"] == 2 and after["remaining_fen"] == 1000 - grant["amount_fen"]


def test_refusals_are_problem_json_with_reason_codes(api) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api, count=1)
    t = HttpTransport(api)
    opened = t.open_session(p["id"], claimant_id="bob", device_id="tab")
    c = ListenClient.from_session(opened)
    r = api.post(f"/v1/packets/{p['id']}/claims", json={"session_id": c.session_id, "claimant_id": "bob"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "not_listened" and body["verdict"]["reasons"]

    hb = c.heartbeat(0)
    forged = {**hb, "position_ms": 9000}
    r = api.post(
        f"/v1/listen-sessions/{c.session_id}/heartbeats", json=forged, headers={"X-Listen-Token": c.token}
    )
    assert (r.status_code, r.json()["code"], r.json()["reason"]) == (403, "heartbeat_rejected", "bad_mac")
    c.acknowledge(t.heartbeat(c.session_id, token=c.token, body=hb))
    r = api.post(
        f"/v1/listen-sessions/{c.session_id}/heartbeats",
        json={**hb, "position_ms": 100},
        headers={"X-Listen-Token": c.token},
    )
    assert (r.status_code, r.json().get("reason")) == (409, "replayed"), r.json()
    r = api.post(f"/v1/listen-sessions/{c.session_id}/heartbeats", json=c.heartbeat(0))
    assert r.status_code == 422  # no token
    r = api.post(
        f"/v1/listen-sessions/{c.session_id}/heartbeats",
        json=c.heartbeat(0),
        headers={"X-Listen-Token": "bm9wZQ.bm9wZQ"},
    )
    assert (r.status_code, r.json()["code"]) == (401, "token_invalid")
    r = api.post(
        f"/v1/listen-sessions/{c.session_id}/heartbeats",
        json={**c.heartbeat(0), "seq": 0},
        headers={"X-Listen-Token": c.token},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"

    alice = _listen(api, p["id"], "alice")
    r = api.post(
        f"/v1/packets/{p['id']}/claims", json={"session_id": alice.session_id, "claimant_id": "mallory"}
    )
    assert (r.status_code, r.json()["code"]) == (403, "session_mismatch")  # token reuse across accounts
    assert (
        api.post(
            f"/v1/packets/{p['id']}/claims", json={"session_id": alice.session_id, "claimant_id": "alice"}
        ).status_code
        == 200
    )
    r = api.post(
        f"/v1/packets/{p['id']}/claims", json={"session_id": alice.session_id, "claimant_id": "alice"}
    )
    assert (r.status_code, r.json()["code"]) == (409, "already_claimed")
    r = api.post(f"/v1/packets/{p['id']}/listen-sessions", json={"claimant_id": "carol", "device_id": "x"})
    assert (r.status_code, r.json()["code"]) == (409, "packet_empty")
    other = _packet(api)
    api.app.state.clock.advance(86_400)
    r = api.post(f"/v1/packets/{other['id']}/listen-sessions", json={"claimant_id": "erin", "device_id": "z"})
    assert (r.status_code, r.json()["code"]) == (410, "packet_expired")
    assert api.get(f"/v1/packets/{other['id']}").json()["status"] == "expired"


def test_lost_answer_resync_over_http(api) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api)
    t = HttpTransport(api)
    c = ListenClient.from_session(t.open_session(p["id"], claimant_id="fay", device_id="phone"))
    api.app.state.clock.advance(0.5)
    first = c.heartbeat(0)
    t.heartbeat(c.session_id, token=c.token, body=first)  # the server got it; the answer was "lost"
    again = t.heartbeat(c.session_id, token=c.token, body=first)  # identical resend: idempotent
    assert again["status"] == "duplicate"
    api.app.state.clock.advance(5)
    with pytest.raises(ProblemError) as exc:
        t.heartbeat(c.session_id, token=c.token, body=c.heartbeat(5000))  # still chained to seq 0
    assert exc.value.reason == "replayed"
    c.resync(t.session(c.session_id, token=c.token))
    assert t.heartbeat(c.session_id, token=c.token, body=c.heartbeat(5000))["status"] == "accepted"


def test_idempotency_key_same_body_same_answer_different_body_422(api) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api)
    c = _listen(api, p["id"], "gus")
    url = f"/v1/packets/{p['id']}/claims"
    body = {"session_id": c.session_id, "claimant_id": "gus"}
    first = api.post(url, json=body, headers={"Idempotency-Key": "idem-1"})
    second = api.post(url, json=body, headers={"Idempotency-Key": "idem-1"})
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    r = api.post(url, json={**body, "claimant_id": "other"}, headers={"Idempotency-Key": "idem-1"})
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    # A refusal is an answer, too: replayed for the same key.
    r1 = api.post(url, json=body, headers={"Idempotency-Key": "idem-2"})
    r2 = api.post(url, json=body, headers={"Idempotency-Key": "idem-2"})
    assert (
        r1.status_code == r2.status_code == 409
        and r1.json()["code"] == r2.json()["code"] == "already_claimed"
    )
    with api.app.state.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 1


def test_idempotency_key_in_flight_is_409(api) -> None:  # type: ignore[no-untyped-def]
    from db.idempotency import fingerprint

    p = _packet(api)
    c = _listen(api, p["id"], "hal")
    body = {"session_id": c.session_id, "claimant_id": "hal", "verification_id": None}
    key_id = api.get("/v1/packets/" + p["id"]).status_code and _key_id(api)
    with api.app.state.session_factory() as s, s.begin():  # another worker is processing this key
        s.add(
            IdempotencyRecord(
                scope=f"claims:{key_id}",
                key="busy",
                state="in_flight",
                request_hash=fingerprint(p["id"], body),
            )
        )
    r = api.post(
        f"/v1/packets/{p['id']}/claims",
        json={"session_id": c.session_id, "claimant_id": "hal"},
        headers={"Idempotency-Key": "busy"},
    )
    assert (r.status_code, r.json()["code"]) == (409, "idempotency_key_in_flight")


def _key_id(api) -> str:  # type: ignore[no-untyped-def]
    from db import keys

    token = api.headers["Authorization"].split(" ", 1)[1]
    with api.app.state.session_factory() as s:
        return keys.lookup(s, token).id


class _BlockingStepUp(StaticStepUp):
    """Holds a claim inside its transaction until released (to catch a duplicate in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def linked_accounts(self, session, user_id):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.release.wait(30)
        return []


@pytest.mark.both_dbs
def test_concurrent_duplicate_while_in_flight(api, db_backend) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api)
    c = _listen(api, p["id"], "ida")
    url, body = f"/v1/packets/{p['id']}/claims", {"session_id": c.session_id, "claimant_id": "ida"}
    blocking = _BlockingStepUp()
    api.app.state.claims_stepup = blocking
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(api.post, url, json=body, headers={"Idempotency-Key": "race"})
        assert blocking.entered.wait(30)
        if db_backend == "postgresql":  # SQLite holds its single write lock: the duplicate waits instead
            dup = api.post(url, json=body, headers={"Idempotency-Key": "race"})
            assert (dup.status_code, dup.json()["code"]) == (409, "idempotency_key_in_flight")
            blocking.release.set()
        else:
            # SQLite has one writer: the duplicate's insert of the key waits for the first claim's
            # transaction, then sees the key either still in flight (409) or done (the replay).
            dup_f = pool.submit(api.post, url, json=body, headers={"Idempotency-Key": "race"})
            blocking.release.set()
            dup = dup_f.result(60)
            assert dup.status_code in (200, 409)
            if dup.status_code == 200:
                assert dup.json() == first.result(60).json()
            else:
                assert dup.json()["code"] == "idempotency_key_in_flight"
        assert first.result(60).status_code == 200
    with api.app.state.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 1


def test_fifty_concurrent_http_claims_with_one_key_pay_once(api) -> None:  # type: ignore[no-untyped-def]
    p = _packet(api, count=5)
    c = _listen(api, p["id"], "jo")
    url, body = f"/v1/packets/{p['id']}/claims", {"session_id": c.session_id, "claimant_id": "jo"}
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: api.post(url, json=body, headers={"Idempotency-Key": "same"}), range(50))
        )
    ok = [a.json() for a in answers if a.status_code == 200]
    assert ok and all(a == ok[0] for a in ok)
    assert {a.status_code for a in answers} <= {200, 409}
    assert all(a.json()["code"] == "idempotency_key_in_flight" for a in answers if a.status_code == 409)
    with api.app.state.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Claim)) == 1


def test_packet_creation_validation_and_step_up(api) -> None:  # type: ignore[no-untyped-def]
    rid = _recording(api)
    bad = [
        {"sender_id": "s", "recording_id": rid, "total_fen": 2, "count": 3},
        {"sender_id": "s", "recording_id": rid, "total_fen": 100, "count": 3, "mode": "fixed"},
        {"sender_id": "s", "recording_id": rid, "total_fen": 100.5, "count": 1},
        {"sender_id": "s", "recording_id": rid, "total_fen": 100, "count": 1, "condition": "watch_ad"},
        {"sender_id": "s", "recording_id": rid, "total_fen": 100, "count": 1, "unexpected": 1},
    ]
    for body in bad:
        r = api.post("/v1/packets", json=body)
        assert r.status_code == 422, body
    r = api.post(
        "/v1/packets", json={"sender_id": "s", "recording_id": "missing", "total_fen": 100, "count": 1}
    )
    assert (r.status_code, r.json()["code"]) == (404, "recording_not_found")
    r = api.post(
        "/v1/packets", json={"sender_id": "s", "recording_id": rid, "total_fen": 600_000, "count": 1}
    )
    assert (r.status_code, r.json()["code"]) == (403, "limit_exceeded")
    for _ in range(5):
        _packet(api, sender_id="busy")
    r = api.post(
        "/v1/packets", json={"sender_id": "busy", "recording_id": rid, "total_fen": 1000, "count": 3}
    )
    assert (r.status_code, r.json()["code"]) == (403, "step_up_required")
    api.app.state.claims_stepup.passed["ver-busy"] = "busy"
    _packet(api, sender_id="busy", verification_id="ver-busy")


def test_real_voiceprint_step_up_adapter(client, auth_headers) -> None:  # type: ignore[no-untyped-def]
    """Without an injected fake, claims ask voiceprint.stepup (lazily imported) and fail closed."""
    client.app.state.clock = VirtualClock(NOON_BEIJING)
    client.headers.update(auth_headers("claim"))
    p = _packet(client, count=2)
    c = _listen(client, p["id"], "kim")  # no voiceprint: no linked accounts
    r = client.post(f"/v1/packets/{p['id']}/claims", json={"session_id": c.session_id, "claimant_id": "kim"})
    assert r.status_code == 200, r.text
    for _ in range(4):
        _packet(client)
    r = client.post(
        "/v1/packets",
        json={
            "sender_id": "sender",
            "recording_id": _recording(client),
            "total_fen": 1000,
            "count": 3,
            "verification_id": "vrf_unknown",
        },
    )
    assert (r.status_code, r.json()["code"]) == (403, "step_up_required")


def test_the_stored_answer_commits_with_the_claim(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No window between the grant and its stored answer: a crash there used to leave the key
    ``in_flight`` (409 for every retry). The answer is written in the claim's own transaction."""
    from db.idempotency import IdempotencyGuard

    def separate_transaction(*_a, **_k):  # type: ignore[no-untyped-def]
        raise AssertionError("the answer must be stored in the work's transaction")

    monkeypatch.setattr(IdempotencyGuard, "complete", separate_transaction)
    p = _packet(api)
    c = _listen(api, p["id"], "ida")
    body = {"session_id": c.session_id, "claimant_id": "ida"}
    r = api.post(f"/v1/packets/{p['id']}/claims", json=body, headers={"Idempotency-Key": "atomic-1"})
    assert r.status_code == 200, r.text
    with api.app.state.session_factory() as s:
        row = s.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "atomic-1"))
        assert row.state == "done" and row.status_code == 200 and '"payout_id"' in row.response
    # a refusal is stored the same way, together with its audit trace
    r = api.post(f"/v1/packets/{p['id']}/claims", json=body, headers={"Idempotency-Key": "atomic-2"})
    assert (r.status_code, r.json()["code"]) == (409, "already_claimed")
    with api.app.state.session_factory() as s:
        row = s.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "atomic-2"))
        assert row.state == "done" and row.status_code == 409
