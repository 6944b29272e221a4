"""Voiceprint model change: re-embed enrollment audio under the new model id (staged, old version
kept), count past decisions and search links that would flip, switch over -- with a deterministic
fake embedder pair (tests/jobs/jobfakes.py) whose disagreement is known in advance."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `jobfakes`, also for spawned workers

import jobfakes  # noqa: E402

THRESHOLD = 0.9


@pytest.fixture
def vp_settings(tmp_settings):  # type: ignore[no-untyped-def]
    from voiceprint.config import ModelThresholds

    thresholds = {m: ModelThresholds(cosine=THRESHOLD, search=THRESHOLD) for m in ("fake-a@1", "fake-b@1")}
    # The energy VAD keeps the fake voices' syllables (Silero is for real speech).
    vp = tmp_settings.voiceprint.model_copy(update={"thresholds": thresholds, "service_vad": "energy"})
    return tmp_settings.model_copy(update={"voiceprint": vp})


@pytest.fixture
def db(vp_settings):  # type: ignore[no-untyped-def]
    from db.blobstore import LocalBlobStore
    from db.engine import make_engine, make_session_factory

    engine = make_engine(vp_settings.resolved_database_url)
    yield make_session_factory(engine), LocalBlobStore(vp_settings.resolved_blob_dir)
    engine.dispose()


def _populate(factory, blobs):  # type: ignore[no-untyped-def]
    a = jobfakes.model_a()
    ids = {}
    with factory() as s, s.begin():
        ids["vp1"] = jobfakes.add_voiceprint(s, blobs, a, "u1", [300, 300, 300])
        ids["vp2"] = jobfakes.add_voiceprint(s, blobs, a, "u2", [320, 320, 320])
        ids["vp3"] = jobfakes.add_voiceprint(s, blobs, a, "u3", [1000, 1000])
        ids["vp4"] = jobfakes.add_voiceprint(s, blobs, a, "u4", [2000, 2000])
        ids["genuine"] = jobfakes.add_attempt(s, blobs, a, "u1", ids["vp1"], 300, threshold=THRESHOLD)
        ids["impostor"] = jobfakes.add_attempt(s, blobs, a, "u1", ids["vp1"], 320, threshold=THRESHOLD)
        ids["other"] = jobfakes.add_attempt(s, blobs, a, "u3", ids["vp3"], 2000, threshold=THRESHOLD)
        ids["lost_audio"] = jobfakes.add_attempt(
            s, blobs, a, "u4", ids["vp4"], 1990, threshold=THRESHOLD, store_audio=False
        )
    # What model a decided at the time (the scenario the assertions below rely on).
    assert [ids[k][1] for k in ("genuine", "impostor", "other", "lost_audio")] == [
        "accept",
        "accept",
        "reject",
        "accept",
    ]
    return ids


@pytest.mark.both_dbs
def test_model_change_stages_new_voiceprints_and_reports_flips(vp_settings, db) -> None:
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from jobs.switchover import switch_over
    from jobs.tables import JobItem
    from voiceprint.tables import Embedding, IndexEvent, Voiceprint

    factory, blobs = db
    ids = _populate(factory, blobs)
    job_id, created = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:model_b"),
        options=RunOptions(workers=1),
    )
    assert created
    status = run_job(factory, vp_settings, job_id)
    assert status["status"] == "done", status
    # 4 voiceprints + 4 attempts; the attempt whose audio was never stored fails with its reason.
    assert (status["total"], status["done"], status["failed"]) == (8, 7, 1)
    assert status["errors"] == {"file_not_found": 1}

    vp = status["summary"]["flips"]["voiceprint"]
    assert vp["new_model_id"] == "fake-b@1"
    assert vp["voiceprints"] == {"reembedded": 4, "failed": 0}
    d = vp["decisions"]
    assert d["rescored"] == 3 and d["audio_unavailable"] == 1
    assert d["transitions"] == {"accept->accept": 1, "accept->reject": 1, "reject->reject": 1}
    assert d["flipped"] == 1
    links = vp["search_links"]["fake-a@1"]
    assert (links["links_old"], links["links_new"], links["lost"], links["gained"]) == (1, 0, 1, 0)
    assert links["examples_lost"] == [["u1", "u2"]]

    with factory() as s:
        # New-model versions are staged; the old ones are untouched and still active.
        staged = s.scalars(select(Voiceprint).where(Voiceprint.model_id == "fake-b@1")).all()
        assert len(staged) == 4 and all(v.status == "staged" and not v.active for v in staged)
        assert {v.stats["source_voiceprint_id"] for v in staged} == {ids[f"vp{i}"] for i in range(1, 5)}
        old = s.scalars(select(Voiceprint).where(Voiceprint.model_id == "fake-a@1")).all()
        assert all(v.active and v.status == "active" for v in old)
        n_emb = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_id == "fake-b@1"))
        assert n_emb == (3 + 3 + 2 + 2) + 4  # one per utterance + one voiceprint vector each
        # Each attempt's row says what it would become; vectors are gone once the job is done.
        impostor = s.scalar(
            select(JobItem).where(
                JobItem.job_id == job_id, JobItem.item_key == f"attempt:{ids['impostor'][0]}"
            )
        )
        assert impostor.result["old_decision"] == "accept" and impostor.result["new_decision"] == "reject"
        assert impostor.result["flipped"] is True
        assert (
            s.scalar(
                select(func.count())
                .select_from(JobItem)
                .where(JobItem.job_id == job_id, JobItem.payload.is_not(None))
            )
            == 0
        )

    # A second job over the same voiceprints replaces the staged versions instead of adding more.
    job2, _ = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:model_b"),
        options=RunOptions(workers=0),
    )
    assert run_job(factory, vp_settings, job2)["status"] == "done"
    with factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(Voiceprint).where(Voiceprint.model_id == "fake-b@1"))
            == 4
        )
        assert (
            s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_id == "fake-b@1"))
            == 14
        )

    # Switch-over activates the staged versions and feeds the new model's search index.
    assert switch_over(factory, "fake-b@1", dry_run=True)["activated"] == 4
    counts = switch_over(factory, "fake-b@1")
    assert counts == {"activated": 4, "stale": 0, "already_active": 0, "retired": 0}
    with factory() as s:
        new = s.scalars(select(Voiceprint).where(Voiceprint.model_id == "fake-b@1")).all()
        assert all(v.active and v.status == "active" for v in new)
        assert (
            s.scalar(select(func.count()).select_from(IndexEvent).where(IndexEvent.model_id == "fake-b@1"))
            == 4
        )
        assert all(v.active for v in s.scalars(select(Voiceprint).where(Voiceprint.model_id == "fake-a@1")))
    assert switch_over(factory, "fake-b@1")["activated"] == 0  # nothing staged any more


def test_dry_run_writes_no_voiceprints(vp_settings, db) -> None:
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from jobs.tables import JobItem
    from voiceprint.tables import Voiceprint

    factory, blobs = db
    ids = _populate(factory, blobs)
    # With a cohort as small as 2, the other users' new voiceprints normalize each score (AS-norm).
    settings = vp_settings.model_copy(
        update={"voiceprint": vp_settings.voiceprint.model_copy(update={"cohort_min_size": 2})}
    )
    job_id, _ = create_job(
        factory,
        settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:model_b", dry_run=True),
        options=RunOptions(workers=0),
    )
    status = run_job(factory, settings, job_id)
    decisions = status["summary"]["flips"]["voiceprint"]["decisions"]
    assert decisions["flipped"] == 1 and decisions["cohort_size"] == 3  # 4 users minus the claimant
    with factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(Voiceprint).where(Voiceprint.model_id == "fake-b@1"))
            == 0
        )
        row = s.scalar(
            select(JobItem).where(
                JobItem.job_id == job_id, JobItem.item_key == f"attempt:{ids['impostor'][0]}"
            )
        )
    assert row.result["new_normalized_score"] is not None and row.result["new_method"] == "cosine"


def test_selection_by_model_and_user(vp_settings, db) -> None:
    from jobs.runner import JobRequest, RunOptions, create_job
    from jobs.tables import JobItem

    factory, blobs = db
    ids = _populate(factory, blobs)
    job_id, _ = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:model_b", where=("model_id=fake-a@1", "user=u1")),
        options=RunOptions(workers=0),
    )
    with factory() as s:
        keys = s.scalars(select(JobItem.item_key).where(JobItem.job_id == job_id).order_by(JobItem.seq)).all()
    assert keys == [f"vp:{ids['vp1']}", f"attempt:{ids['genuine'][0]}", f"attempt:{ids['impostor'][0]}"]
    # Voiceprints already made with the target model are never selected.
    same, _ = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:model_a"),
        options=RunOptions(workers=0),
    )
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(JobItem).where(JobItem.job_id == same)) == 0


def test_a_worker_killing_item_fails_alone(vp_settings, db) -> None:
    """An item that kills its worker process is retried alone on a fresh pool, then failed with
    ``worker_crashed``; the items that were in flight with it are redone (alone) and succeed."""
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from jobs.tables import JobItem

    factory, blobs = db
    a = jobfakes.model_a()
    with factory() as s, s.begin():
        ok1 = jobfakes.add_voiceprint(s, blobs, a, "u1", [300, 300])
        poison = jobfakes.add_voiceprint(s, blobs, a, "u2", [666, 666])
        ok2 = jobfakes.add_voiceprint(s, blobs, a, "u3", [1000, 1000])
        ok3 = jobfakes.add_voiceprint(s, blobs, a, "u4", [2000, 2000])
    # 2 workers x 2 queued each: the poison shares the pool with every other item.
    job_id, _ = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="jobfakes:crashing_b"),
        options=RunOptions(workers=2),
    )
    status = run_job(factory, vp_settings, job_id)
    assert (status["status"], status["done"], status["failed"]) == ("done", 3, 1)
    assert status["errors"] == {"worker_crashed": 1}
    with factory() as s:
        rows = {r.item_key: r for r in s.scalars(select(JobItem).where(JobItem.job_id == job_id))}
    assert rows[f"vp:{poison}"].error_code == "worker_crashed"
    assert rows[f"vp:{ok1}"].status == rows[f"vp:{ok2}"].status == rows[f"vp:{ok3}"].status == "done"


def test_fake_embedder_disagreement_is_what_the_scenario_needs() -> None:
    a, b = jobfakes.model_a(), jobfakes.model_b()
    v300, v320 = jobfakes.voice(300), jobfakes.voice(320, seed=1)
    assert float(np.dot(a.embed(v300, sr=16000), a.embed(v320, sr=16000))) > 0.99
    assert float(np.dot(b.embed(v300, sr=16000), b.embed(v320, sr=16000))) < THRESHOLD - 0.4


@pytest.mark.model
def test_real_ecapa_reembedding_when_installed(vp_settings, db) -> None:
    """The real model path: re-embed with ECAPA when its weights are pulled (skips otherwise)."""
    from jobs.items import load_embedder
    from jobs.runner import JobRequest, RunOptions, create_job, run_job
    from voiceprint.errors import ModelUnavailable
    from voiceprint.tables import Embedding, Voiceprint

    try:
        model = load_embedder(
            "ecapa", model_dir=str(vp_settings.resolved_model_dir), settings=vp_settings.voiceprint
        )
    except ModelUnavailable as exc:
        pytest.skip(f"ECAPA weights not installed ({exc.detail})")
    factory, blobs = db
    a = jobfakes.model_a()
    with factory() as s, s.begin():
        for user, f in (("u1", 300), ("u2", 1000)):
            jobfakes.add_voiceprint(s, blobs, a, user, [f, f])
    job_id, _ = create_job(
        factory,
        vp_settings,
        JobRequest(what=("voiceprint",), embedder="ecapa"),
        options=RunOptions(workers=0),
    )
    status = run_job(factory, vp_settings, job_id)
    assert (status["status"], status["done"], status["failed"]) == ("done", 2, 0), status
    flips = status["summary"]["flips"]["voiceprint"]
    assert flips["new_model_id"] == model.model_id and flips["voiceprints"]["reembedded"] == 2
    with factory() as s:
        staged = s.scalars(select(Voiceprint).where(Voiceprint.model_id == model.model_id)).all()
        assert len(staged) == 2 and {v.status for v in staged} == {"staged"}
        dims = set(s.scalars(select(Embedding.dimension).where(Embedding.model_id == model.model_id)))
        assert dims == {192}
