"""Verification scoring: cosine, adaptive score normalization (AS-norm), and FAR-targeted thresholds.

Every vector travels with the id of the model that produced it (:class:`ModelVector`), and every
comparison first checks that the ids agree: scores from two models live on different scales, so a
cross-model comparison is refused with :class:`voiceprint.errors.ModelMismatch` instead of returning
a meaningless number.

AS-norm (Matejka et al., Interspeech 2017; the variant in speechbrain's verification recipe):
for enrollment vector e, test vector t and cohort C,

    s_n = 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)

where (mu_e, sd_e) are the mean and (unbiased) standard deviation of the top-N highest cosines of e
against C, and likewise for t. Selecting the top-N makes the normalization adapt to the region of
the embedding space each side lives in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from voiceprint.errors import ModelMismatch
from voiceprint.service_errors import InvalidEmbedding, ThresholdUnavailable

#: A standard deviation below this is treated as this (a degenerate cohort must not divide by ~0).
MIN_STD = 1e-4

Method = Literal["cosine", "asnorm"]


@dataclasses.dataclass(frozen=True)
class ModelVector:
    """An embedding and the exact model id that produced it.

    Attributes
    ----------
    model_id : str
    vector : np.ndarray [shape=(d,)], float32, unit L2 norm
    """

    model_id: str
    vector: np.ndarray


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Impostor cohort embeddings for one model.

    Attributes
    ----------
    model_id : str
    vectors : np.ndarray [shape=(m, d)], float32, rows unit L2 norm
    source : str, where the cohort came from ("set:<dir>", "enrolled")
    """

    model_id: str
    vectors: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Decision thresholds for one exact model id.

    ``cosine`` applies to raw cosine scores (used when no usable cohort exists, or when no AS-norm
    threshold was calibrated); ``asnorm`` applies to AS-norm scores; ``search`` links two voiceprints
    in cross-account search. ``source`` says where they came from ("registry" or "settings").
    ``asnorm_top_n`` is the cohort top-N the AS-norm threshold was calibrated with (None: use the
    configured one).
    """

    model_id: str
    cosine: float
    asnorm: float | None
    search: float
    target_far: float
    source: str
    asnorm_top_n: int | None = None


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """One verification decision.

    ``score`` is the raw cosine; ``normalized_score`` the AS-norm score (None without a cohort);
    ``threshold`` is the one ``decision`` was taken against, on the scale named by ``method``.
    """

    model_id: str
    score: float
    normalized_score: float | None
    threshold: float
    method: Method
    decision: Literal["accept", "reject"]
    cohort_size: int


# --- vectors ---------------------------------------------------------------------------------------


def as_unit_vectors(x: Any, *, dimension: int | None = None) -> np.ndarray:
    """Validate and L2-normalize vectors.

    Parameters
    ----------
    x : array-like [shape=(d,) or (n, d)], finite, no all-zero row
    dimension : int, optional; the required ``d``

    Returns
    -------
    np.ndarray [same shape], float32, rows of unit L2 norm

    Raises
    ------
    InvalidEmbedding : wrong rank or dimension, non-finite values, or a zero vector.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise InvalidEmbedding(f"expected a real vector or matrix, got dtype {arr.dtype} shape {arr.shape}")
    if dimension is not None and arr.shape[-1] != dimension:
        raise InvalidEmbedding(f"expected dimension {dimension}, got {arr.shape[-1]}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InvalidEmbedding("embedding contains NaN or infinity")
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    if np.any(norms < 1e-12):
        raise InvalidEmbedding("zero-length embedding")
    return (arr / norms).astype(np.float32)


def ensure_same_model(expected: str, got: str, *, what: str = "embedding") -> None:
    """Refuse to compare vectors of two different models.

    Raises
    ------
    ModelMismatch : the ids differ.
    """
    if expected != got:
        raise ModelMismatch(
            f"{what} was produced by model {got!r}, expected {expected!r}; scores of different "
            "models are not comparable (re-enroll with the current model)",
            expected_model_id=expected,
            model_id=got,
        )


def cosine(a: ModelVector, b: ModelVector) -> float:
    """Cosine similarity of two same-model vectors, in [-1, 1].

    Raises
    ------
    ModelMismatch : the vectors come from different models.
    """
    ensure_same_model(a.model_id, b.model_id)
    va = as_unit_vectors(a.vector)
    vb = as_unit_vectors(b.vector, dimension=va.shape[0])
    return float(np.clip(np.dot(va.astype(np.float64), vb.astype(np.float64)), -1.0, 1.0))


def mean_voiceprint(vectors: np.ndarray) -> np.ndarray:
    """Combine enrollment embeddings into one voiceprint: the L2-normalized mean of unit vectors.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)], n >= 1

    Returns
    -------
    np.ndarray [shape=(d,)], float32, unit norm
    """
    unit = as_unit_vectors(np.atleast_2d(vectors))
    return as_unit_vectors(unit.astype(np.float64).mean(axis=0))


# --- AS-norm ---------------------------------------------------------------------------------------


def top_n_stats(vector: np.ndarray, cohort: np.ndarray, *, top_n: int) -> tuple[float, float]:
    """Mean and unbiased standard deviation of the ``top_n`` highest cosines of ``vector`` vs ``cohort``.

    Parameters
    ----------
    vector : np.ndarray [shape=(d,)], float32, unit norm
    cohort : np.ndarray [shape=(m, d)], float32, unit-norm rows, m >= 2
    top_n : int >= 2; clipped to m

    Returns
    -------
    (mean, std) : floats; std is at least :data:`MIN_STD`
    """
    if top_n < 2:
        raise ValueError("top_n must be at least 2")
    if cohort.ndim != 2 or cohort.shape[0] < 2:
        raise ValueError("a cohort needs at least 2 embeddings")
    scores = cohort.astype(np.float64) @ vector.astype(np.float64)
    n = min(top_n, scores.shape[0])
    top = np.partition(scores, scores.shape[0] - n)[scores.shape[0] - n :]
    return float(top.mean()), max(float(top.std(ddof=1)), MIN_STD)


def as_norm(score: float, *, enroll: np.ndarray, test: np.ndarray, cohort: np.ndarray, top_n: int) -> float:
    """Adaptive symmetric score normalization of one raw cosine score.

    Parameters
    ----------
    score : float, raw cosine of ``enroll`` and ``test``
    enroll, test : np.ndarray [shape=(d,)], float32, unit norm
    cohort : np.ndarray [shape=(m, d)], float32, unit-norm rows (must not contain the enrolled speaker)
    top_n : int, cohort scores kept per side

    Returns
    -------
    float : normalized score (z units)
    """
    mu_e, sd_e = top_n_stats(enroll, cohort, top_n=top_n)
    mu_t, sd_t = top_n_stats(test, cohort, top_n=top_n)
    return 0.5 * ((score - mu_e) / sd_e + (score - mu_t) / sd_t)


# --- thresholds ------------------------------------------------------------------------------------


def threshold_for_far(impostor_scores: Any, *, target_far: float) -> float:
    """The lowest threshold whose false-accept rate on ``impostor_scores`` is at most ``target_far``.

    A trial is accepted when ``score >= threshold``. With n impostor scores at most
    ``floor(target_far * n)`` of them are accepted.

    Parameters
    ----------
    impostor_scores : array-like [shape=(n,)], finite, n >= 1
    target_far : float in (0, 1)

    Returns
    -------
    float : the threshold
    """
    s = np.sort(np.asarray(impostor_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("need at least one finite impostor score")
    if not 0.0 < target_far < 1.0:
        raise ValueError("target_far must be in (0, 1)")
    n = s.size
    allowed = int(math.floor(target_far * n))
    # Float rounding of target_far * n must not move the count across the target either way.
    while allowed + 1 <= n and (allowed + 1) / n <= target_far:
        allowed += 1
    while allowed > 0 and allowed / n > target_far:
        allowed -= 1
    if allowed >= s.size:
        return float(np.nextafter(s[-1], -np.inf))
    # Accept only scores strictly above the (allowed+1)-th highest: ties never push FAR over target.
    return float(np.nextafter(s[allowed], np.inf))


def false_accept_rate(impostor_scores: Any, *, threshold: float) -> float:
    """Fraction of impostor scores accepted (``score >= threshold``)."""
    s = np.asarray(impostor_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("need at least one impostor score")
    return float(np.mean(s >= threshold))


_COSINE_KEYS = ("raw_cosine", "cosine", "raw", "cosine_threshold")
_ASNORM_KEYS = ("asnorm", "as_norm", "asnorm_threshold")


def _pick(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return float(value)
    return None


def resolve_thresholds(
    model_id: str,
    *,
    calibrated: Mapping[str, Any] | None,
    fallbacks: Mapping[str, Any],
    target_far: float,
) -> Thresholds:
    """Pick the thresholds for ``model_id``: the registry's calibrated ones, else the settings'.

    Parameters
    ----------
    model_id : str, the embedder's exact model id
    calibrated : mapping or None, from ``models.registry.thresholds`` ({"raw_cosine", "asnorm",
        "target_far", "model_id", "asnorm_top_n"}, optionally "search"; "cosine" is accepted for
        "raw_cosine", and a "far" sub-mapping keyed by FAR strings is also understood)
    fallbacks : mapping model id -> :class:`voiceprint.config.ModelThresholds` (or a dict of it)
    target_far : float, the false-accept rate the service targets

    Raises
    ------
    ModelMismatch : the calibrated entry names another model id.
    ThresholdUnavailable : neither source has thresholds for this exact model id.
    """
    if calibrated:
        entry: Mapping[str, Any] = calibrated
        by_far = calibrated.get("far") or calibrated.get("by_far")
        if isinstance(by_far, Mapping):
            chosen = by_far.get(repr(target_far)) or by_far.get(str(target_far)) or by_far.get(target_far)
            if isinstance(chosen, Mapping):
                entry = {**calibrated, **chosen, "target_far": target_far}
        if entry.get("model_id") is not None:
            ensure_same_model(model_id, str(entry["model_id"]), what="calibrated threshold")
        cos = _pick(entry, _COSINE_KEYS)
        if cos is not None:
            asn = _pick(entry, _ASNORM_KEYS)
            search = _pick(entry, ("search",))
            top_n = entry.get("asnorm_top_n")
            return Thresholds(
                model_id=model_id,
                cosine=cos,
                asnorm=asn,
                search=search if search is not None else cos,
                target_far=float(entry.get("target_far", target_far)),
                source="registry",
                asnorm_top_n=int(top_n) if top_n else None,
            )
    fb = fallbacks.get(model_id)
    if fb is not None:
        data = fb if isinstance(fb, Mapping) else fb.model_dump()
        cos = float(data["cosine"])
        search = data.get("search")
        return Thresholds(
            model_id=model_id,
            cosine=cos,
            asnorm=None if data.get("asnorm") is None else float(data["asnorm"]),
            search=cos if search is None else float(search),
            target_far=float(data.get("target_far", target_far)),
            source="settings",
        )
    raise ThresholdUnavailable(
        f"no calibrated threshold for model {model_id!r}: run `songgate eval voiceprint --calibrate` "
        "or set SONGGATE_VOICEPRINT__THRESHOLDS for this exact model id",
        model_id=model_id,
    )


# --- verification ----------------------------------------------------------------------------------


def score_verification(
    probe: ModelVector,
    voiceprint: ModelVector,
    *,
    thresholds: Thresholds,
    cohort: Cohort | None,
    top_n: int,
    min_cohort: int = 2,
) -> ScoreResult:
    """Score a verification utterance against an enrolled voiceprint and decide.

    With a same-model cohort of at least ``min_cohort`` embeddings the AS-norm score is computed;
    the decision uses it when an AS-norm threshold is calibrated, otherwise the raw cosine with the
    model's cosine threshold.

    Raises
    ------
    ModelMismatch : probe, voiceprint, cohort or thresholds come from different models.
    """
    ensure_same_model(voiceprint.model_id, probe.model_id, what="verification embedding")
    ensure_same_model(voiceprint.model_id, thresholds.model_id, what="threshold")
    enroll = as_unit_vectors(voiceprint.vector)
    test = as_unit_vectors(probe.vector, dimension=enroll.shape[0])
    raw = float(np.clip(np.dot(enroll.astype(np.float64), test.astype(np.float64)), -1.0, 1.0))
    normalized: float | None = None
    used = 0
    if cohort is not None and len(cohort) >= max(min_cohort, 2):
        ensure_same_model(voiceprint.model_id, cohort.model_id, what="cohort")
        if cohort.vectors.shape[1] != enroll.shape[0]:
            raise InvalidEmbedding("cohort dimension differs from the voiceprint's")
        normalized = as_norm(raw, enroll=enroll, test=test, cohort=cohort.vectors, top_n=top_n)
        used = len(cohort)
    if normalized is not None and thresholds.asnorm is not None:
        method: Method = "asnorm"
        threshold, value = thresholds.asnorm, normalized
    else:
        method, threshold, value = "cosine", thresholds.cosine, raw
    return ScoreResult(
        model_id=voiceprint.model_id,
        score=raw,
        normalized_score=normalized,
        threshold=float(threshold),
        method=method,
        decision="accept" if value >= threshold else "reject",
        cohort_size=used,
    )
