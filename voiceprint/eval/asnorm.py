"""Adaptive symmetric score normalization (AS-norm) for evaluation.

For each side of a trial, the cosine scores of its embedding against a cohort (speakers in no
trial) are computed and the top-N (most similar impostors) give a mean and standard deviation;
the trial score is normalized by each side's statistics and the two are averaged
(Matejka et al., Interspeech 2017, "AS-norm1"). Scores come out in z units, so a threshold on them
does not depend on how a model scales cosines.
"""

from __future__ import annotations

import numpy as np


def cohort_stats(embeddings: np.ndarray, cohort: np.ndarray, *, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each embedding's top-N cohort scores.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)], float32, unit rows
    cohort : np.ndarray [shape=(m, d)], float32, unit rows (speakers disjoint from the trials)
    top_n : int, how many of the highest cohort scores to use (capped at m)

    Returns
    -------
    (mean, std) : np.ndarray [shape=(n,)] each, float64; std floored at 1e-6
    """
    if cohort.ndim != 2 or cohort.shape[0] < 2:
        raise ValueError("AS-norm needs a cohort of at least 2 embeddings")
    if embeddings.shape[1] != cohort.shape[1]:
        raise ValueError("embedding and cohort dimensions differ")
    k = int(min(max(top_n, 2), cohort.shape[0]))
    scores = embeddings.astype(np.float64) @ cohort.astype(np.float64).T  # (n, m)
    top = -np.partition(-scores, k - 1, axis=1)[:, :k]
    return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6)


def asnorm(
    raw: np.ndarray,
    enroll_stats: tuple[np.ndarray, np.ndarray],
    test_stats: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Normalize trial scores: ``0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)``.

    Parameters
    ----------
    raw : np.ndarray [shape=(t,)], raw cosine scores of the trials
    enroll_stats, test_stats : (mean, std) of each trial's enrollment / test side, shape (t,) each
    """
    mu_e, sd_e = enroll_stats
    mu_t, sd_t = test_stats
    return 0.5 * ((raw - mu_e) / sd_e + (raw - mu_t) / sd_t)
