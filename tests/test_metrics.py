"""edgecls.metrics against scikit-learn, hand-worked cases and its no-TensorFlow promise."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from edgecls import metrics

sk = pytest.importorskip("sklearn.metrics")


def _random_case(seed: int, n: int = 200, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed: int) -> None:
    y, probs = _random_case(seed)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    labels = list(range(k))
    names = [f"c{i}" for i in labels]
    report = metrics.classification_report(y, probs, names)

    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert report["top5_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y, probs, k=5, labels=labels))
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(p[i])
        assert row["recall"] == pytest.approx(r[i])
        assert row["f1"] == pytest.approx(f[i])
        assert row["support"] == s[i]
    for key, average in (("macro_precision", p), ("macro_recall", r), ("macro_f1", f)):
        assert report[key] == pytest.approx(average.mean())
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    assert report["confusion_matrix"] == sk.confusion_matrix(y, pred, labels=labels).tolist()
    assert report["num_examples"] == len(y)


def test_report_keys_and_json() -> None:
    y, probs = _random_case(3, n=30, k=5)
    report = metrics.classification_report(y, probs, list("abcde"))
    assert set(report) == {
        "accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1",
        "per_class", "confusion_matrix", "ece", "num_examples",
        "average_precision", "mean_average_precision", "reliability", "pr_curve",
    }  # fmt: skip
    assert json.loads(json.dumps(report)) == report
    for value in (report["accuracy"], report["ece"], report["per_class"]["a"]["f1"]):
        assert type(value) is float
    assert type(report["per_class"]["a"]["support"]) is int
    assert all(type(c) is int for row in report["confusion_matrix"] for c in row)


def test_report_curves_and_average_precision() -> None:
    y, probs = _tied_case(11)
    names = [f"c{i}" for i in range(probs.shape[1])]
    report = metrics.classification_report(y, probs, names, ece_bins=10, pr_points=21)
    assert json.loads(json.dumps(report)) == report
    ap = metrics.average_precision(y, probs)
    assert report["average_precision"]["per_class"] == {n: pytest.approx(v) for n, v in zip(names, ap)}
    assert report["average_precision"]["macro"] == report["mean_average_precision"] == pytest.approx(ap.mean())
    assert all(report["per_class"][n]["average_precision"] == report["average_precision"]["per_class"][n]
               for n in names)
    rel = report["reliability"]
    assert rel["bins"] == 10 and sum(rel["count"]) == len(y)
    curve = report["pr_curve"]
    assert len(curve["recall"]) == len(curve["macro"]) == 21 and curve["recall"][5] == 0.25
    assert set(curve["precision"]) == set(names)
    _, curves = metrics.pr_curves(y, probs, 21)
    np.testing.assert_allclose(curve["macro"], curves.mean(axis=0), atol=5e-5)
    np.testing.assert_allclose(curve["precision"]["c2"], curves[2], atol=5e-5)
    numbers = curve["macro"] + curve["precision"]["c1"] + [v for v in rel["confidence"] if v is not None]
    assert all(round(v, 4) == v for v in numbers)  # rounded for the trip as JSON
    assert any(v != round(v, 2) for v in numbers)  # ...to 4 decimals, not fewer


def test_report_leaves_out_per_class_curves_above_twenty_classes() -> None:
    y, probs = _random_case(12, n=60, k=21)
    curve = metrics.classification_report(y, probs, [f"c{i}" for i in range(21)])["pr_curve"]
    assert set(curve) == {"recall", "macro"} and len(curve["macro"]) == 101


def test_top5_only_with_five_or_more_classes() -> None:
    y, probs = _random_case(4, n=20, k=4)
    assert "top5_accuracy" not in metrics.classification_report(y, probs, list("abcd"))


def test_hand_worked_binary_case() -> None:
    y = np.array([0, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]])
    # predictions 0, 0, 1, 1, 0 -> tp0=2, fp0=1, fn0=1; tp1=1, fp1=1, fn1=1
    report = metrics.classification_report(y, probs, ["neg", "pos"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion_matrix"] == [[2, 1], [1, 1]]
    # AP of "pos": scores 0.7 (neg), 0.6 (pos), 0.4 (pos) -> (0.5 - 0) * 1/2 + (1 - 0.5) * 2/3 = 7/12.
    # AP of "neg": scores 0.9, 0.8 (neg), 0.6, 0.4 (pos), 0.3 (neg) -> 1/3 + 1/3 + 1/3 * 3/5 = 13/15.
    assert report["per_class"]["neg"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3, "average_precision": 13 / 15})
    assert report["per_class"]["pos"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "average_precision": 7 / 12})
    assert report["mean_average_precision"] == pytest.approx((13 / 15 + 7 / 12) / 2)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_hand_worked_ece() -> None:
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    # Bins of width 0.25. (0.5, 0.75] holds 0.7 (right); (0.75, 1] holds 0.9 (right), 0.9 and
    # 0.8 (wrong): accuracy 1/3 against mean confidence 2.6/3.
    # ECE = |1 - 0.7| * 1/4 + |1/3 - 2.6/3| * 3/4 = 0.075 + 0.4 = 0.475
    assert metrics.expected_calibration_error(y, probs, bins=4) == pytest.approx(0.475)


def test_ece_zero_for_perfect_one_hot() -> None:
    y = np.array([0, 1, 2, 2, 1])
    assert metrics.expected_calibration_error(y, np.eye(3)[y]) == 0.0
    assert metrics.classification_report(y, np.eye(3)[y], ["a", "b", "c"])["ece"] == 0.0


def test_ece_matches_a_direct_loop() -> None:
    y, probs = _random_case(5, n=500, k=10)
    conf, correct = probs.max(1), probs.argmax(1) == y
    edges = np.linspace(0, 1, 16)
    expected = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            expected += abs(correct[mask].mean() - conf[mask].mean()) * mask.mean()
    assert metrics.expected_calibration_error(y, probs) == pytest.approx(expected)


def test_class_absent_from_y_true_and_never_predicted() -> None:
    # Class 2 never occurs and is never predicted; class 1 is never predicted.
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.7, 0.2, 0.1]] * 4)
    report = metrics.classification_report(y, probs, ["a", "b", "c"])
    # Constant scores: one threshold holding everything, so AP = precision there = prevalence.
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2,
                                        "average_precision": 0.5}
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                        "average_precision": 0.0}
    pred = probs.argmax(1)
    assert report["macro_precision"] == pytest.approx(
        sk.precision_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )
    assert report["macro_recall"] == pytest.approx(
        sk.recall_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0)
    )


def test_helpers() -> None:
    assert metrics.accuracy([1, 2, 3], [1, 0, 3]) == pytest.approx(2 / 3)
    probs = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]])
    assert metrics.top_k_accuracy([2, 2], probs, 1) == 0.0
    assert metrics.top_k_accuracy([2, 2], probs, 2) == 0.5
    assert metrics.top_k_accuracy([2, 2], probs, 3) == 1.0
    cm = metrics.confusion_matrix([0, 1, 1], [1, 1, 0], 3)
    assert cm.tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 0]]
    p, r, f, s = metrics.precision_recall_f1(cm)
    assert p.tolist() == [0.0, 0.5, 0.0] and r.tolist() == [0.0, 0.5, 0.0]
    assert f.tolist() == [0.0, 0.5, 0.0] and s.tolist() == [1, 2, 0]


# --- average precision and PR curves ----------------------------------------------------------------------

def _tied_case(seed: int, n: int = 120, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Scores rounded to one decimal (many ties); the last class never occurs in y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k - 1, size=n)
    probs = (rng.random((n, k)) + 0.8 * np.eye(k)[y] * rng.random((n, 1))).round(1)
    return y, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed: int) -> None:
    for y, probs in (_tied_case(seed), _random_case(seed)):
        k = probs.shape[1]
        ap = metrics.average_precision(y, probs)
        assert ap.shape == (k,)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about the class with no positive
            expected = sk.average_precision_score(np.eye(k)[y], probs, average=None)
            macro = sk.average_precision_score(np.eye(k)[y], probs, average="macro")
        np.testing.assert_allclose(ap, expected, rtol=1e-12, atol=1e-12)
        assert ap.mean() == pytest.approx(macro)
    assert metrics.average_precision(*_tied_case(seed))[-1] == 0.0  # no positive example


def test_average_precision_ties_ignore_order() -> None:
    # Three examples share one score: they form one threshold whichever order they come in.
    y = np.array([1, 0, 0, 1])
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.1, 0.9]])
    # class 1 thresholds: 0.9 -> P 1, R 1/2; 0.5 -> P 2/4, R 1 -> AP = 1/2 + 1/2 * 1/2 = 0.75
    assert metrics.average_precision(y, probs)[1] == pytest.approx(0.75)
    assert metrics.average_precision(y[[1, 0, 2, 3]], probs[[1, 0, 2, 3]])[1] == pytest.approx(0.75)


def test_pr_curves_interpolate_sklearns_points() -> None:
    y, probs = _tied_case(4)
    k = probs.shape[1]
    recall_grid, curves = metrics.pr_curves(y, probs, points=51)
    assert recall_grid.shape == (51,) and curves.shape == (k, 51)
    assert recall_grid[0] == 0.0 and recall_grid[-1] == 1.0
    assert np.all(np.diff(curves, axis=1) <= 0)  # non-increasing
    for c in range(k - 1):
        precision, recall, _ = sk.precision_recall_curve(y == c, probs[:, c])
        precision, recall = precision[:-1], recall[:-1]  # drop sklearn's (recall 0, precision 1) sentinel
        expected = [precision[recall >= r - 1e-12].max() for r in recall_grid]
        np.testing.assert_allclose(curves[c], expected)
        assert curves[c, 0] == pytest.approx(precision.max())
        assert curves[c, -1] == pytest.approx(precision[recall == 1.0].max())
        assert curves[c, -1] >= np.mean(y == c)  # full recall is reached at worst by predicting all
    assert np.all(curves[-1] == 0.0)  # no positive: nothing to recall


def test_pr_curves_grid_meets_exact_recalls() -> None:
    # 10 positives: the top 7 come first (precision 1 up to recall 0.7), then 5 negatives, then 3
    # positives. The grid's 0.7 is 0.7000000000000001 in floating point; it must still find recall 7/10.
    scores = np.r_[np.linspace(1.0, 0.9, 7), np.linspace(0.8, 0.7, 5), np.linspace(0.6, 0.5, 3)]
    y = np.r_[np.ones(7, int), np.zeros(5, int), np.ones(3, int)]
    grid, curves = metrics.pr_curves(y, np.c_[1 - scores, scores], points=101)
    assert grid[70] > 0.7 and curves[1, 70] == 1.0 and curves[1, 71] == pytest.approx(10 / 15)


def test_pr_curves_perfect_ranking_is_flat_one() -> None:
    y = np.array([0, 1, 2, 1])
    _, curves = metrics.pr_curves(y, np.eye(3)[y], points=11)
    assert np.all(curves == 1.0)


# --- calibration ------------------------------------------------------------------------------------------

def test_reliability_bins_sum_to_ece() -> None:
    y, probs = _random_case(6, n=300, k=8)
    rel = metrics.reliability(y, probs, bins=10)
    assert rel["bins"] == 10 and len(rel["count"]) == len(rel["accuracy"]) == len(rel["confidence"]) == 10
    assert sum(rel["count"]) == len(y)
    assert any(c == 0 for c in rel["count"])  # this case has empty low-confidence bins...
    for c, acc, conf in zip(rel["count"], rel["accuracy"], rel["confidence"]):
        assert (acc is None) == (conf is None) == (c == 0)  # ...reported as None
        if c:
            assert 0.0 <= acc <= 1.0 and 0.0 <= conf <= 1.0
    from_bins = sum(c * abs(a - f) for c, a, f in zip(rel["count"], rel["accuracy"], rel["confidence"]) if c)
    assert metrics.expected_calibration_error(y, probs, bins=10) == pytest.approx(from_bins / len(y))
    json.dumps(rel)


def test_reliability_hand_worked() -> None:
    # The ECE case above in 4 bins: 0.7 -> bin 2 (right); 0.9, 0.9, 0.8 -> bin 3 (1 right of 3).
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    rel = metrics.reliability(y, probs, bins=4)
    assert rel["count"] == [0, 0, 1, 3]
    assert rel["accuracy"][:3] == [None, None, 1.0] and rel["accuracy"][3] == pytest.approx(1 / 3)
    assert rel["confidence"][2] == pytest.approx(0.7) and rel["confidence"][3] == pytest.approx(2.6 / 3)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _nll(y: np.ndarray, probs: np.ndarray) -> float:
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


@pytest.mark.parametrize("true_t", [2.5, 0.5])
def test_fit_temperature_recovers_a_known_temperature(true_t: float) -> None:
    # Labels drawn from softmax(z) (Gumbel-max); the "model" reports softmax(true_t * z), i.e.
    # it is over- (2.5) or under- (0.5) confident by exactly true_t.
    rng = np.random.default_rng(7)
    z = 2.0 * rng.normal(size=(20000, 10))
    y = np.argmax(z + rng.gumbel(size=z.shape), axis=1)
    probs = _softmax(true_t * z).astype(np.float32)
    fitted = metrics.fit_temperature(y, probs)
    assert fitted == pytest.approx(true_t, rel=0.02)
    assert metrics.fit_temperature(y, probs) == fitted  # deterministic
    calibrated = metrics.apply_temperature(probs, fitted)
    assert _nll(y, calibrated) < _nll(y, probs)
    assert metrics.expected_calibration_error(y, calibrated) < metrics.expected_calibration_error(y, probs)
    assert metrics.expected_calibration_error(y, calibrated) < 0.02


def test_fit_temperature_stays_within_bounds() -> None:
    # Perfect one-hot predictions: sharper is always better, so the search ends at lo.
    y = np.array([0, 1, 2, 0])
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert metrics.fit_temperature(y, probs, lo=0.1, hi=5.0) == pytest.approx(0.1, rel=1e-6)


def test_apply_temperature_rows_and_argmax() -> None:
    _, probs = _random_case(8, n=50, k=6)
    probs[0] = [1.0, 0, 0, 0, 0, 0]  # exact zeros (float32 underflow) must not give NaN
    for t in (0.3, 1.0, 4.0):
        out = metrics.apply_temperature(probs, t)
        assert out.shape == probs.shape and np.all(np.isfinite(out))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
        assert np.array_equal(out.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(metrics.apply_temperature(probs[1:], 1.0), probs[1:], atol=1e-12)
    assert metrics.apply_temperature(probs.astype(np.float32), 2.0).dtype == np.float32
    hot = metrics.apply_temperature(probs, 4.0).max(axis=1)
    assert np.all(hot[1:] < probs[1:].max(axis=1))  # T > 1 softens


# --- slices -----------------------------------------------------------------------------------------------

_SLICE_Y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
_SLICE_P = np.array([0, 1, 1, 1, 2, 0, 0, 2])  # right: 1 0 1 1 1 0 1 0 -> overall 5/8
_SLICE_ATTRS = {
    "size": ["s", "s", "s", "l", "l", "l", "", "l"],  # example 6 is in no size slice
    "bg": ["dark", "dark"] + ["light"] * 6,
}


def test_slice_report_hand_worked() -> None:
    report = metrics.slice_report(_SLICE_Y, _SLICE_P, _SLICE_ATTRS, 3, min_size=3)
    size, bg = report["attributes"]["size"], report["attributes"]["bg"]
    assert set(size) == {"s", "l"}  # "" is no slice
    # s = examples 0-2: true 0 0 1, pred 0 1 1. Class 2 absent -> F1 mean over {0: 2/3, 1: 2/3}.
    assert size["s"] == pytest.approx({"n": 3, "accuracy": 2 / 3, "macro_f1": 2 / 3})
    # l = 3,4,5,7: true 1 2 2 1, pred 1 2 0 2. F1: class 0 (predicted once) 0, class 1 2/3, class 2 1/2.
    assert size["l"] == pytest.approx({"n": 4, "accuracy": 1 / 2, "macro_f1": 7 / 18})
    # dark = 0,1: true 0 0, pred 0 1 -> F1 0: 2/3, 1: 0.  light = 2-7: F1 0: 2/3, 1: 4/5, 2: 1/2.
    assert bg["dark"] == pytest.approx({"n": 2, "accuracy": 1 / 2, "macro_f1": 1 / 3})
    assert bg["light"] == pytest.approx({"n": 6, "accuracy": 4 / 6, "macro_f1": 59 / 90})
    # dark (n=2) is below min_size, so the worst is size=l.
    assert report["worst"] == pytest.approx(
        {"attribute": "size", "value": "l", "n": 4, "accuracy": 0.5, "macro_f1": 7 / 18, "gap": 5 / 8 - 1 / 2})
    json.dumps(report)


def test_slice_report_min_size_and_ties() -> None:
    y, p = _SLICE_Y, _SLICE_P
    # min_size 1: dark and l tie at 0.5; "bg" sorts before "size".
    worst = metrics.slice_report(y, p, _SLICE_ATTRS, 3, min_size=1)["worst"]
    assert (worst["attribute"], worst["value"]) == ("bg", "dark")
    # min_size 5: only light (2/3) qualifies, better than the whole: a negative gap.
    worst = metrics.slice_report(y, p, _SLICE_ATTRS, 3, min_size=5)["worst"]
    assert (worst["value"], worst["gap"]) == ("light", pytest.approx(5 / 8 - 2 / 3))
    report = metrics.slice_report(y, p, _SLICE_ATTRS, 3, min_size=7)
    assert report["worst"] is None and report["attributes"]["bg"]["light"]["n"] == 6
    assert metrics.slice_report(y, p, {}, 3) == {"attributes": {}, "worst": None}
    assert metrics.slice_report(y, p, {"x": [""] * 8}, 3) == {"attributes": {"x": {}}, "worst": None}


# --- agreement between maps -------------------------------------------------------------------------------

def test_rank_correlation_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(9)
    for a, b in (
        (rng.normal(size=(12, 12)), rng.normal(size=(12, 12))),
        (rng.integers(0, 4, size=(10, 10)), rng.integers(0, 4, size=(10, 10))),  # many ties
    ):
        b = b + 0.5 * a  # some real correlation
        assert metrics.rank_correlation(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0])
    a = rng.normal(size=(6, 6))
    assert metrics.rank_correlation(a, a) == pytest.approx(1.0)
    assert metrics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert metrics.rank_correlation(a, np.exp(a)) == pytest.approx(1.0)  # ranks only
    assert metrics.rank_correlation(np.zeros((6, 6)), a) == 0.0
    assert metrics.rank_correlation(a, np.full((6, 6), 3.0)) == 0.0


def test_top_region_iou() -> None:
    a = np.arange(10.0)
    assert metrics.top_region_iou(a, a) == 1.0
    assert metrics.top_region_iou(a, a[::-1]) == 0.0  # top 2: {8, 9} against {0, 1}
    assert metrics.top_region_iou(a, np.roll(a, -1)) == pytest.approx(1 / 3)  # {8, 9} against {7, 8}
    assert metrics.top_region_iou(a, np.zeros(10)) == 0.0  # a flat map has no region
    assert metrics.top_region_iou(np.zeros(10), np.zeros(10)) == 0.0
    assert metrics.top_region_iou(a, a[::-1], fraction=1.0) == pytest.approx(8 / 10)  # the floor is never in it
    # Mostly-floor maps (ReLU'd Grad-CAM, int8 occlusion) with disjoint peaks do not agree.
    p, q = np.zeros((10, 10)), np.zeros((10, 10))
    p[:3, :3], q[7:, 7:] = 1, 1
    assert metrics.top_region_iou(p, q) == 0.0 and metrics.top_region_iou(p, p) == 1.0
    rng = np.random.default_rng(10)
    m = rng.random((16, 16))
    assert metrics.top_region_iou(m, m * 3 + 1) == 1.0
    assert metrics.top_region_iou(m, 1 - m, fraction=0.2) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.classification_report([0, 3], np.full((2, 3), 1 / 3), "abc"), "outside"),
        (lambda: metrics.classification_report([0, 1], np.full((2, 3), 1 / 3), "ab"), "class names"),
        (lambda: metrics.classification_report([0, 1], np.full((2, 2), 0.5), "aa"), "unique"),
        (lambda: metrics.classification_report([0], np.full((2, 2), 0.5), "ab"), "shape"),
        (lambda: metrics.top_k_accuracy([0], np.full((1, 2), 0.5), 3), "k must"),
        (lambda: metrics.accuracy([], []), "non-empty"),
        (lambda: metrics.average_precision([0, 1], np.full((3, 2), 0.5)), "shape"),
        (lambda: metrics.average_precision([0, 2], np.full((2, 2), 0.5)), "outside"),
        (lambda: metrics.average_precision([0, 1], [[0.5, np.nan], [0.5, 0.5]]), "finite"),
        (lambda: metrics.pr_curves([0, 1], np.full((2, 2), 0.5), points=1), "points must be >= 2"),
        (lambda: metrics.reliability([0, 1], np.full((2, 2), 0.5), bins=0), "bins must be an integer >= 1"),
        (lambda: metrics.expected_calibration_error([0, 1], np.full((2, 2), 0.5), bins=0), "bins must"),
        (lambda: metrics.reliability([0, 1], np.full((2, 2), 0.5), bins=2.5), "bins must"),
        (lambda: metrics.apply_temperature(np.full((2, 2), 0.5), 0.0), "temperature must be a finite number > 0"),
        (lambda: metrics.apply_temperature(np.full((2, 2), 0.5), -1.0), "temperature must"),
        (lambda: metrics.apply_temperature(np.full((2, 2), 0.5), float("nan")), "temperature must"),
        (lambda: metrics.fit_temperature([0, 1], np.full((2, 2), 0.5), lo=0.0), "lo must"),
        (lambda: metrics.fit_temperature([0, 1], np.full((2, 2), 0.5), lo=2.0, hi=1.0), "lo must be below hi"),
        (lambda: metrics.fit_temperature([], np.zeros((0, 2))), "at least one"),
        (lambda: metrics.slice_report([0, 1], [0, 1], {"colour": ["red"]}, 2), "'colour' has 1 values for 2"),
        (lambda: metrics.slice_report([0, 1], [0], {}, 2), "equally long"),
        (lambda: metrics.slice_report([0, 1], [0, 2], {}, 2), "y_pred has class indices outside"),
        (lambda: metrics.slice_report([0, 1], [0, 1], {}, 2, min_size=0), "min_size must"),
        (lambda: metrics.rank_correlation(np.zeros((2, 3)), np.zeros((3, 2))), "same shape"),
        (lambda: metrics.rank_correlation([], []), "empty"),
        (lambda: metrics.top_region_iou(np.zeros(4), np.zeros(5)), "same shape"),
        (lambda: metrics.top_region_iou(np.zeros(4), [0, 0, np.inf, 0]), "finite"),
        (lambda: metrics.top_region_iou(np.zeros(4), np.zeros(4), fraction=0.0), r"fraction must be in \(0, 1\]"),
        (lambda: metrics.top_region_iou(np.zeros(4), np.zeros(4), fraction=1.5), "fraction must"),
    ],
)
def test_bad_inputs_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_import_loads_no_tensorflow() -> None:
    code = "import sys, edgecls.metrics; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
