"""Score-distribution plot (PNG, matplotlib Agg): target vs non-target histograms per scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_scores(
    path: Path,
    scores: dict[str, dict[str, np.ndarray]],
    labels: np.ndarray,
    report: dict[str, Any],
) -> Path:
    """Write one panel per (system, scoring): densities of target and non-target scores, with the
    EER threshold and the threshold at the target FAR marked.

    Parameters
    ----------
    path : Path, output PNG
    scores : {"pipeline"|"reference": {"raw"|"asnorm": np.ndarray (trials,)}}
    labels : np.ndarray [shape=(trials,)], 1 target / 0 non-target
    report : the evaluation report (titles and thresholds come from it)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(system, kind) for system in scores for kind in scores[system]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    labels = np.asarray(labels)
    for ax, (system, kind) in zip(axes[:, 0], panels, strict=False):
        s = scores[system][kind]
        summary = report[system][kind]
        bins = np.linspace(float(s.min()), float(s.max()), 80)
        ax.hist(
            s[labels == 0], bins=bins, density=True, alpha=0.6, label=f"non-target ({summary['n_nontarget']})"
        )
        ax.hist(s[labels == 1], bins=bins, density=True, alpha=0.6, label=f"target ({summary['n_target']})")
        ax.axvline(
            summary["eer_threshold"],
            color="k",
            linestyle="--",
            linewidth=1,
            label=f"EER {summary['eer_percent']:.2f}% threshold",
        )
        if summary.get("threshold_at_far") is not None:
            ax.axvline(
                summary["threshold_at_far"],
                color="r",
                linewidth=1,
                label=f"FAR {100 * report['target_far']:g}% threshold",
            )
        ax.set_title(
            f"{system} / {kind}: EER {summary['eer_percent']:.2f}%, minDCF {summary['min_dcf']:.3f}",
            fontsize=9,
        )
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{report['model_id']} - {Path(report['dataset']).name} - {report['condition']}", fontsize=10
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
