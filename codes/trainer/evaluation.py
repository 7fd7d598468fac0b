"""What an evaluation pass yields, scored one way for plain and TTA passes alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


@dataclass
class Evaluation:
    loss: float
    acc: float
    f1: float
    y_true: np.ndarray
    y_pred: np.ndarray


def scored(loss: float, y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> Evaluation:
    """Accuracy and macro F1 over every class (absent ones count as zero, not skipped)."""
    f1 = f1_score(y_true, y_pred, average="macro", labels=list(range(num_classes)),
                  zero_division=0)
    return Evaluation(loss, float(accuracy_score(y_true, y_pred)), float(f1), y_true, y_pred)
