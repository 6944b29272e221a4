"""``POST /v1/jobs`` starts a re-scoring job in the background (admin scope only);
``GET /v1/jobs/{id}`` shows its status and progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from signals import encode, tone

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jobfakes  # noqa: E402


@pytest.fixture
def tmp_settings(tmp_settings):  # type: ignore[no-untyped-def]
    # Jobs started through the API run in a thread of the test process (no worker pool to spawn).
    return tmp_settings.model_copy(update={"jobs": tmp_settings.jobs.model_copy(update={"api_workers": 0})})


def _wait_done(client, headers, job_id: str, timeout: float = 90) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not finish: {body}")


@pytest.mark.both_dbs
def test_admin_starts_a_job_and_follows_it(client, auth_headers, tmp_path) -> None:
    app = client.app
    with app.state.session_factory() as s, s.begin():
        rec_ids = [
            jobfakes.add_recording(
                s,
                app.state.blobs,
                encode(tone(300.0 * (i + 1), sr=22050, seconds=1.5), sr=22050, path=tmp_path / f"r{i}.wav"),
                user_id="api-user",
                report_version="old",
            )
            for i in range(3)
        ]
    admin = auth_headers("admin")
    out = tmp_path / "api-out.jsonl"
    r = client.post(
        "/v1/jobs",
        headers=admin,
        json={"what": ["checks", "effects"], "where": ["user=api-user"], "output": str(out)},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "done") and job["what"] == ["checks", "effects"]

    final = _wait_done(client, admin, job["id"])
    assert final["status"] == "done", final
    assert (final["total"], final["done"], final["failed"], final["pending"]) == (3, 3, 0, 0)
    assert final["progress"] == 1.0 and final["errors"] == {}
    assert final["summary"]["flips"]["checks"]["compared"] == 3
    assert final["summary"]["output"]["rows"] == 3 and out.exists()
    report = client.get(f"/v1/recordings/{rec_ids[0]}/report", headers=admin).json()
    assert report["settings_version"] == app.state.settings.checks.version

    listed = client.get("/v1/jobs", headers=admin).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    # Posting the same job again: it is done, nothing is redone.
    again = client.post(
        "/v1/jobs",
        headers=admin,
        json={
            "what": ["checks", "effects"],
            "where": ["user=api-user"],
            "output": str(out),
            "job_id": job["id"],
        },
    )
    assert again.status_code == 200 and again.json()["done"] == 3


def test_only_admin_may_start_or_read_jobs(client, auth_headers) -> None:
    body = {"what": ["checks"]}
    assert client.post("/v1/jobs", json=body).status_code == 401
    for scope in ("upload", "claim"):
        r = client.post("/v1/jobs", headers=auth_headers(scope), json=body)
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/jobs/job_x", headers=auth_headers("upload")).status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"what": ["checks"], "where": ["model_id=x"]}, 422, "invalid_selection"),
        ({"what": ["checks"], "manifest": "/nonexistent/m.csv"}, 422, "invalid_manifest"),
        ({"what": ["voiceprint"], "manifest": "/tmp/m.csv"}, 422, None),
        ({"what": ["sing"]}, 422, None),
        ({"what": ["checks"], "output": "/tmp/out.txt"}, 422, "invalid_selection"),
    ],
)
def test_bad_job_requests(client, auth_headers, body, status, code) -> None:
    r = client.post("/v1/jobs", headers=auth_headers("admin"), json=body)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["code"] == code


def test_unknown_job_is_404(client, auth_headers) -> None:
    r = client.get("/v1/jobs/job_nope", headers=auth_headers("admin"))
    assert r.status_code == 404 and r.json()["code"] == "job_not_found"


def test_cancel_a_queued_job(client, auth_headers) -> None:
    from jobs.runner import JobRequest, create_job

    app = client.app
    job_id, _ = create_job(app.state.session_factory, app.state.settings, JobRequest(what=("checks",)))
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth_headers("admin"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # A cancelled job is final: resuming it is refused.
    r = client.post("/v1/jobs", headers=auth_headers("admin"), json={"what": ["checks"], "job_id": job_id})
    assert r.status_code == 409 and r.json()["code"] == "job_finished"
    assert client.get(f"/v1/jobs/{job_id}", headers=auth_headers("admin")).json()["status"] == "cancelled"
