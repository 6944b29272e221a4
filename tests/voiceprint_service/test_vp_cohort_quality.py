"""Cohort choice (set vs enrolled voiceprints, per model, never the claimant) and the enrollment
quality measurements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from vp_fakes import MODEL_ID, SR, FakeEmbedder, random_voice, speak

from db.base import new_id
from db.engine import make_engine, make_session_factory
from voiceprint import enrollment
from voiceprint.cohort import CohortProvider, build_cohort_set, embed_file
from voiceprint.config import VoiceprintSettings
from voiceprint.enrollment import energy_speech_only
from voiceprint.scoring import Cohort, as_unit_vectors
from voiceprint.tables import Embedding, Voiceprint, vector_to_bytes

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def factory(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def _enroll_rows(factory, n: int, model_id: str, rng: np.random.Generator, prefix: str = "u") -> None:  # type: ignore[no-untyped-def]
    with factory() as s, s.begin():
        for i in range(n):
            vp = Voiceprint(
                id=new_id("vp"),
                user_id=f"{prefix}{i}",
                model_id=model_id,
                version=1,
                status="active",
                active=True,
                n_utterances=3,
                stats={},
                created_at=NOW,
                activated_at=NOW + dt.timedelta(seconds=i),
            )
            s.add(vp)
            s.flush()
            s.add(
                Embedding(
                    id=new_id("emb"),
                    voiceprint_id=vp.id,
                    kind="voiceprint",
                    model_id=model_id,
                    dimension=8,
                    vector=vector_to_bytes(as_unit_vectors(rng.standard_normal(8))),
                    created_at=NOW,
                )
            )


def test_enrolled_cohort_needs_enough_voiceprints_and_excludes_the_claimant(factory, rng) -> None:  # type: ignore[no-untyped-def]
    settings = VoiceprintSettings(
        cohort_source="enrolled", cohort_min_size=5, cohort_max_size=6, cohort_refresh_s=0
    )
    provider = CohortProvider(settings)
    _enroll_rows(factory, 5, MODEL_ID, rng)
    _enroll_rows(factory, 9, "other@1", rng, prefix="o")
    with factory() as s:
        assert provider.for_verification(s, MODEL_ID, exclude_user="u0") is None  # 4 others < 5
        c = provider.for_verification(s, MODEL_ID, exclude_user="nobody")
        assert c is not None and len(c) == 5 and c.model_id == MODEL_ID and c.source == "enrolled"
    _enroll_rows(factory, 5, MODEL_ID, rng, prefix="v")
    with factory() as s:
        c = provider.for_verification(s, MODEL_ID, exclude_user="v4")
        assert c is not None and len(c) == 6  # capped at cohort_max_size, claimant excluded
        claimant = (
            s.query(Embedding)
            .join(Voiceprint, Voiceprint.id == Embedding.voiceprint_id)
            .filter(Voiceprint.user_id == "v4")
            .one()
            .array()
        )
        assert not any(np.allclose(row, claimant) for row in c.vectors)


def test_enrolled_cohort_is_cached_for_its_lifetime(factory, rng) -> None:  # type: ignore[no-untyped-def]
    now = [0.0]
    provider = CohortProvider(
        VoiceprintSettings(cohort_source="enrolled", cohort_min_size=3, cohort_refresh_s=60),
        monotonic=lambda: now[0],
    )
    _enroll_rows(factory, 3, MODEL_ID, rng)
    with factory() as s:
        assert len(provider.for_verification(s, MODEL_ID, exclude_user="x")) == 3
    _enroll_rows(factory, 2, MODEL_ID, rng, prefix="w")
    with factory() as s:
        assert len(provider.for_verification(s, MODEL_ID, exclude_user="x")) == 3
        now[0] = 61
        assert len(provider.for_verification(s, MODEL_ID, exclude_user="x")) == 5
        provider.invalidate()


def test_cohort_source_choice(factory, rng) -> None:  # type: ignore[no-untyped-def]
    _enroll_rows(factory, 4, MODEL_ID, rng)
    the_set = Cohort(MODEL_ID, as_unit_vectors(rng.standard_normal((10, 8))), "set:test")
    with factory() as s:
        for source, expected in [
            ("auto", "set:test"),
            ("set", "set:test"),
            ("enrolled", "enrolled"),
            ("none", None),
        ]:
            p = CohortProvider(VoiceprintSettings(cohort_source=source, cohort_min_size=3))
            p.add_set(the_set)
            c = p.for_verification(s, MODEL_ID, exclude_user="x")
            assert (c.source if c else None) == expected, source
        # auto without a set falls back to enrolled voiceprints; a set of another model never counts
        p = CohortProvider(VoiceprintSettings(cohort_source="auto", cohort_min_size=3))
        p.add_set(Cohort("other@1", the_set.vectors, "set:other"))
        assert p.for_verification(s, MODEL_ID, exclude_user="x").source == "enrolled"


def test_cohort_set_is_embedded_once_per_model_and_file_set(tmp_path: Path, rng) -> None:  # type: ignore[no-untyped-def]
    from signals import encode

    audio = tmp_path / "cohort"
    for i in range(6):
        (audio / f"spk{i}").mkdir(parents=True)
        encode(speak(random_voice(rng), rng, seconds=3.0)[None, :], sr=SR, path=audio / f"spk{i}" / "a.flac")
    (audio / "spk0" / "notes.txt").write_text("ignored")
    encode(np.zeros((1, 800), dtype=np.float32), sr=SR, path=audio / "silent.wav")  # skipped: no speech
    cache = tmp_path / "cache"
    emb = FakeEmbedder()

    def embed(path: Path, e: FakeEmbedder) -> np.ndarray:
        return embed_file(path, e, speech=lambda y: energy_speech_only(y, sr=SR))

    c1 = build_cohort_set(audio, emb, cache_dir=cache, embed=embed)
    assert c1 is not None and len(c1) == 6 and c1.model_id == emb.model_id
    calls = emb.calls
    c2 = build_cohort_set(audio, emb, cache_dir=cache, embed=embed)
    assert emb.calls == calls and np.array_equal(c1.vectors, c2.vectors)  # from the cache
    other = FakeEmbedder(model_id="fake-spectral@2", seed=8)
    c3 = build_cohort_set(audio, other, cache_dir=cache, embed=embed)
    assert other.calls == 6 and c3.model_id == "fake-spectral@2"  # a new model is re-embedded
    encode(speak(random_voice(rng), rng, seconds=3.0)[None, :], sr=SR, path=audio / "spk5" / "b.flac")
    assert len(build_cohort_set(audio, emb, cache_dir=cache, embed=embed)) == 7  # changed set
    assert build_cohort_set(tmp_path / "empty-nothing", emb, cache_dir=cache) is None


# --- quality measurements --------------------------------------------------------------------


def test_clipping_fraction_counts_flat_tops_only() -> None:
    y = np.zeros(1000, dtype=np.float32)
    y[100:110] = 1.0  # a run of 10 clipped samples
    y[500] = 1.0  # a lone full-scale peak is not clipping
    y[600:602] = -1.0  # run of 2: below CLIP_RUN
    assert enrollment.clipping_fraction(y) == pytest.approx(10 / 1000)
    assert enrollment.clipping_fraction(np.zeros(10, dtype=np.float32)) == 0.0


def test_snr_and_speech_measurements(rng) -> None:  # type: ignore[no-untyped-def]
    voice = random_voice(rng)
    clean = speak(voice, rng, seconds=4.0, snr_db=40)
    noisy = speak(voice, rng, seconds=4.0, snr_db=5)
    q_clean = enrollment.measure(clean, sr=SR)
    q_noisy = enrollment.measure(noisy, sr=SR)
    assert q_clean.snr_db > 30 > 12 > q_noisy.snr_db
    assert 2.0 < q_clean.speech_s <= 4.0
    assert (
        q_clean.sources
        == {"speech_s": "voiceprint", "clipping_fraction": "voiceprint", "snr_db": "voiceprint"}
        or "checks" in q_clean.sources.values()
    )
    silent = np.zeros(SR * 2, dtype=np.float32)
    assert enrollment.measure(silent, sr=SR).speech_s == 0.0
    assert enrollment.measure(clean, sr=SR, speech_s=1.25).speech_s == 1.25  # the service's VAD wins
    assert energy_speech_only(silent, sr=SR).size == 0


def test_gate_lists_every_failure() -> None:
    q = enrollment.Quality(duration_s=2.0, speech_s=1.0, clipping_fraction=0.2, snr_db=3.0, sources={})
    failures = enrollment.gate_failures(q, VoiceprintSettings())
    assert {f["check"] for f in failures} == {"speech_s", "clipping_fraction", "snr_db"}
    ok = enrollment.Quality(duration_s=5.0, speech_s=4.0, clipping_fraction=0.0, snr_db=30.0, sources={})
    assert enrollment.gate_failures(ok, VoiceprintSettings()) == []
