"""Scoring: cosine, model-id checks, AS-norm against a direct reference, FAR thresholds."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceprint.config import ModelThresholds
from voiceprint.errors import ModelMismatch
from voiceprint.scoring import (
    Cohort,
    ModelVector,
    Thresholds,
    as_norm,
    as_unit_vectors,
    cosine,
    false_accept_rate,
    mean_voiceprint,
    resolve_thresholds,
    score_verification,
    threshold_for_far,
    top_n_stats,
)
from voiceprint.service_errors import InvalidEmbedding, ThresholdUnavailable

M = "fake-model@1"


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return as_unit_vectors(rng.standard_normal(shape))


def test_cosine_of_same_and_opposite_vectors(rng: np.random.Generator) -> None:
    v = unit(rng, 16)
    assert cosine(ModelVector(M, v), ModelVector(M, v * 3)) == pytest.approx(1.0, abs=1e-6)
    assert cosine(ModelVector(M, v), ModelVector(M, -v)) == pytest.approx(-1.0, abs=1e-6)


def test_cross_model_comparison_is_refused(rng: np.random.Generator) -> None:
    v = unit(rng, 16)
    with pytest.raises(ModelMismatch) as exc:
        cosine(ModelVector(M, v), ModelVector("other@2", v))
    assert exc.value.code == "model_mismatch"


@pytest.mark.parametrize(
    ("vector", "expect"),
    [
        (np.ones(8), nullcontext()),
        (np.zeros(8), pytest.raises(InvalidEmbedding)),
        (np.array([1.0, np.nan, 0.0]), pytest.raises(InvalidEmbedding)),
        (np.array([1.0, np.inf, 0.0]), pytest.raises(InvalidEmbedding)),
        (np.ones((2, 2, 2)), pytest.raises(InvalidEmbedding)),
        (np.array(["a", "b"]), pytest.raises(InvalidEmbedding)),
        (np.ones(0), pytest.raises(InvalidEmbedding)),
    ],
)
def test_vector_validation(vector: np.ndarray, expect) -> None:  # type: ignore[no-untyped-def]
    with expect:
        out = as_unit_vectors(vector)
        assert out.dtype == np.float32
        assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-6)


def test_dimension_is_checked(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidEmbedding):
        as_unit_vectors(rng.standard_normal(5), dimension=6)


def test_mean_voiceprint_is_unit_and_central(rng: np.random.Generator) -> None:
    center = unit(rng, 32)
    utts = as_unit_vectors(center + 0.3 * rng.standard_normal((5, 32)))
    vp = mean_voiceprint(utts)
    assert np.linalg.norm(vp) == pytest.approx(1.0, abs=1e-6)
    # The mean is closer to the true center than a typical single utterance.
    assert float(vp @ center) > float(np.median(utts @ center))


def test_top_n_stats_reference(rng: np.random.Generator) -> None:
    cohort = unit(rng, 50, 16)
    v = unit(rng, 16)
    scores = cohort.astype(np.float64) @ v
    top = np.sort(scores)[-10:]
    mean, std = top_n_stats(v, cohort, top_n=10)
    assert mean == pytest.approx(top.mean(), abs=1e-9)
    assert std == pytest.approx(top.std(ddof=1), abs=1e-9)
    # top_n larger than the cohort uses all of it
    mean_all, _ = top_n_stats(v, cohort, top_n=1000)
    assert mean_all == pytest.approx(scores.mean(), abs=1e-9)


def test_as_norm_reference_formula(rng: np.random.Generator) -> None:
    cohort, e, t = unit(rng, 40, 8), unit(rng, 8), unit(rng, 8)
    s = float(e @ t)
    se, st_ = np.sort(cohort @ e)[-5:], np.sort(cohort @ t)[-5:]
    expected = 0.5 * ((s - se.mean()) / se.std(ddof=1) + (s - st_.mean()) / st_.std(ddof=1))
    assert as_norm(s, enroll=e, test=t, cohort=cohort, top_n=5) == pytest.approx(expected, abs=1e-5)


def _eer(target: np.ndarray, impostor: np.ndarray) -> float:
    thresholds = np.sort(np.concatenate([target, impostor]))
    frr = np.array([np.mean(target < t) for t in thresholds])
    far = np.array([np.mean(impostor >= t) for t in thresholds])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def test_as_norm_lowers_eer_with_crowded_speakers_and_noisy_tests(rng: np.random.Generator) -> None:
    """Speakers near a 'hub' direction score high against each other, and noisy test utterances
    score low against everyone: one raw threshold fits neither. AS-norm normalizes each side by its
    own top-N cohort statistics, which removes both offsets."""
    d, n_spk = 24, 60
    hub = unit(rng, d)

    def speakers(m: int) -> np.ndarray:
        crowd = rng.uniform(0.0, 3.0, size=m)  # how strongly each speaker leans to the hub
        return as_unit_vectors(crowd[:, None] * hub + rng.standard_normal((m, d)) / np.sqrt(d) * 1.5)

    centers, cohort = speakers(n_spk), speakers(200)  # cohort: disjoint speakers, same population

    def utt(s: int, noise: float) -> np.ndarray:
        return as_unit_vectors(centers[s] + noise * rng.standard_normal(d) / np.sqrt(d))

    enroll = np.stack([mean_voiceprint(np.stack([utt(s, 0.5) for _ in range(3)])) for s in range(n_spk)])
    noise = rng.choice([0.3, 1.5], size=n_spk)
    tests = np.stack([utt(s, noise[s]) for s in range(n_spk)])
    raw_t, raw_i, n_t, n_i = [], [], [], []
    for a in range(n_spk):
        for b in range(n_spk):
            s = float(enroll[a] @ tests[b])
            z = as_norm(s, enroll=enroll[a], test=tests[b], cohort=cohort, top_n=50)
            (raw_t if a == b else raw_i).append(s)
            (n_t if a == b else n_i).append(z)
    eer_raw = _eer(np.array(raw_t), np.array(raw_i))
    eer_norm = _eer(np.array(n_t), np.array(n_i))
    assert eer_norm < 0.85 * eer_raw, (eer_raw, eer_norm)


@given(
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=400),
    far=st.floats(0.001, 0.5),
)
@settings(max_examples=200, deadline=None)
def test_threshold_for_far_meets_target_and_is_tight(scores: list[float], far: float) -> None:
    t = threshold_for_far(scores, target_far=far)
    assert false_accept_rate(scores, threshold=t) <= far + 1e-12
    # Tight: lowering the threshold to the highest refused score would break the target.
    below = [s for s in scores if s < t]
    if below:
        assert false_accept_rate(scores, threshold=max(below)) > far


def test_threshold_for_far_float_edges() -> None:
    scores = [0.1, 0.2, 0.3]
    assert false_accept_rate(scores, threshold=threshold_for_far(scores, target_far=0.333333333)) == 0.0
    assert false_accept_rate(scores, threshold=threshold_for_far(scores, target_far=1 / 3)) == pytest.approx(
        1 / 3
    )
    ties = [0.5] * 10
    assert false_accept_rate(ties, threshold=threshold_for_far(ties, target_far=0.2)) == 0.0


def test_threshold_for_far_known_values() -> None:
    imp = np.linspace(0, 0.99, 100)  # 0.00, 0.01, ..., 0.99
    t = threshold_for_far(imp, target_far=0.05)
    assert false_accept_rate(imp, threshold=t) == pytest.approx(0.05)
    assert 0.94 < t <= 0.95 + 1e-9
    with pytest.raises(ValueError):
        threshold_for_far([], target_far=0.01)


def test_resolve_thresholds_prefers_registry_then_settings() -> None:
    fb = {M: ModelThresholds(cosine=0.5, asnorm=2.0, search=0.7)}
    reg = resolve_thresholds(
        M, calibrated={"cosine": 0.4, "asnorm": 3.1, "model_id": M}, fallbacks=fb, target_far=0.01
    )
    assert (reg.cosine, reg.asnorm, reg.search, reg.source) == (0.4, 3.1, 0.4, "registry")
    st_ = resolve_thresholds(M, calibrated=None, fallbacks=fb, target_far=0.01)
    assert (st_.cosine, st_.asnorm, st_.search, st_.source) == (0.5, 2.0, 0.7, "settings")
    by_far = resolve_thresholds(
        M,
        calibrated={"far": {"0.01": {"cosine": 0.3}, "0.001": {"cosine": 0.6}}},
        fallbacks={},
        target_far=0.001,
    )
    assert by_far.cosine == 0.6


def test_new_model_version_never_reuses_old_thresholds() -> None:
    fb = {"ecapa@rev1": ModelThresholds(cosine=0.5)}
    with pytest.raises(ThresholdUnavailable):
        resolve_thresholds("ecapa@rev2", calibrated=None, fallbacks=fb, target_far=0.01)
    with pytest.raises(ModelMismatch):
        resolve_thresholds(
            "ecapa@rev2", calibrated={"cosine": 0.4, "model_id": "ecapa@rev1"}, fallbacks={}, target_far=0.01
        )


def _thr(asnorm: float | None = 2.0) -> Thresholds:
    return Thresholds(M, cosine=0.6, asnorm=asnorm, search=0.7, target_far=0.01, source="settings")


def test_score_verification_methods(rng: np.random.Generator) -> None:
    vp = unit(rng, 16)
    probe = as_unit_vectors(vp + 0.2 * rng.standard_normal(16))
    cohort = Cohort(M, unit(rng, 30, 16), "test")
    r = score_verification(
        ModelVector(M, probe), ModelVector(M, vp), thresholds=_thr(), cohort=None, top_n=10
    )
    assert (r.method, r.normalized_score, r.threshold, r.cohort_size) == ("cosine", None, 0.6, 0)
    assert r.decision == ("accept" if r.score >= 0.6 else "reject")
    r2 = score_verification(
        ModelVector(M, probe), ModelVector(M, vp), thresholds=_thr(), cohort=cohort, top_n=10
    )
    assert r2.method == "asnorm" and r2.cohort_size == 30 and r2.threshold == 2.0
    assert r2.normalized_score == pytest.approx(
        as_norm(r2.score, enroll=vp, test=probe, cohort=cohort.vectors, top_n=10)
    )
    # A cohort but no calibrated AS-norm threshold: decide on raw cosine, still report the z-score.
    r3 = score_verification(
        ModelVector(M, probe), ModelVector(M, vp), thresholds=_thr(None), cohort=cohort, top_n=10
    )
    assert r3.method == "cosine" and r3.normalized_score is not None


def test_score_verification_refuses_mixed_models(rng: np.random.Generator) -> None:
    v = unit(rng, 16)
    with pytest.raises(ModelMismatch):
        score_verification(ModelVector("x@1", v), ModelVector(M, v), thresholds=_thr(), cohort=None, top_n=5)
    with pytest.raises(ModelMismatch):
        score_verification(
            ModelVector(M, v),
            ModelVector(M, v),
            thresholds=_thr(),
            cohort=Cohort("x@1", unit(rng, 10, 16), "t"),
            top_n=5,
        )
    other_thr = Thresholds("x@1", 0.5, None, 0.5, 0.01, "settings")
    with pytest.raises(ModelMismatch):
        score_verification(ModelVector(M, v), ModelVector(M, v), thresholds=other_thr, cohort=None, top_n=5)
