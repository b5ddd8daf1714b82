"""Evaluation figures for the model card: accuracy, macro-F1, confusion, AUC, calibration error.

Why our own thin layer over scikit-learn: the card needs the same figures, rounded the same way,
for every language and for both rumour operating points, and F1-PN (the ArSarcasm shared task's
mean F1 of negative and positive) is not a scikit-learn metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score


def classification_report(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict:
    """accuracy, macro-F1 over `labels`, per-label F1, F1-PN when both poles exist, confusion
    (rows gold, columns predicted, in `labels` order)."""
    labels = list(labels)
    per = f1_score(gold, pred, labels=labels, average=None, zero_division=0)
    rep = {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, pred)), 4),
        "macro_f1": round(float(np.mean(per)), 4),
        "f1": {lab: round(float(v), 4) for lab, v in zip(labels, per)},
        "labels": labels,
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist(),
    }
    if "negative" in labels and "positive" in labels:
        rep["f1_pn"] = round((rep["f1"]["negative"] + rep["f1"]["positive"]) / 2, 4)
    return rep


def expected_calibration_error(y: Sequence[int], p: Sequence[float], bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over equal-width bins, and the reliability curve (mean predicted vs observed per bin)."""
    y_a, p_a = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece, curve = 0.0, []
    for i in range(bins):
        sel = (p_a >= edges[i]) & ((p_a < edges[i + 1]) if i < bins - 1 else (p_a <= edges[i + 1]))
        if not sel.any():
            continue
        conf, acc = float(p_a[sel].mean()), float(y_a[sel].mean())
        ece += sel.mean() * abs(conf - acc)
        curve.append({"bin": [round(edges[i], 2), round(edges[i + 1], 2)], "n": int(sel.sum()),
                      "mean_p": round(conf, 4), "observed": round(acc, 4)})
    return round(float(ece), 4), curve


def binary_report(y: Sequence[int], p: Sequence[float]) -> dict:
    """AUC, accuracy at 0.5, ECE and reliability curve of a probability."""
    y_a, p_a = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    ece, curve = expected_calibration_error(y_a, p_a)
    return {
        "n": int(len(y_a)),
        "auc": round(float(roc_auc_score(y_a, p_a)), 4) if len(set(y_a.tolist())) == 2 else None,
        "accuracy": round(float(((p_a >= 0.5).astype(int) == y_a).mean()), 4),
        "ece": ece,
        "reliability": curve,
    }
