"""Loss and F1 curves and the confusion matrix as PNGs (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def plot_curves(history: list[dict[str, Any]], keys: list[str], ylabel: str, path: Path) -> Path:
    """One line per metric key (and per fold when k-fold), epochs on x."""
    fig, ax = plt.subplots(figsize=(6, 4))
    folds = sorted({r.get("fold", 0) for r in history})
    for fold in folds:
        rows = [r for r in history if r.get("fold", 0) == fold]
        suffix = f" (fold {fold})" if len(folds) > 1 else ""
        for key in keys:
            ax.plot(
                [r["epoch"] for r in rows],
                [r[key] for r in rows],
                marker="o",
                label=f"{key}{suffix}",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path) -> Path:
    """The validation confusion matrix of the best weights."""
    size = max(5, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
        ax=ax, colorbar=False, xticks_rotation=45
    )
    ax.set_title("validation confusion matrix (best weights)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
