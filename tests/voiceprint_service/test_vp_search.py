"""Voice search index: exactness of the flat backend, HNSW recall, tombstones, persistence, and
keeping several processes' indexes in sync with the database through the change feed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db.base import new_id
from db.engine import make_engine, make_session_factory
from voiceprint import search
from voiceprint.scoring import as_unit_vectors
from voiceprint.search import IndexParams, IndexRegistry, VoiceIndex, record_change
from voiceprint.tables import Embedding, IndexEvent, IndexState, Voiceprint, vector_to_bytes

M = "fake-model@1"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def clustered(rng: np.random.Generator, n: int, d: int, *, n_speakers: int | None = None) -> np.ndarray:
    """Speaker-like data: unit vectors around random speaker centers."""
    n_speakers = n_speakers or max(n // 4, 1)
    centers = rng.standard_normal((n_speakers, d))
    return as_unit_vectors(centers[rng.integers(0, n_speakers, n)] + 0.6 * rng.standard_normal((n, d)))


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("kind", ["flat", "numpy"])
def test_exact_backends_match_brute_force(kind: str, rng: np.random.Generator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if kind == "numpy":
        monkeypatch.setattr(search, "faiss", None)
    x = clustered(rng, 500, 32)
    idx = VoiceIndex(M, 32, IndexParams(kind="flat"))
    users = [f"u{i}" for i in range(500)]
    idx.upsert(users, [f"vp{i}" for i in range(500)], x)
    assert idx.kind == kind and len(idx) == 500
    q = x[:20]
    got = idx.search(q, k=5)
    want = exact_topk(x, q, 5)
    for hits, ids in zip(got, want, strict=False):
        assert [h.user_id for h in hits] == [users[i] for i in ids]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def flat_speaker_space(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """The hard case: anisotropic but unclustered, like voiceprints of many different people."""
    scales = 1.0 / np.sqrt(1.0 + np.arange(d) / 4.0)
    return as_unit_vectors(rng.standard_normal((n, d)) * scales)


def test_pq_refine_recall_at_10_is_exact_on_a_flat_speaker_space(rng: np.random.Generator) -> None:
    n, d = 20000, 192
    x = flat_speaker_space(rng, n, d)
    idx = VoiceIndex(M, d, IndexParams(kind="pq"))
    idx.upsert([str(i) for i in range(n)], [f"vp{i}" for i in range(n)], x)
    q = flat_speaker_space(rng, 200, d)
    want = exact_topk(x, q, 10)
    got = idx.search(q, k=10)
    recall = np.mean(
        [len({int(h.user_id) for h in g} & set(w.tolist())) / 10 for g, w in zip(got, want, strict=False)]
    )
    assert recall >= 0.99
    # Scores are the exact float32 cosines (re-ranked), not the PQ approximations.
    for g, row in zip(got[:10], q[:10], strict=False):
        for h in g:
            assert h.score == pytest.approx(float(x[int(h.user_id)] @ row), abs=1e-5)


def test_hnsw_recall_at_10_against_exact_on_clustered_data(rng: np.random.Generator) -> None:
    n, d = 8000, 64
    x = clustered(rng, n, d)
    idx = VoiceIndex(M, d, IndexParams(kind="hnsw", hnsw_m=32, ef_construction=100, ef_search=128))
    idx.upsert([str(i) for i in range(n)], [f"vp{i}" for i in range(n)], x)
    assert idx.kind == "hnsw"
    q = as_unit_vectors(x[rng.choice(n, 300, replace=False)] + 0.3 * rng.standard_normal((300, d)))
    want = exact_topk(x, q, 10)
    got = idx.search(q, k=10)
    recall = np.mean(
        [len({int(h.user_id) for h in g} & set(w.tolist())) / 10 for g, w in zip(got, want, strict=False)]
    )
    assert recall >= 0.99


def test_replace_remove_and_exclude(rng: np.random.Generator) -> None:
    x = clustered(rng, 50, 16)
    idx = VoiceIndex(M, 16, IndexParams(kind="flat"))
    idx.upsert([f"u{i}" for i in range(50)], [f"a{i}" for i in range(50)], x)
    # Replacing u0 with u1's vector: a search for that vector finds both, with the new voiceprint id.
    idx.upsert(["u0"], ["b0"], x[1:2])
    hits = idx.search(x[1], k=2)[0]
    assert {h.user_id for h in hits} == {"u0", "u1"}
    assert {h.voiceprint_id for h in hits} == {"b0", "a1"}
    assert len(idx) == 50
    # Excluding the querying user; removing an entry.
    assert idx.search(x[1], k=1, exclude=["u1"])[0][0].user_id == "u0"
    assert idx.remove("u0") and not idx.remove("u0")
    assert "u0" not in {h.user_id for h in idx.search(x[1], k=49)[0]}
    assert idx.vector("u0") is None
    np.testing.assert_allclose(idx.vector("u1"), x[1], atol=1e-6)


@pytest.mark.parametrize("kind", ["pq", "hnsw", "flat"])
def test_tombstones_are_filtered_and_compacted(kind: str, rng: np.random.Generator) -> None:
    x = clustered(rng, 400, 16)
    idx = VoiceIndex(M, 16, IndexParams(kind=kind, ef_construction=64, ef_search=64))  # type: ignore[arg-type]
    users = [f"u{i}" for i in range(400)]
    idx.upsert(users, users, x)
    for u in users[:50]:  # 12.5 %: tombstones, not yet compacted
        idx.remove(u)
    assert idx._dead == 50
    hits = idx.search(x[:50], k=10)
    assert all(h.user_id not in set(users[:50]) for row in hits for h in row)
    assert all(len(row) == 10 for row in hits)
    for u in users[50:120]:  # past 25 %: compacted
        idx.remove(u)
    # compacted at the 101st tombstone (> 25 % of 400); 19 more since
    assert (len(idx._users), idx._dead, len(idx)) == (299, 19, 280)
    assert idx.search(x[200], k=1)[0][0].user_id == "u200"


def test_auto_switches_to_pq_above_exact_below(rng: np.random.Generator) -> None:
    x = clustered(rng, 120, 16)
    idx = VoiceIndex(M, 16, IndexParams(kind="auto", exact_below=100, ef_construction=32))
    idx.upsert([f"u{i}" for i in range(90)], [f"v{i}" for i in range(90)], x[:90])
    assert idx.kind == "flat"
    idx.upsert([f"u{i}" for i in range(90, 120)], [f"v{i}" for i in range(90, 120)], x[90:])
    assert idx.kind == "pq" and len(idx) == 120
    assert idx.search(x[5], k=1)[0][0].user_id == "u5"
    assert idx.search(x[110], k=1)[0][0].user_id == "u110"


@pytest.mark.parametrize("kind", ["flat", "pq", "hnsw"])
def test_save_and_load_round_trip(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    x = clustered(rng, 200, 16)
    idx = VoiceIndex(M, 16, IndexParams(kind=kind, ef_construction=32))  # type: ignore[arg-type]
    idx.upsert([f"u{i}" for i in range(200)], [f"v{i}" for i in range(200)], x)
    idx.remove("u3")
    idx.generation, idx.epoch = 7, "abc"
    idx.save(tmp_path / "ix")
    idx.save(tmp_path / "ix")  # overwriting is atomic and works
    back = VoiceIndex.load(tmp_path / "ix", idx.params)
    assert (back.kind, back.generation, back.epoch, len(back), back.model_id) == (kind, 7, "abc", 199, M)
    q = x[:30]
    assert [[h.user_id for h in r] for r in back.search(q, k=5)] == [
        [h.user_id for h in r] for r in idx.search(q, k=5)
    ]


def test_input_validation(rng: np.random.Generator) -> None:
    idx = VoiceIndex(M, 8, IndexParams(kind="flat"))
    assert idx.search(rng.standard_normal(8), k=3) == [[]]
    with pytest.raises(ValueError):
        idx.upsert(["a", "a"], ["1", "2"], rng.standard_normal((2, 8)))
    with pytest.raises(ValueError):
        idx.search(rng.standard_normal(8), k=0)
    from voiceprint.service_errors import InvalidEmbedding

    with pytest.raises(InvalidEmbedding):
        idx.upsert(["a"], ["1"], rng.standard_normal((1, 9)))


# --- database sync ------------------------------------------------------------------------------


@pytest.fixture
def factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def activate(s, user: str, vec: np.ndarray, *, model_id: str = M) -> str:  # type: ignore[no-untyped-def]
    """What enrollment does on activation: supersede the old voiceprint, activate a new one, log it."""
    old = s.execute(
        select(Voiceprint).where(
            Voiceprint.user_id == user, Voiceprint.model_id == model_id, Voiceprint.active.is_(True)
        )
    ).scalar_one_or_none()
    version = 1
    if old is not None:
        old.active, old.status, version = False, "superseded", old.version + 1
        s.flush()
    vp = Voiceprint(
        id=new_id("vp"),
        user_id=user,
        model_id=model_id,
        version=version,
        status="active",
        active=True,
        n_utterances=3,
        stats={},
        created_at=NOW,
        activated_at=NOW,
    )
    s.add(vp)
    s.flush()
    s.add(
        Embedding(
            id=new_id("emb"),
            voiceprint_id=vp.id,
            kind="voiceprint",
            model_id=model_id,
            dimension=vec.shape[0],
            vector=vector_to_bytes(vec),
            created_at=NOW,
        )
    )
    record_change(s, model_id, user, vp.id)
    return vp.id


def erase(s, user: str, *, model_id: str = M) -> None:  # type: ignore[no-untyped-def]
    for vp in s.execute(select(Voiceprint).where(Voiceprint.user_id == user)).scalars():
        s.delete(vp)
    s.flush()
    record_change(s, model_id, user, None)


@pytest.mark.both_dbs
def test_two_processes_stay_in_sync_through_the_change_feed(factory, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    x = clustered(rng, 40, 16)
    a, b = IndexRegistry(IndexParams(kind="flat")), IndexRegistry(IndexParams(kind="flat"))
    with factory() as s, s.begin():
        assert a.get(s, M) is None  # nothing enrolled with this model yet
        for i in range(30):
            activate(s, f"u{i}", x[i])
    with factory() as s:
        ia, ib = a.get(s, M), b.get(s, M)
        assert len(ia) == len(ib) == 30 and ia.generation == 30
    # Process A sees changes made "elsewhere": re-enrollment, erasure, new users.
    with factory() as s, s.begin():
        activate(s, "u0", x[35])
        erase(s, "u1")
        for i in range(30, 35):
            activate(s, f"u{i}", x[i])
    with factory() as s:
        ia = a.get(s, M)
        assert ia.generation == 37 and len(ia) == 34 and ia.kind == "flat"
        assert a.get(s, M) is ia  # replayed in place, not rebuilt
        assert "u1" not in ia.users
        np.testing.assert_allclose(ia.vector("u0"), x[35], atol=1e-6)
        ib = b.get(s, M)
        assert sorted(ia.users) == sorted(ib.users)
        assert a.search_user(s, "u0", M, k=3)[0].score < 1.0 + 1e-6
    # Another model id has its own index; asking about a model with no data gives None.
    with factory() as s:
        assert a.get(s, "other@1") is None


def test_pruned_feed_or_foreign_epoch_forces_a_rebuild(
    factory, tmp_path: Path, rng: np.random.Generator
) -> None:  # type: ignore[no-untyped-def]
    x = clustered(rng, 30, 16)
    reg = IndexRegistry(IndexParams(kind="flat", exact_below=0), index_dir=tmp_path / "ix")
    with factory() as s, s.begin():
        for i in range(10):
            activate(s, f"u{i}", x[i])
    with factory() as s:
        first = reg.get(s, M)
        assert len(first) == 10
    reg.save_all()
    with factory() as s, s.begin():
        for i in range(10, 20):
            activate(s, f"u{i}", x[i])
        search.prune_events(s, M, keep=3)
        assert (
            s.execute(select(IndexEvent).where(IndexEvent.model_id == M)).scalars().all()[0].generation == 18
        )
    # A fresh "process" loads the saved index (generation 10), cannot replay 11..17: rebuilds.
    fresh = IndexRegistry(IndexParams(kind="flat", exact_below=0), index_dir=tmp_path / "ix")
    with factory() as s:
        idx = fresh.get(s, M)
        assert len(idx) == 20 and idx.generation == 20
    # A saved index from a different database (other epoch) is ignored.
    with factory() as s, s.begin():
        s.execute(IndexState.__table__.update().values(epoch="someotherdb"))
    with factory() as s:
        idx2 = fresh.get(s, M)
        assert idx2 is not idx and idx2.epoch == "someotherdb" and len(idx2) == 20


def test_one_active_voiceprint_per_user_and_model_is_enforced(factory, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import IntegrityError

    with factory() as s, s.begin():
        activate(s, "u", as_unit_vectors(rng.standard_normal(8)))
    with pytest.raises(IntegrityError):
        with factory() as s, s.begin():
            s.add(
                Voiceprint(
                    id=new_id("vp"),
                    user_id="u",
                    model_id=M,
                    version=2,
                    status="active",
                    active=True,
                    n_utterances=3,
                    stats={},
                    created_at=NOW,
                )
            )
            s.flush()


def test_pq_is_exact_until_it_can_train_then_retrains_as_it_grows(rng: np.random.Generator) -> None:
    from voiceprint.search import PQ_MIN_TRAIN, RETRAIN_GROWTH

    x = flat_speaker_space(rng, RETRAIN_GROWTH * (PQ_MIN_TRAIN + 5) + 10, 32)
    idx = VoiceIndex(M, 32, IndexParams(kind="pq"))
    for i in range(10):  # one by one, as enrollments arrive
        idx.upsert([f"u{i}"], [f"v{i}"], x[i : i + 1])
    assert not idx._index.index.is_trained
    assert [h.user_id for h in idx.search(x[3], k=2)[0]][0] == "u3"
    n1 = PQ_MIN_TRAIN + 5
    idx.upsert([f"u{i}" for i in range(10, n1)], [f"v{i}" for i in range(10, n1)], x[10:n1])
    assert idx._index.index.is_trained and idx._index.trained_on == n1
    n2 = x.shape[0]
    for i in range(n1, n2):
        idx.upsert([f"u{i}"], [f"v{i}"], x[i : i + 1])
    assert idx._index.trained_on >= RETRAIN_GROWTH * n1 - 1
    want = exact_topk(x, x[:50], 5)
    got = idx.search(x[:50], k=5)
    assert (
        np.mean([len({int(h.user_id[1:]) for h in g} & set(w)) / 5 for g, w in zip(got, want, strict=False)])
        >= 0.99
    )


def test_tune_changes_hnsw_search_effort(rng: np.random.Generator) -> None:
    x = flat_speaker_space(rng, 3000, 64)
    idx = VoiceIndex(M, 64, IndexParams(kind="hnsw", hnsw_m=8, ef_construction=32, ef_search=16))
    idx.upsert([str(i) for i in range(3000)], [str(i) for i in range(3000)], x)
    q = flat_speaker_space(rng, 100, 64)
    want = exact_topk(x, q, 10)

    def recall() -> float:
        got = idx.search(q, k=10)
        return float(
            np.mean([len({int(h.user_id) for h in g} & set(w)) / 10 for g, w in zip(got, want, strict=True)])
        )

    low = recall()
    idx.tune(ef_search=400)
    assert recall() > low
    with pytest.raises(ValueError):
        idx.tune(hnsw_m=64)
