"""The quality figures and slices.md of a benchmark, from synthetic evaluations with real metric shapes."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecls import metrics
from edgecls.bench.quality import (corruption_plot, pr_curves_plot, reliability_plot, slices_markdown,
                                   slices_plot)

NAMES = ("circle", "square", "triangle", "star")


def evaluation(variant: str, seed: int, noise: float) -> dict:
    """What the runtime's evaluate() answers, through JSON as from a device; noise lowers accuracy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(NAMES), 120)
    logits = rng.normal(0, noise, (120, len(NAMES)))
    logits[np.arange(120), y] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    report = metrics.classification_report(y, probs, NAMES)
    return json.loads(json.dumps({**report, "variant": variant}))


def slices_of(accuracy: float, colour_acc: dict[str, float]) -> dict:
    attrs = {"colour": {c: {"n": 30, "accuracy": a, "macro_f1": a - 0.05} for c, a in colour_acc.items()},
             "size": {"small": {"n": 3, "accuracy": 0.1, "macro_f1": 0.1},  # too small to be the worst
                      "large": {"n": 40, "accuracy": accuracy, "macro_f1": accuracy}}}
    worst = min(colour_acc, key=colour_acc.get)
    return {"attributes": attrs, "worst": {"attribute": "colour", "value": worst, "n": 30,
                                           "accuracy": colour_acc[worst], "macro_f1": colour_acc[worst] - 0.05,
                                           "gap": accuracy - colour_acc[worst]}}


def corruptions_of(base: float) -> dict:
    acc = {name: {str(s): base - 0.1 * s * (k + 1) / 3 for s in (1, 3, 5)}
           for k, name in enumerate(("gaussian_noise", "jpeg", "contrast", "pixelate"))}
    mean = float(np.mean([a for d in acc.values() for a in d.values()]))
    return {"severities": [1, 3, 5], "accuracy": acc, "mean_accuracy": mean, "drop": base - mean}


@pytest.fixture(scope="module")
def evaluations() -> list[dict]:
    f = evaluation("float32", 0, 0.8)
    f["slices"] = slices_of(f["accuracy"], {"red": f["accuracy"] - 0.02, "blue": f["accuracy"] - 0.05})
    f["corruptions"] = corruptions_of(f["accuracy"])
    q = evaluation("int8", 0, 1.2)
    q["slices"] = slices_of(q["accuracy"], {"red": q["accuracy"] - 0.12, "blue": q["accuracy"] + 0.01})
    q["corruptions"] = corruptions_of(q["accuracy"])
    old = {"variant": "old_runtime", "accuracy": 0.8, "ece": 0.05}  # an older device runtime: none of the new keys
    return [f, q, old]


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG"
        return img.size


def test_pr_curves_plot(tmp_path, evaluations):
    assert "precision" in evaluations[0]["pr_curve"]  # per-class curves travel for K <= 20
    out = pr_curves_plot(evaluations, NAMES, tmp_path / "pr_curves.png", title="digits on host")
    w, h = png_size(out)
    assert 600 <= w <= 2000 and 300 <= h <= 1200  # two variant panels side by side, not three
    # Macro curve only (K > 20 on the device): still drawn.
    bare = json.loads(json.dumps(evaluations[1]))
    del bare["pr_curve"]["precision"]
    assert png_size(pr_curves_plot([bare], NAMES, tmp_path / "macro.png", title="t"))[0] < w
    assert pr_curves_plot(evaluations[2:], NAMES, tmp_path / "none.png", title="t") is None
    assert not (tmp_path / "none.png").exists()


def test_reliability_plot(tmp_path, evaluations):
    w, h = png_size(reliability_plot(evaluations[1], tmp_path / "rel.png", title="int8"))
    assert 400 <= w <= 1200 and 500 <= h <= 1200
    assert reliability_plot(evaluations[2], tmp_path / "old.png", title="old") is None
    broken = {**evaluations[1], "reliability": {"bins": 15, "count": [1, 2], "accuracy": [], "confidence": []}}
    assert reliability_plot(broken, tmp_path / "broken.png", title="x") is None  # malformed: skipped, no crash


def test_slices_plot_and_markdown(tmp_path, evaluations):
    w, h = png_size(slices_plot(evaluations, tmp_path / "slices.png", title="slices"))
    assert 500 <= w <= 3000 and 300 <= h <= 1000
    assert slices_plot(evaluations[2:], tmp_path / "none.png", title="t") is None

    q = evaluations[1]
    md = slices_markdown(evaluations, reference={"int8": "float32", "old_runtime": "float32"})
    assert "### float32" in md and "### int8" in md and "### old_runtime" in md
    assert "| attribute | value | n | accuracy | macro-F1 | gap to whole |" in md
    red = q["slices"]["attributes"]["colour"]["red"]
    assert f"| colour | red | 30 | {red['accuracy']:.4f} | {red['macro_f1']:.4f} | +0.1200 |" in md
    assert "| size | small | 3 | 0.1000 |" in md
    assert f"Worst slice: **colour = red** (n = 30, accuracy {red['accuracy']:.4f}), gap to the whole 0.1200" in md
    # int8's worst gap is 0.12, float32's 0.05 (blue): compression widened it by 0.07.
    assert "Against float32 (worst-slice gap 0.0500, on colour = blue), compression widened the gap by 0.0700." in md
    assert "No slices in this evaluation" in md.split("### old_runtime")[1]
    assert slices_markdown(evaluations, reference={"float32": "int8"}).count("narrowed the gap by 0.0700") == 1
    assert slices_markdown(evaluations[2:]) == ""


def test_corruption_plot(tmp_path, evaluations):
    w, h = png_size(corruption_plot(evaluations, tmp_path / "corruptions.png", title="robustness"))
    assert 600 <= w <= 2000 and 400 <= h <= 1200  # four panels: two rows of three
    # A variant with only some corruptions still gets its line; one without any is left out.
    partial = json.loads(json.dumps(evaluations[1]))
    partial["corruptions"]["accuracy"] = {"jpeg": partial["corruptions"]["accuracy"]["jpeg"]}
    assert png_size(corruption_plot([partial, evaluations[2]], tmp_path / "one.png", title="t"))[0] < w
    assert corruption_plot(evaluations[2:], tmp_path / "none.png", title="t") is None
