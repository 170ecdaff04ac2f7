"""Classification metrics in plain numpy (no TensorFlow: the runtime and bench use them on devices).

Conventions follow scikit-learn with ``labels=range(K)`` and ``zero_division=0``:
a class never predicted has precision 0.0, a class absent from ``y_true`` has
recall 0.0, and macro averages run over all K classes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    return arr.astype(np.int64)


def _probs(probs: Any, n: int) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"probs must have shape (N, K) with N={n} rows, got {arr.shape}")
    return arr


def _check_range(y: np.ndarray, num_classes: int, name: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} has class indices outside [0, {num_classes})")


def accuracy(y_true: Any, y_pred: Any) -> float:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, got {t.size} and {p.size}")
    return float(np.mean(t == p))


def top_k_accuracy(y_true: Any, probs: Any, k: int) -> float:
    """Share of examples whose true class is among the k highest scores (ties favour the lower index)."""
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    if t.size == 0:
        raise ValueError("top_k_accuracy needs at least one example")
    if not 1 <= k <= p.shape[1]:
        raise ValueError(f"k must be in [1, {p.shape[1]}], got {k}")
    _check_range(t, p.shape[1], "y_true")
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == t[:, None], axis=1)))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class, shape (K, K), int64."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be equally long, got {t.size} and {p.size}")
    _check_range(t, num_classes, "y_true")
    _check_range(p, num_classes, "y_pred")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0.0 where undefined)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support.astype(np.float64))
    # 2tp / (2tp + fp + fn): equal to the harmonic mean, and 0 (not NaN) when tp == 0.
    f1 = _safe_divide(2 * tp, predicted + support)
    return precision, recall, f1, support


def expected_calibration_error(y_true: Any, probs: Any, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins (right-closed), weighted by bin size."""
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    if t.size == 0:
        raise ValueError("expected_calibration_error needs at least one example")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; confidence 0 joins the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    # sum_b |acc_b - conf_b| * n_b / N, written as sum_b |sum(correct) - sum(confidence)| / N.
    hits = np.bincount(index, weights=correct, minlength=bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    gap = np.abs(hits - confidence_sum)
    return float(gap.sum() / t.size)


def classification_report(
    y_true: Any, probs: Any, class_names: Sequence[str], *, ece_bins: int = 15
) -> dict[str, Any]:
    """Every metric bench reports, as plain Python numbers (json.dumps-able)."""
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    k = p.shape[1]
    names = [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} probability columns")
    if len(set(names)) != k:
        raise ValueError("class names must be unique")
    if t.size == 0:
        raise ValueError("classification_report needs at least one example")
    _check_range(t, k, "y_true")

    y_pred = p.argmax(axis=1)
    cm = confusion_matrix(t, y_pred, k)
    precision, recall, f1, support = precision_recall_f1(cm)
    report: dict[str, Any] = {"accuracy": accuracy(t, y_pred)}
    if k >= 5:
        report["top5_accuracy"] = top_k_accuracy(t, p, 5)
    report.update(
        macro_precision=float(precision.mean()),
        macro_recall=float(recall.mean()),
        macro_f1=float(f1.mean()),
        per_class={
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        confusion_matrix=cm.tolist(),
        ece=expected_calibration_error(t, p, bins=ece_bins),
        num_examples=int(t.size),
    )
    return report
