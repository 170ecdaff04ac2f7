"""edgecls.metrics against scikit-learn, hand-worked cases and its no-TensorFlow promise."""
from __future__ import annotations

import json
import subprocess
import sys

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
    }  # fmt: skip
    assert json.loads(json.dumps(report)) == report
    for value in (report["accuracy"], report["ece"], report["per_class"]["a"]["f1"]):
        assert type(value) is float
    assert type(report["per_class"]["a"]["support"]) is int
    assert all(type(c) is int for row in report["confusion_matrix"] for c in row)


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
    assert report["per_class"]["neg"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert report["per_class"]["pos"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
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
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
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


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.classification_report([0, 3], np.full((2, 3), 1 / 3), "abc"), "outside"),
        (lambda: metrics.classification_report([0, 1], np.full((2, 3), 1 / 3), "ab"), "class names"),
        (lambda: metrics.classification_report([0, 1], np.full((2, 2), 0.5), "aa"), "unique"),
        (lambda: metrics.classification_report([0], np.full((2, 2), 0.5), "ab"), "shape"),
        (lambda: metrics.top_k_accuracy([0], np.full((1, 2), 0.5), 3), "k must"),
        (lambda: metrics.accuracy([], []), "non-empty"),
    ],
)
def test_bad_inputs_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_import_loads_no_tensorflow() -> None:
    code = "import sys, edgecls.metrics; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
