"""Evaluation figures (PNG, matplotlib Agg): ROC, score histograms, confusion matrix, worst-scored pairs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..io_utils import atomic_path
from ..models.metrics import roc_curve


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_roc(scores: np.ndarray, labels: np.ndarray, metrics: dict[str, Any], path: Path) -> Path:
    fpr, tpr, _ = roc_curve(scores, labels)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, log_x in zip(axes, (False, True)):
        ax.plot(np.maximum(fpr, 1e-5) if log_x else fpr, tpr, lw=1.8)
        ax.set_xlabel("false-positive rate (PASS pairs flagged)" + (" [log]" if log_x else ""))
        ax.set_ylabel("defect recall")
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log")
            ax.set_xlim(1e-4, 1)
            for rate in (0.01, 0.001):
                ax.axvline(rate, color="grey", ls=":", lw=1)
    axes[0].plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    axes[0].set_title(f"ROC  AUROC={metrics['auroc']:.4f}")
    axes[1].set_title(f"recall@1%FA={metrics['recall_at_fa_1pct']:.3f}  @0.1%FA={metrics['recall_at_fa_0_1pct']:.3f}")
    return _save(fig, path)


def plot_histogram(scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    finite = scores[np.isfinite(scores)]
    bins: Any = np.linspace(finite.min(), finite.max(), 60) if finite.size and finite.min() < finite.max() else 30
    for value, name, colour in ((0, "PASS", "tab:green"), (1, "defect", "tab:red")):
        chosen = scores[labels == value]
        if chosen.size:
            ax.hist(chosen, bins=bins, alpha=0.6, color=colour, label=f"{name} ({chosen.size})", log=True)
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("score (larger = more defective)")
    ax.set_ylabel("pairs (log)")
    ax.legend()
    ax.set_title("Score distribution")
    return _save(fig, path)


def plot_confusion(metrics: dict[str, Any], path: Path) -> Path:
    matrix = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    fig, ax = plt.subplots(figsize=(4.4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (r, c), value in np.ndenumerate(matrix):
        ax.text(c, r, str(value), ha="center", va="center", fontsize=14,
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks([0, 1], ["PASS", "FAIL"])
    ax.set_yticks([0, 1], ["PASS", "defect"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"threshold {metrics['threshold']:.4g}")
    return _save(fig, path)


def worst_rows(scores: np.ndarray, labels: np.ndarray, per_class: int) -> list[int]:
    """Lowest-scored defects (misses first) and highest-scored PASS pairs (false alarms first)."""
    defects = np.flatnonzero(labels == 1)
    passes = np.flatnonzero(labels == 0)
    missed = defects[np.argsort(scores[defects], kind="stable")][:per_class]
    alarms = passes[np.argsort(-scores[passes], kind="stable")][:per_class]
    return [int(i) for i in np.r_[missed, alarms]]


def plot_worst_pairs(rows: list[int], strips: list[tuple[np.ndarray, np.ndarray]], scores: np.ndarray,
                     raw_labels: list[str], threshold: float, path: Path,
                     maps: list[np.ndarray] | None = None) -> Path:
    """One line per pair: test strip beside its golden strip (uint8 HWC images), with label and score, and the
    defect map (uint8 grey, probability) when ``maps`` is given."""
    n = max(len(rows), 1)
    n_cols = 3 if maps is not None else 2
    fig, axes = plt.subplots(n, n_cols, figsize=(2.5 * n_cols, 2.3 * n), squeeze=False, constrained_layout=True)
    for line, (row, (test, golden)) in enumerate(zip(rows, strips)):
        verdict = "FAIL" if scores[row] > threshold else "PASS"
        panels = [(test, "test"), (golden, "golden")] + ([(maps[line], "defect map")] if maps is not None else [])
        for col, (image, name) in enumerate(panels):
            ax = axes[line, col]
            ax.imshow(image, **({"cmap": "inferno", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"row {row} {name}" + (f": {raw_labels[row]} → {verdict} ({scores[row]:.3g})"
                                                if col == 0 else ""), fontsize=8)
    if not rows:
        for ax in axes.flat:
            ax.axis("off")
        axes[0, 0].set_title("no labelled pairs")
    fig.suptitle("Worst-scored pairs: missed defects, then false alarms", fontsize=9)
    return _save(fig, path)
