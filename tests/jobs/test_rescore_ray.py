"""The local and Ray engines give identical results on the same items (checks+effects over a
manifest with a corrupt file; a voiceprint model change with the fake embedder loaded in actors).

Starts a local Ray instance once for the module (slow: ~15-30 s on a busy 2-core machine)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from signals import encode, tone
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jobfakes  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():  # type: ignore[no-untyped-def]
    from jobs.engines.ray_engine import init_ray

    ray, started = init_ray(num_cpus=2, object_store_mb=128)
    yield ray
    if started:
        ray.shutdown()


def _results(factory, job_id: str) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    from jobs.tables import JobItem

    with factory() as s:
        rows = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
    return {r.item_key: (r.status, r.error_code, r.result) for r in rows}


def test_local_and_ray_engines_agree(ray_instance, tmp_settings, tmp_path) -> None:
    from db.blobstore import LocalBlobStore
    from db.engine import make_engine, make_session_factory
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from voiceprint.config import ModelThresholds

    engine = make_engine(tmp_settings.resolved_database_url)
    factory = make_session_factory(engine)
    blobs = LocalBlobStore(tmp_settings.resolved_blob_dir)

    # --- checks + effects over a manifest -------------------------------------------------
    names = []
    for i in range(5):
        encode(
            tone(150.0 * (i + 1), sr=44100, seconds=1.0 + i * 0.5, amp_dbfs=-10.0 - i, channels=1 + i % 2),
            sr=44100,
            path=tmp_path / f"t{i}.flac",
        )
        names.append(f"t{i}.flac")
    (tmp_path / "bad.mp3").write_bytes(b"\xff\xfb\x90\x00" + b"\x13" * 2000)
    names.insert(2, "bad.mp3")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path\n" + "\n".join(names) + "\n")
    request = JobRequest(what=("checks", "effects"), manifest=str(manifest))
    local, _ = create_job(factory, tmp_settings, request, options=RunOptions(engine="local", workers=1))
    on_ray, _ = create_job(factory, tmp_settings, request, options=RunOptions(engine="ray", workers=2))
    s_local = run_job(factory, tmp_settings, local)
    s_ray = run_job(factory, tmp_settings, on_ray)
    assert s_ray["summary"]["engine"] == "ray" and s_local["summary"]["engine"] == "local"
    assert (s_ray["done"], s_ray["failed"]) == (s_local["done"], s_local["failed"]) == (5, 1)
    r_local, r_ray = _results(factory, local), _results(factory, on_ray)
    assert r_local == r_ray
    assert r_ray[str(tmp_path / "bad.mp3")][0] == "failed"

    # --- a voiceprint model change, the fake model loaded in each actor ---------------------
    thresholds = {m: ModelThresholds(cosine=0.9, search=0.9) for m in ("fake-a@1", "fake-b@1")}
    vp = tmp_settings.voiceprint.model_copy(update={"thresholds": thresholds, "service_vad": "energy"})
    settings = tmp_settings.model_copy(update={"voiceprint": vp})
    a = jobfakes.model_a()
    with factory() as s, s.begin():
        vp1 = jobfakes.add_voiceprint(s, blobs, a, "u1", [300, 300, 300])
        jobfakes.add_voiceprint(s, blobs, a, "u2", [320, 320])
        jobfakes.add_attempt(s, blobs, a, "u1", vp1, 320, threshold=0.9)
    vp_request = JobRequest(what=("voiceprint",), embedder="jobfakes:model_b", dry_run=True)
    vp_local, _ = create_job(factory, settings, vp_request, options=RunOptions(engine="local", workers=0))
    vp_ray, _ = create_job(factory, settings, vp_request, options=RunOptions(engine="ray", workers=2))
    f_local = run_job(factory, settings, vp_local)["summary"]["flips"]["voiceprint"]
    f_ray = run_job(factory, settings, vp_ray)["summary"]["flips"]["voiceprint"]
    assert f_local == f_ray
    assert f_ray["decisions"]["transitions"] == {"accept->reject": 1}
    assert _results(factory, vp_local) == _results(factory, vp_ray)
    engine.dispose()
