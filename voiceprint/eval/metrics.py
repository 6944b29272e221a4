"""Detection metrics for verification scores: EER, minimum DCF, thresholds at a target FAR.

Convention: a trial is accepted when ``score >= threshold``; labels are 1 (target, same speaker)
and 0 (non-target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores but {labels.shape[0]} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError("labels must be 0 or 1")
    tar, non = scores[labels == 1], scores[labels == 0]
    if tar.size == 0 or non.size == 0:
        raise ValueError("need at least one target and one non-target trial")
    return tar, non


def error_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold.

    Returns
    -------
    thresholds : np.ndarray [shape=(k+1,)], ascending; the last is +inf (accept nothing)
    p_miss : np.ndarray [shape=(k+1,)], fraction of targets with score < threshold (non-decreasing)
    p_fa : np.ndarray [shape=(k+1,)], fraction of non-targets with score >= threshold (non-increasing)
    """
    tar, non = _split(scores, labels)
    thresholds = np.unique(np.concatenate([tar, non]))
    thresholds = np.append(thresholds, np.inf)
    tar_sorted, non_sorted = np.sort(tar), np.sort(non)
    p_miss = np.searchsorted(tar_sorted, thresholds, side="left") / tar.size
    p_fa = 1.0 - np.searchsorted(non_sorted, thresholds, side="left") / non.size
    return thresholds, p_miss, p_fa


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate (fraction) and the threshold where miss and false-alarm rates cross.

    Between the two thresholds around the crossing, the rates are linearly interpolated (the
    ROC convex-hull-free estimate used by most toolkits); the threshold returned is the one whose
    |p_miss - p_fa| is smallest.
    """
    thr, p_miss, p_fa = error_rates(scores, labels)
    diff = p_miss - p_fa  # increasing from -1 to +1
    i = int(np.searchsorted(diff, 0.0, side="left"))
    if i == 0:
        value = (p_miss[0] + p_fa[0]) / 2
    elif diff[i] == 0.0:
        value = p_miss[i]
    else:
        # crossing between i-1 (diff < 0) and i (diff > 0)
        d0, d1 = diff[i - 1], diff[i]
        w = d0 / (d0 - d1)
        value = (1 - w) * p_miss[i - 1] + w * p_miss[i]
        value = (value + ((1 - w) * p_fa[i - 1] + w * p_fa[i])) / 2
    best = int(np.argmin(np.abs(diff)))
    return float(value), float(thr[best])


def min_dcf(
    scores: np.ndarray, labels: np.ndarray, *, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> tuple[float, float]:
    """Normalized minimum detection cost and its threshold (NIST SRE definition).

    ``DCF = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)``, divided by
    ``min(c_miss * p_target, c_fa * (1 - p_target))`` (the cost of the better trivial system).
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError("p_target must be in (0, 1)")
    thr, p_miss, p_fa = error_rates(scores, labels)
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    cost = cost / min(c_miss * p_target, c_fa * (1 - p_target))
    i = int(np.argmin(cost))
    return float(cost[i]), float(thr[i])


def threshold_at_far(scores: np.ndarray, labels: np.ndarray, *, target_far: float) -> float:
    """The lowest threshold whose false-accept rate on these non-targets is <= ``target_far``."""
    if not 0.0 < target_far < 1.0:
        raise ValueError("target_far must be in (0, 1)")
    _, non = _split(scores, labels)
    desc = np.sort(non)[::-1]
    allowed = int(np.floor(target_far * non.size + 1e-9))  # false accepts we may keep
    if allowed >= non.size:
        return float(desc[-1])
    # Reject desc[allowed] and everything below it; ties with it must be rejected too.
    return float(np.nextafter(desc[allowed], np.inf))


@dataclass(frozen=True)
class Summary:
    """Metrics of one score set (all rates as fractions; percents in ``as_dict``)."""

    eer: float
    eer_threshold: float
    min_dcf: float
    min_dcf_threshold: float
    n_target: int
    n_nontarget: int
    threshold_at_far: float | None = None
    far_at_threshold: float | None = None
    frr_at_threshold: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "eer_percent": round(100 * self.eer, 4),
            "eer_threshold": round(self.eer_threshold, 6),
            "min_dcf": round(self.min_dcf, 4),
            "min_dcf_threshold": round(self.min_dcf_threshold, 6),
            "n_target": self.n_target,
            "n_nontarget": self.n_nontarget,
        }
        if self.threshold_at_far is not None:
            out["threshold_at_far"] = round(self.threshold_at_far, 6)
            out["far_percent_at_threshold"] = round(100 * (self.far_at_threshold or 0.0), 4)
            out["frr_percent_at_threshold"] = round(100 * (self.frr_at_threshold or 0.0), 4)
        return out


def summarize(
    scores: np.ndarray, labels: np.ndarray, *, p_target: float = 0.01, target_far: float | None = None
) -> Summary:
    """EER, minDCF and (optionally) the threshold at a target FAR with its FAR/FRR on these trials."""
    tar, non = _split(scores, labels)
    e, e_thr = eer(scores, labels)
    d, d_thr = min_dcf(scores, labels, p_target=p_target)
    thr = far = frr = None
    if target_far is not None:
        thr = threshold_at_far(scores, labels, target_far=target_far)
        far = float(np.mean(non >= thr))
        frr = float(np.mean(tar < thr))
    return Summary(e, e_thr, d, d_thr, int(tar.size), int(non.size), thr, far, frr)
