"""Classification metrics in plain numpy (no TensorFlow: the runtime and bench use them on devices).

Conventions follow scikit-learn with ``labels=range(K)`` and ``zero_division=0``:
a class never predicted has precision 0.0, a class absent from ``y_true`` has
recall 0.0, and macro averages run over all K classes (average precision too: a
class with no positive example scores 0.0 and still counts in the macro mean).

Besides the top-1 figures: average precision and PR curves, calibration (reliability
bins, ECE, temperature scaling), per-slice accuracy for bias checks, and the two
agreement scores between saliency maps (rank correlation, top-region IoU).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

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


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _calibration_bins(y_true: Any, probs: Any, bins: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-bin (count, correct count, confidence sum) and N: the one binning ECE and reliability share.

    Bin b holds top-1 confidences in (b/bins, (b+1)/bins]; confidence 0 joins the first bin.
    """
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    if t.size == 0:
        raise ValueError(f"{what} needs at least one example")
    bins = _positive_int(bins, "bins")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    hits = np.bincount(index, weights=correct, minlength=bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    return count, hits, confidence_sum, int(t.size)


def expected_calibration_error(y_true: Any, probs: Any, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins (right-closed), weighted by bin size."""
    _, hits, confidence_sum, n = _calibration_bins(y_true, probs, bins, "expected_calibration_error")
    # sum_b |acc_b - conf_b| * n_b / N, written as sum_b |sum(correct) - sum(confidence)| / N.
    return float(np.abs(hits - confidence_sum).sum() / n)


def reliability(y_true: Any, probs: Any, bins: int = 15) -> dict[str, Any]:
    """Reliability-diagram data in the bins ECE uses: count, accuracy and mean confidence per bin.

    ``accuracy`` and ``confidence`` are None for empty bins (JSON has no NaN), so
    ``sum(count_b * |accuracy_b - confidence_b|) / N`` over non-empty bins is the ECE.
    """
    count, hits, confidence_sum, _ = _calibration_bins(y_true, probs, bins, "reliability")
    return {
        "bins": int(count.size),
        "count": [int(c) for c in count],
        "accuracy": [float(h / c) if c else None for h, c in zip(hits, count)],
        "confidence": [float(s / c) if c else None for s, c in zip(confidence_sum, count)],
    }


# --- precision-recall -------------------------------------------------------------------------------------

def _binary_pr(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, highest threshold first.

    scikit-learn's ``precision_recall_curve`` points without its (recall 0, precision 1)
    sentinel. Tied scores form one threshold, so their order cannot change the result.
    Needs at least one positive (recall divides by their number).
    """
    order = np.argsort(-scores, kind="mergesort")
    s, pos = scores[order], positive[order]
    # The last index of each run of equal scores: everything up to it is predicted positive.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(pos)[last].astype(np.float64)
    predicted = (last + 1).astype(np.float64)
    return tp / predicted, tp / tp[-1]


def _scored(y_true: Any, probs: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and finite (N, K) scores, checked; ``what`` names the metric in the error."""
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    if t.size == 0:
        raise ValueError(f"{what} needs at least one example")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs must be finite")
    _check_range(t, p.shape[1], "y_true")
    return t, p


def _one_vs_rest(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    return _scored(y_true, probs, "precision-recall metrics")


def average_precision(y_true: Any, probs: Any) -> np.ndarray:
    """One-vs-rest AP per class, shape (K,), as scikit-learn's ``average_precision_score``.

    AP = sum_n (R_n - R_{n-1}) P_n over distinct score thresholds: the step-wise area
    under the PR curve, without the optimistic interpolation of the trapezoid rule.
    A class with no positive example has no recall to speak of: 0.0.
    """
    t, p = _one_vs_rest(y_true, probs)
    out = np.zeros(p.shape[1])
    for c in range(p.shape[1]):
        positive = t == c
        if positive.any():
            precision, recall = _binary_pr(positive, p[:, c])
            out[c] = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    return out


def pr_curves(y_true: Any, probs: Any, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(recall grid of ``points`` values over [0, 1], interpolated precision (K, points)).

    Interpolated precision at r is the best precision at any recall >= r (the PASCAL VOC
    convention), so every curve is non-increasing and curves of different sizes of data
    share one x axis (they travel as JSON from devices). A class with no positive: zeros.
    """
    t, p = _one_vs_rest(y_true, probs)
    points = _positive_int(points, "points")
    if points < 2:
        raise ValueError(f"points must be >= 2 (the curve spans recall 0 to 1), got {points}")
    grid = np.linspace(0.0, 1.0, points)
    curves = np.zeros((p.shape[1], points))
    for c in range(p.shape[1]):
        positive = t == c
        if not positive.any():
            continue
        precision, recall = _binary_pr(positive, p[:, c])
        best_after = np.maximum.accumulate(precision[::-1])[::-1]
        # recall is non-decreasing; the tolerance keeps a grid value such as 0.30000000000000004
        # from skipping the point whose recall is exactly 3/10.
        first = np.searchsorted(recall, grid - 1e-12, side="left")
        inside = first < recall.size  # always true here: the lowest threshold reaches recall 1
        curves[c, inside] = best_after[first[inside]]
    return grid, curves


# --- temperature scaling ----------------------------------------------------------------------------------

# Zeros in float32 softmax outputs are underflows, not certainties: clip them to the smallest
# float32 normal so log() stays finite and the logit gap stays what float32 could have shown.
_PROB_FLOOR = float(np.finfo(np.float32).tiny)


def _scaled_log_softmax(log_p: np.ndarray, temperature: float) -> np.ndarray:
    z = log_p / temperature
    z = z - z.max(axis=-1, keepdims=True)  # stable: the largest exponent is exp(0)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _check_temperature(temperature: Any, name: str = "temperature") -> float:
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {temperature!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {temperature!r}")
    return value


def apply_temperature(probs: Any, temperature: float) -> np.ndarray:
    """softmax(log(clip(probs)) / T) along the last axis; rows sum to 1 and keep their argmax.

    log(p) equals the logits up to a per-row constant, which softmax ignores, so this is
    temperature scaling applied to a model's softmax output. float32 stays float32.
    """
    t = _check_temperature(temperature)
    p = np.asarray(probs)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"probs must have a class axis, got shape {p.shape}")
    dtype = np.result_type(p.dtype, np.float32)
    log_p = np.log(np.clip(p.astype(np.float64), _PROB_FLOOR, 1.0))
    return np.exp(_scaled_log_softmax(log_p, t)).astype(dtype)


def fit_temperature(y_true: Any, probs: Any, *, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T in [lo, hi] minimising the NLL of softmax(log(probs) / T) (Guo et al., 2017).

    The NLL is convex in 1/T (a log-sum-exp of terms linear in it), hence unimodal in
    log T, so a golden-section search on log T finds the global minimum: deterministic,
    no gradients, and even steps across [0.05, 20] in ratio rather than in absolute size.
    """
    t, p = _scored(y_true, probs, "fit_temperature")
    lo, hi = _check_temperature(lo, "lo"), _check_temperature(hi, "hi")
    if lo >= hi:
        raise ValueError(f"lo must be below hi, got lo={lo} and hi={hi}")
    log_p = np.log(np.clip(p, _PROB_FLOOR, 1.0))
    rows = np.arange(t.size)

    def nll(log_t: float) -> float:
        return float(-_scaled_log_softmax(log_p, math.exp(log_t))[rows, t].mean())

    a, b = math.log(lo), math.log(hi)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    # Each step keeps 0.618 of the bracket: ~55 steps take log(400) down to 1e-10, so T is
    # exact to far better than any data set could tell apart.
    while b - a > 1e-10:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(math.exp((a + b) / 2.0))


# --- slices (bias) ----------------------------------------------------------------------------------------

def slice_report(
    y_true: Any, y_pred: Any, attributes: Mapping[str, Sequence[str]], num_classes: int, *, min_size: int = 5
) -> dict[str, Any]:
    """Accuracy and macro-F1 per value of each attribute, and the worst slice's gap to the whole.

    ``attributes`` maps a name to one string per example; "" means the example is in no
    slice of that attribute. Inside a slice, macro-F1 averages over the classes present
    in it (as true or predicted label): a slice of one colour need not hold every class,
    and absent classes would otherwise add zeros that say nothing about the slice.
    The worst slice is the least accurate one with at least ``min_size`` examples (smaller
    ones are listed but too noisy to rank); ties go to the first by (attribute, value).
    ``gap`` = overall accuracy - worst slice accuracy. No eligible slice: "worst" is None.
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    overall = accuracy(t, p)  # also checks equal, non-empty lengths
    _check_range(t, num_classes, "y_true")
    _check_range(p, num_classes, "y_pred")
    min_size = _positive_int(min_size, "min_size")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    worst: dict[str, Any] | None = None
    for name in sorted(attributes):
        values = np.asarray(attributes[name]).astype(str)
        if values.shape != t.shape:
            raise ValueError(f"slice attribute {name!r} has {values.size} values for {t.size} examples")
        out[str(name)] = {}
        for value in sorted(set(values.tolist()) - {""}):
            mask = values == value
            cm = confusion_matrix(t[mask], p[mask], num_classes)
            f1 = precision_recall_f1(cm)[2]
            present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
            row = {"n": int(mask.sum()), "accuracy": float(np.mean(t[mask] == p[mask])),
                   "macro_f1": float(f1[present].mean())}
            out[str(name)][value] = row
            if row["n"] >= min_size and (worst is None or row["accuracy"] < worst["accuracy"]):
                worst = {"attribute": str(name), "value": value, **row}
    if worst is not None:
        worst["gap"] = overall - worst["accuracy"]
    return {"attributes": out, "worst": worst}


# --- agreement between saliency maps ----------------------------------------------------------------------

def _two_maps(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"the two maps must have the same shape, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("the maps are empty")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("the maps must be finite (no NaN or inf)")
    return x.ravel(), y.ravel()


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (scipy.stats.rankdata's default)."""
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, s.size])
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rho of two equally shaped maps: Pearson's r of their average ranks.

    A constant map ranks nothing, so there is no correlation to report: 0.0 (scipy says NaN,
    which JSON cannot carry and a mean over images would spread).
    """
    x, y = _two_maps(a, b)
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if den == 0.0:
        return 0.0
    return float(np.clip((rx @ ry) / den, -1.0, 1.0))


def top_region_iou(a: Any, b: Any, fraction: float = 0.2) -> float:
    """IoU of the top-``fraction`` regions of two equally shaped maps.

    A map's region is every pixel at least as large as its k-th largest value,
    k = max(1, round(fraction * size)), and above the map's minimum. Ties at the threshold
    are all kept (no pixel is picked by sort order), but the floor is never part of the region:
    a Grad-CAM map after its ReLU, or an int8 model's occlusion map, is mostly exactly its
    minimum, and counting that floor would make two maps with disjoint peaks agree. A flat map
    has no region, and an empty region agrees with nothing (0.0, as rank_correlation gives).
    """
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if not 0.0 < f <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    x, y = _two_maps(a, b)
    k = max(1, int(round(f * x.size)))

    def region(m: np.ndarray) -> np.ndarray:
        return (m >= np.partition(m, m.size - k)[m.size - k]) & (m > m.min())

    rx, ry = region(x), region(y)
    union = np.sum(rx | ry)
    return float(np.sum(rx & ry) / union) if union else 0.0


# Above this many classes a per-class curve list outweighs its use (the macro curve stays).
PR_CURVE_MAX_CLASSES = 20


def _rounded(values: Any) -> list:
    # Curves travel as JSON from devices: 4 decimals are more than a plot can show.
    return [None if v is None else round(float(v), 4) for v in values]


def classification_report(
    y_true: Any, probs: Any, class_names: Sequence[str], *, ece_bins: int = 15, pr_points: int = 101
) -> dict[str, Any]:
    """Every metric bench reports, as plain Python numbers (json.dumps-able).

    Besides the top-1 figures: average precision (per class and macro, also as
    ``mean_average_precision``), the reliability bins behind ``ece``, and PR curves on a
    ``pr_points`` recall grid (per class only up to PR_CURVE_MAX_CLASSES classes).
    """
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
    ap = average_precision(t, p)
    grid, curves = pr_curves(t, p, pr_points)
    bins = reliability(t, p, ece_bins)
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
                "average_precision": float(ap[i]),
            }
            for i, name in enumerate(names)
        },
        confusion_matrix=cm.tolist(),
        ece=expected_calibration_error(t, p, bins=ece_bins),
        average_precision={"macro": float(ap.mean()), "per_class": {n: float(v) for n, v in zip(names, ap)}},
        mean_average_precision=float(ap.mean()),
        reliability={**bins, "accuracy": _rounded(bins["accuracy"]), "confidence": _rounded(bins["confidence"])},
        pr_curve={"recall": _rounded(grid), "macro": _rounded(curves.mean(axis=0))},
        num_examples=int(t.size),
    )
    if k <= PR_CURVE_MAX_CLASSES:
        report["pr_curve"]["precision"] = {n: _rounded(c) for n, c in zip(names, curves)}
    return report
