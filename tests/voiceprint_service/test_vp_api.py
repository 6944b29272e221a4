"""The voiceprint HTTP API end to end with the fake embedder: enrollment and its quality gate,
challenges, verification decisions, replay and rate limits, scopes, re-enrollment, erasure, search."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest
from vp_fakes import MODEL_ID, SR, FakeEmbedder, random_voice, speak
from vp_support import ALICE, BOB, CAROL

from core.clock import VirtualClock
from voiceprint import stepup
from voiceprint.scoring import Cohort, as_unit_vectors
from voiceprint.search import IndexRegistry
from voiceprint.service import VoiceprintService
from voiceprint.tables import VerificationAttempt


@pytest.mark.both_dbs
def test_enrollment_activates_after_three_utterances(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    answers = api.enroll_n("alice", ALICE, rng, utterance)
    assert [a["status"] for a in answers] == ["enrolling", "enrolling", "active"]
    assert [a["utterances"] for a in answers] == [1, 2, 3]
    assert [a["activated"] for a in answers] == [False, False, True]
    assert {a["voiceprint_id"] for a in answers} == {answers[0]["voiceprint_id"]}
    assert answers[-1]["model_id"] == MODEL_ID and answers[-1]["required"] == 3
    assert answers[-1]["linked_accounts"] == 0
    assert answers[1]["utterance"]["quality"]["consistency"] > 0.8
    r = api.c.get("/v1/voiceprints/alice", headers=api.claim)
    assert r.status_code == 200, r.text
    body = r.json()
    (vp,) = body["voiceprints"]
    assert (vp["version"], vp["status"], vp["active"], vp["utterances"]) == (1, "active", True, 3)
    assert vp["embedding"] is None and "embedding" not in str(vp["stats"])
    assert vp["stats"]["n_utterances"] == 3 and vp["stats"]["pairwise_cosine_min"] > 0.8
    assert len(vp["enrollment_utterances"]) == 3
    for u in vp["enrollment_utterances"]:  # the audio is kept (content-addressed) until erasure
        assert api.c.app.state.blobs.exists(u["sha256"])


def test_embedding_only_for_admin_who_asks(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    r = api.c.get("/v1/voiceprints/alice?include_embedding=true", headers=api.claim)
    assert r.status_code == 403 and r.json()["code"] == "embedding_access_denied"
    r = api.c.get("/v1/voiceprints/alice?include_embedding=true", headers=api.admin)
    emb = r.json()["voiceprints"][0]["embedding"]
    assert len(emb) == FakeEmbedder.dimension and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    assert api.c.get("/v1/voiceprints/alice", headers=api.admin).json()["voiceprints"][0]["embedding"] is None


@pytest.mark.parametrize(
    ("kwargs", "failed"),
    [
        ({"peak": 4.0}, "clipping_fraction"),  # hard clipped at full scale below
        ({"snr_db": 6.0}, "snr_db"),
        ({"seconds": 1.5}, "speech_s"),
    ],
)
def test_quality_gate_refuses_bad_utterances(api, rng, utterance, kwargs, failed) -> None:  # type: ignore[no-untyped-def]
    y = np.clip(speak(ALICE, rng, **kwargs), -1.0, 1.0)
    path = utterance(ALICE, rng, y=y)
    r = api.enroll("alice", path)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "quality_gate_failed"
    assert failed in {f["check"] for f in body["failures"]}
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not api.c.app.state.blobs.exists(sha)  # a refused upload leaves nothing behind
    assert api.c.get("/v1/voiceprints/alice", headers=api.claim).status_code == 404


def test_inconsistent_and_duplicate_utterances(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    first = utterance(ALICE, rng)
    assert api.enroll("alice", first).status_code == 201
    r = api.enroll("alice", first)
    assert r.status_code == 409 and r.json()["code"] == "duplicate_utterance"
    r = api.enroll("alice", utterance(BOB, rng))
    assert r.status_code == 422 and r.json()["code"] == "enrollment_inconsistent"
    assert r.json()["consistency"] < r.json()["limit"]
    assert api.c.get("/v1/voiceprints/alice", headers=api.claim).json()["voiceprints"][0]["utterances"] == 1


@pytest.mark.both_dbs
def test_verification_accepts_the_voice_and_rejects_another(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    ok = api.verify("alice", utterance(ALICE, rng, seconds=3.0, snr_db=25))
    assert ok.status_code == 201, ok.text
    good = ok.json()
    assert good["decision"] == "accept" and good["model_id"] == MODEL_ID
    assert good["method"] == "cosine" and good["normalized_score"] is None and good["threshold"] == 0.8
    assert good["score"] >= 0.8 and good["prompt"].isdigit() and len(good["prompt"]) == 8
    bad = api.verify("alice", utterance(BOB, rng, seconds=3.0)).json()
    assert bad["decision"] == "reject" and bad["score"] < 0.8
    with api.c.app.state.session_factory() as s:
        rows = {a.id: a for a in s.query(VerificationAttempt).all()}
        assert rows[good["verification_id"]].prompt == good["prompt"]
        assert rows[bad["verification_id"]].decision == "reject"
        assert stepup.verification_passed(s, good["verification_id"], "alice")
        assert not stepup.verification_passed(s, bad["verification_id"], "alice")
        assert not stepup.verification_passed(s, good["verification_id"], "bob")
        assert not stepup.verification_passed(s, good["verification_id"], "alice", max_age_s=-10)
        assert not stepup.verification_passed(s, "ver_unknown", "alice")
        assert not stepup.verification_passed(s, "", "alice")


def test_verification_audio_is_not_kept_and_replays_are_refused(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    path = utterance(ALICE, rng, seconds=3.0)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert api.verify("alice", path).json()["decision"] == "accept"
    assert not api.c.app.state.blobs.exists(sha)
    again = api.verify("alice", path)  # fresh challenge, same bytes
    assert again.status_code == 422 and again.json()["code"] == "replayed_audio"
    # An enrollment recording is not a verification recording either.
    with api.c.app.state.session_factory() as s:
        from voiceprint.tables import EnrollmentUtterance

        enrolled_sha = s.query(EnrollmentUtterance).first().sha256
    enrolled_path = next(
        p for p in path.parent.iterdir() if hashlib.sha256(p.read_bytes()).hexdigest() == enrolled_sha
    )
    r = api.verify("alice", enrolled_path)
    assert r.status_code == 422 and r.json()["code"] == "replayed_audio"
    assert api.c.app.state.blobs.exists(enrolled_sha)  # still referenced by the enrollment


@pytest.mark.both_dbs
def test_challenges_are_single_use_user_bound_and_expire(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    c = api.challenge("alice").json()
    assert set(c) == {"challenge_id", "prompt", "expires_at"}
    assert api.verify("alice", utterance(ALICE, rng, seconds=3.0), c["challenge_id"]).status_code == 201
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0), c["challenge_id"])
    assert r.status_code == 422 and r.json()["code"] == "challenge_used"
    other = api.challenge("bob").json()["challenge_id"]
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0), other)
    assert r.status_code == 422 and r.json()["code"] == "challenge_invalid"
    r = api.c.post(
        "/v1/voiceprints/alice/verifications",
        headers=api.claim,
        files={"file": ("a.flac", utterance(ALICE, rng, seconds=3.0).read_bytes())},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    service = api.c.app.state.voiceprints
    service.clock = VirtualClock(dt.datetime.now(dt.UTC))
    c = api.challenge("alice").json()
    service.clock.advance(service.vp.challenge_ttl_s + 1)
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0), c["challenge_id"])
    assert r.status_code == 422 and r.json()["code"] == "challenge_expired"
    # Two challenges never share a prompt by construction of the test (random 8 digits).
    prompts = {api.challenge("alice").json()["prompt"] for _ in range(20)}
    assert len(prompts) == 20


def test_verification_attempts_are_rate_limited(vp_settings, fake_embedder, keys, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from vp_support import VoiceApi, make_app

    vp = vp_settings.voiceprint.model_copy(update={"verify_rate_limit": 3, "rate_window_s": 600})
    with TestClient(make_app(vp_settings.model_copy(update={"voiceprint": vp}), fake_embedder)) as c:
        from db import keys as dbkeys

        def mk(*scopes: str) -> dict[str, str]:
            with c.app.state.session_factory() as s, s.begin():
                return {"Authorization": f"Bearer {dbkeys.create_key(s, name='t', scopes=list(scopes))[1]}"}

        api = VoiceApi(c, mk)
        api.enroll_n("alice", ALICE, rng, utterance)
        codes = [api.verify("alice", utterance(ALICE, rng, seconds=3.0)).status_code for _ in range(4)]
        assert codes == [201, 201, 201, 429]
        r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
        assert r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        assert api.verify("bob", utterance(BOB, rng, seconds=3.0)).status_code == 404  # per user


def test_verification_before_enrollment_is_complete(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
    assert r.status_code == 404 and r.json()["code"] == "voiceprint_not_found"
    api.enroll_n("alice", ALICE, rng, utterance, n=2)
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
    assert r.status_code == 409 and r.json()["code"] == "not_enough_enrollments"
    assert r.json()["utterances"] == 2 and r.json()["required"] == 3


def test_too_little_speech_in_a_verification(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    r = api.verify("alice", utterance(ALICE, rng, seconds=0.8))
    assert r.status_code == 422 and r.json()["code"] == "too_little_speech"


def test_model_change_is_refused_not_silently_compared(vp_settings, keys, rng, utterance, api) -> None:  # type: ignore[no-untyped-def]
    from api.deps import get_embedder

    api.enroll_n("alice", ALICE, rng, utterance)
    api.c.app.dependency_overrides[get_embedder] = lambda: FakeEmbedder(model_id="fake-spectral@2")
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
    assert r.status_code == 409 and r.json()["code"] == "model_mismatch"
    # Enrolling with the new model works, but it has no threshold of its own: 503, never model 1's.
    api.enroll_n("alice", ALICE, rng, utterance)
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
    assert r.status_code == 503 and r.json()["code"] == "threshold_unavailable"
    versions = api.c.get("/v1/voiceprints/alice", headers=api.claim).json()["voiceprints"]
    assert sorted((v["model_id"], v["active"]) for v in versions) == [
        ("fake-spectral@1", True),
        ("fake-spectral@2", True),
    ]


def test_no_model_loaded_answers_503(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    from api.deps import get_embedder

    api.c.app.dependency_overrides[get_embedder] = lambda: None
    r = api.enroll("alice", utterance(ALICE, rng))
    assert r.status_code == 503 and r.json()["code"] == "model_unavailable"
    r = api.verify("alice", utterance(ALICE, rng))
    assert r.status_code == 503 and r.json()["code"] == "model_unavailable"


def test_scopes(api, rng, utterance, keys) -> None:  # type: ignore[no-untyped-def]
    assert api.enroll("alice", utterance(ALICE, rng), headers=api.claim).status_code == 403
    api.enroll_n("alice", ALICE, rng, utterance)
    assert api.verify("alice", utterance(ALICE, rng), headers=api.upload).status_code == 403
    assert api.c.post("/v1/voiceprints/alice/challenges", headers=api.upload).status_code == 403
    assert api.c.get("/v1/voiceprints/alice", headers=api.upload).status_code == 200
    assert api.c.delete("/v1/voiceprints/alice", headers=api.claim).status_code == 403
    assert (
        api.c.post("/v1/voiceprints/search", json={"user_id": "alice"}, headers=api.claim).status_code == 403
    )
    assert api.c.get("/v1/voiceprints/alice").status_code == 401
    assert api.c.get("/v1/voiceprints/bad%20id", headers=api.claim).status_code == 422


def test_upload_size_limit(vp_settings, fake_embedder, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from vp_support import VoiceApi, make_app

    from db import keys as dbkeys

    vp = vp_settings.voiceprint.model_copy(update={"max_upload_bytes": 4096})
    with TestClient(make_app(vp_settings.model_copy(update={"voiceprint": vp}), fake_embedder)) as c:
        with c.app.state.session_factory() as s, s.begin():
            key = dbkeys.create_key(s, name="t", scopes=["upload", "claim"])[1]
        api = VoiceApi(c, lambda *sc: {"Authorization": f"Bearer {key}"})
        r = api.enroll("alice", utterance(ALICE, rng))
        assert r.status_code == 413


@pytest.mark.both_dbs
def test_re_enrollment_makes_a_new_version(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    first = api.enroll_n("alice", ALICE, rng, utterance)
    # The same account re-enrolls (say, a new phone): until the new version is complete, the old
    # one keeps verifying.
    api.enroll_n("alice", ALICE, rng, utterance, n=2)
    assert api.verify("alice", utterance(ALICE, rng, seconds=3.0)).json()["decision"] == "accept"
    third = api.enroll("alice", utterance(ALICE, rng)).json()
    assert third["version"] == 2 and third["status"] == "active"
    versions = api.c.get("/v1/voiceprints/alice", headers=api.claim).json()["voiceprints"]
    assert [(v["version"], v["status"]) for v in versions] == [(2, "active"), (1, "superseded")]
    assert versions[1]["superseded_at"] is not None
    assert first[0]["voiceprint_id"] != third["voiceprint_id"]
    with api.c.app.state.session_factory() as s:
        idx = api.c.app.state.voiceprints.registry.get(s, MODEL_ID)
        assert (
            len(idx) == 1
            and idx.search(idx.vector("alice"), k=1)[0][0].voiceprint_id == third["voiceprint_id"]
        )


@pytest.mark.both_dbs
def test_search_links_accounts_sharing_a_voice(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    api.enroll_n("carol", CAROL, rng, utterance)
    last = api.enroll_n("alice-2", ALICE, rng, utterance)[-1]  # the same person, a second account
    assert last["linked_accounts"] == 1
    r = api.c.post("/v1/voiceprints/search", json={"user_id": "alice"}, headers=api.admin)
    assert r.status_code == 200, r.text
    (group,) = r.json()["results"]
    assert group["model_id"] == MODEL_ID and group["threshold"] == 0.9
    assert [m["user_id"] for m in group["matches"]] == ["alice-2"] and group["matches"][0]["score"] > 0.9
    # A looser threshold shows more neighbours; k bounds them.
    r = api.c.post(
        "/v1/voiceprints/search", json={"user_id": "alice", "threshold": -1.0, "k": 1}, headers=api.admin
    )
    assert [m["user_id"] for m in r.json()["results"][0]["matches"]] == ["alice-2"]
    r = api.c.post("/v1/voiceprints/search", json={"user_id": "alice", "threshold": -1.0}, headers=api.admin)
    assert {m["user_id"] for m in r.json()["results"][0]["matches"]} == {"alice-2", "carol"}
    r = api.c.post("/v1/voiceprints/search", json={"user_id": "nobody"}, headers=api.admin)
    assert r.status_code == 404
    r = api.c.post("/v1/voiceprints/search", json={"user_id": "alice", "k": 0}, headers=api.admin)
    assert r.status_code == 422
    with api.c.app.state.session_factory() as s:
        assert stepup.linked_accounts(s, "alice") == ["alice-2"]
        assert stepup.linked_accounts(s, "alice-2") == ["alice"]
        assert stepup.linked_accounts(s, "carol") == []
        assert stepup.linked_accounts(s, "nobody") == []


@pytest.mark.both_dbs
def test_erasure_deletes_embeddings_and_unshared_audio(api, rng, utterance, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from db.base import new_id
    from db.tables import Recording

    paths = [utterance(ALICE, rng) for _ in range(3)]
    for p in paths:
        assert api.enroll("alice", p).status_code == 201
    api.enroll_n("alice-2", ALICE, rng, utterance)
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    # One of alice's recordings is also a stored song recording (same bytes): it must survive.
    with api.c.app.state.session_factory() as s, s.begin():
        s.add(
            Recording(
                id=new_id("rec"),
                user_id="alice",
                song_id="s",
                kind="vocal",
                sha256=shas[0],
                size_bytes=1,
                filename=None,
                media_type="audio/flac",
                container="flac",
                codec="flac",
                sample_rate=SR,
                channels=1,
                duration_s=4.0,
                report={},
                report_version="x",
            )
        )
    r = api.c.delete("/v1/voiceprints/alice", headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "user_id": "alice",
        "deleted_voiceprints": 1,
        "deleted_utterances": 3,
        "deleted_embeddings": 4,
        "deleted_blobs": 2,
    }
    blobs = api.c.app.state.blobs
    assert blobs.exists(shas[0]) and not blobs.exists(shas[1]) and not blobs.exists(shas[2])
    assert api.c.get("/v1/voiceprints/alice", headers=api.admin).status_code == 404
    assert api.c.delete("/v1/voiceprints/alice", headers=api.admin).status_code == 404
    with api.c.app.state.session_factory() as s:
        from voiceprint.tables import Embedding, EnrollmentUtterance, Voiceprint

        assert s.query(Voiceprint).filter_by(user_id="alice").count() == 0
        assert s.query(EnrollmentUtterance).filter_by(user_id="alice").count() == 0
        assert s.query(Embedding).count() == 4  # alice-2's 3 utterances + voiceprint
        assert stepup.linked_accounts(s, "alice-2") == []  # the erased voice left the index
    r = api.verify("alice", utterance(ALICE, rng, seconds=3.0))
    assert r.status_code == 404


def test_blob_shared_by_two_enrollments_survives_one_erasure(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    shared = utterance(ALICE, rng)
    for user in ("alice", "alice-2"):
        assert api.enroll(user, shared).status_code == 201
    sha = hashlib.sha256(shared.read_bytes()).hexdigest()
    assert api.c.delete("/v1/voiceprints/alice", headers=api.admin).json()["deleted_blobs"] == 0
    assert api.c.app.state.blobs.exists(sha)
    assert api.c.delete("/v1/voiceprints/alice-2", headers=api.admin).json()["deleted_blobs"] == 1
    assert not api.c.app.state.blobs.exists(sha)


def test_asnorm_with_a_cohort_set(api, rng, utterance, fake_embedder) -> None:  # type: ignore[no-untyped-def]
    from voiceprint.enrollment import energy_speech_only

    service = api.c.app.state.voiceprints
    service.vp = service.vp.model_copy(
        update={"cohort_source": "set", "cohort_min_size": 20, "asnorm_top_n": 10}
    )
    service.cohorts.settings = service.vp
    cohort = np.stack(
        [
            fake_embedder.embed(energy_speech_only(speak(random_voice(rng), rng), sr=SR), sr=SR)
            for _ in range(40)
        ]
    )
    service.cohorts.add_set(Cohort(MODEL_ID, as_unit_vectors(cohort), "test"))
    api.enroll_n("alice", ALICE, rng, utterance)
    good = api.verify("alice", utterance(ALICE, rng, seconds=3.0)).json()
    bad = api.verify("alice", utterance(BOB, rng, seconds=3.0)).json()
    assert good["method"] == bad["method"] == "asnorm"
    assert good["cohort_size"] == 40 and good["threshold"] == 2.0
    assert good["decision"] == "accept" and good["normalized_score"] > 2.0
    assert bad["decision"] == "reject" and bad["normalized_score"] < good["normalized_score"]
    # A cohort from another model is never used: with only a cohort of model 2, raw cosine decides.
    service.cohorts._sets.clear()
    service.cohorts.add_set(Cohort("fake-spectral@2", as_unit_vectors(cohort), "test"))
    plain = api.verify("alice", utterance(ALICE, rng, seconds=3.0)).json()
    assert plain["method"] == "cosine" and plain["normalized_score"] is None


def test_index_warm_up_builds_the_current_models_index(api, rng, utterance) -> None:  # type: ignore[no-untyped-def]
    api.enroll_n("alice", ALICE, rng, utterance)
    fresh = VoiceprintService(
        api.c.app.state.settings,
        api.c.app.state.session_factory,
        clock=api.c.app.state.clock,
        registry=IndexRegistry(),
    )
    fresh.warm_index(MODEL_ID)
    assert fresh.registry._indexes[MODEL_ID].users == ["alice"]
    fresh.warm_index("never-enrolled@1")  # nothing to build: no error, no index
    assert "never-enrolled@1" not in fresh.registry._indexes
