"""Drift across compression: what each exported variant lost or gained against the float model it came from.

* :func:`reference_for`: the float32 variant a variant is compared with.
* :func:`drift_report`: the changes (variant minus reference) in accuracy, per-class
  accuracy, mAP, ECE, worst-slice gap, mean corruption accuracy, plus the
  explanation agreement; JSON-able (``bench/<device>/drift.json``).
* :func:`explanation_agreement`: occlusion maps of each variant against its reference's,
  TensorFlow-free (runtime classifiers), on the host.
* :func:`drift_markdown` (drift.md), :func:`drift_summary` (terminal lines), :func:`drift_plot` (PNG).

Evaluations are the runtime's ``evaluate()`` answers plus ``"variant"``; any key
may be absent (an older device runtime): the change is then None, never an error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgecls.bench.quality import (_cell, _colours, _finish, _mapping, _pyplot, mean_average_precision,
                                   mean_corruption_accuracy, number, worst_slice)
from edgecls.errors import UsageError

DIGITS = 6  # changes are rounded so drift.json reads 0.03, not 0.030000000000000027

# (key in a comparison, column head in drift.md, label in the terminal summary); in that order everywhere.
HEADLINES = (("accuracy_change", "Δaccuracy", "accuracy"),
             ("map_change", "ΔmAP", "mAP"),
             ("ece_change", "ΔECE", "ECE"),
             ("worst_slice_gap_change", "Δworst-slice gap", "worst-slice gap"),
             ("corruption_accuracy_change", "Δcorruption acc", "corruption accuracy"))


def reference_for(variant: Mapping, variants: Sequence[Mapping]) -> str | None:
    """The name of the float model ``variant`` came from, among export.json's ``variants``.

    The first float32 variant with the same ``source``; failing that, the first
    float32 variant whose source is ``train``. None for a float32 variant (it is
    a reference) and when no float32 variant fits.
    """
    if variant.get("mode") == "float32":
        return None
    floats = [v for v in variants if v.get("mode") == "float32" and v.get("name") != variant.get("name")]
    for wanted in (variant.get("source"), "train"):
        for v in floats:
            if v.get("source") == wanted:
                return str(v.get("name"))
    return None


def _change(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, DIGITS)


def _recalls(evaluation: Mapping) -> dict[str, float]:
    out = {}
    for name, stats in _mapping(evaluation.get("per_class")).items():
        recall = number(_mapping(stats).get("recall"))
        if recall is not None:
            out[str(name)] = recall
    return out


def _gap(evaluation: Mapping) -> float | None:
    worst = worst_slice(evaluation)
    if worst is not None:
        return float(worst["gap"])
    return number(evaluation.get("worst_slice_gap")) if evaluation.get("slices") is not None else None


def compare(evaluation: Mapping, reference: Mapping, agreement: Mapping | None = None) -> dict:
    """One comparison: ``evaluation`` (a variant) against ``reference`` (its float model); see drift_report."""
    values = {
        "accuracy": (number(evaluation.get("accuracy")), number(reference.get("accuracy"))),
        "mean_average_precision": (mean_average_precision(evaluation), mean_average_precision(reference)),
        "ece": (number(evaluation.get("ece")), number(reference.get("ece"))),
        "worst_slice_gap": (_gap(evaluation), _gap(reference)),
        "mean_corruption_accuracy": (mean_corruption_accuracy(evaluation), mean_corruption_accuracy(reference)),
    }
    mine, theirs = _recalls(evaluation), _recalls(reference)
    per_class = {name: _change(mine[name], theirs[name]) for name in theirs if name in mine}
    drop = min(per_class.items(), key=lambda kv: kv[1]) if per_class else None  # first class on ties
    agreement = _mapping(agreement)
    rho, iou = number(agreement.get("rank_correlation")), number(agreement.get("top20_iou"))
    return {
        "variant": str(evaluation.get("variant")),
        "reference": str(reference.get("variant")),
        "accuracy_change": _change(*values["accuracy"]),
        "map_change": _change(*values["mean_average_precision"]),
        "ece_change": _change(*values["ece"]),
        "worst_slice_gap_change": _change(*values["worst_slice_gap"]),
        "corruption_accuracy_change": _change(*values["mean_corruption_accuracy"]),
        "per_class_accuracy_change": per_class or None,
        "largest_class_drop": {"class": drop[0], "change": drop[1]} if drop is not None else None,
        "explanation_agreement": ({"rank_correlation": rho, "top20_iou": iou,
                                   "images": int(number(agreement.get("images")) or 0)}
                                  if rho is not None or iou is not None else None),
        "values": {key: {"variant": a, "reference": b} for key, (a, b) in values.items()},
    }


def drift_report(evaluations: Sequence[Mapping], variants: Sequence[Mapping], *,
                 agreement: Mapping[str, Mapping] | None = None) -> dict:
    """Each non-reference variant against its float reference (changes are variant minus reference).

    ``evaluations``: one per evaluated variant (with ``"variant"``); ``variants``:
    export.json's variant entries (name, source, mode), whose order the answer
    keeps; ``agreement``: :func:`explanation_agreement`'s answer, when computed.
    Answer (JSON-able)::

        {"comparisons": [{"variant", "reference", "accuracy_change", "map_change", "ece_change",
                          "worst_slice_gap_change", "corruption_accuracy_change",
                          "per_class_accuracy_change": {class: change} | None,
                          "largest_class_drop": {"class", "change"} | None,
                          "explanation_agreement": {"rank_correlation", "top20_iou", "images"} | None,
                          "values": {metric: {"variant", "reference"}}}],
         "references": [float32 variant names],
         "unmatched": {variant: why it has no comparison}}

    A change is None when either side lacks the measure (e.g. slices or
    corruptions not evaluated, or an older runtime's answer).
    """
    by_name = {str(e.get("variant")): e for e in evaluations if isinstance(e, Mapping)}
    out: dict[str, Any] = {"comparisons": [], "references": [], "unmatched": {}}
    for variant in variants:
        name = str(variant.get("name"))
        if name not in by_name:
            continue
        if variant.get("mode") == "float32":
            out["references"].append(name)
            continue
        ref = reference_for(variant, variants)
        if ref is None:
            out["unmatched"][name] = "no float32 variant to compare with (export one with mode: float32)"
        elif ref not in by_name:
            out["unmatched"][name] = f"its reference {ref} has no evaluation"
        else:
            out["comparisons"].append(compare(by_name[name], by_name[ref], (agreement or {}).get(name)))
    return out


# --- explanation agreement ---------------------------------------------------------------------------------

def explanation_agreement(models: Mapping[str, str | os.PathLike], pairs: Mapping[str, str], pixels: np.ndarray,
                          *, images: int = 8, classifier_options: Mapping[str, Any] | None = None,
                          **occlusion: Any) -> dict[str, dict]:
    """How far each variant's occlusion maps agree with its reference's, on the first ``images`` test images.

    ``models``: variant name -> .tflite path; ``pairs``: variant -> reference
    (both in ``models``); ``pixels``: uint8 (N, H, W, C) at the models' input
    size (export/test.npz's images). Each map explains the reference's
    predicted class, so both maps answer the same question. Every model's maps
    are computed once, however many pairs it is in. ``classifier_options`` go
    to ``Classifier.from_file`` (labels, mean, std where the file has no
    metadata); ``occlusion`` (patch, stride, batch) to ``occlusion_map``.

    Answer: {variant: {"reference", "rank_correlation" (mean Spearman rho),
    "top20_iou" (mean IoU of the top-20 % regions), "images"}}.
    """
    from edgecls import metrics
    from edgecls.runtime.classifier import Classifier
    from edgecls.runtime.errors import ImageError
    from edgecls.runtime.explain import occlusion_map

    for variant, ref in pairs.items():
        for name in (variant, ref):
            if name not in models:
                raise UsageError(f"explanation agreement: no model file for '{name}' "
                                 f"(models given: {', '.join(sorted(models)) or 'none'})")
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.dtype != np.uint8 or len(pixels) == 0:
        raise ImageError(f"explanation agreement: the images must be uint8 (N, H, W, C) with N >= 1; got "
                         f"{pixels.dtype} {tuple(pixels.shape)}")
    pixels = pixels[:max(1, int(images))]
    classifiers: dict[str, Any] = {}

    def classifier(name: str):
        if name not in classifiers:
            classifiers[name] = Classifier.from_file(models[name], require_labels=False,
                                                     **dict(classifier_options or {}))
        return classifiers[name]

    maps: dict[tuple[str, int, int], np.ndarray] = {}

    def heatmap(name: str, i: int, target: int) -> np.ndarray:
        if (name, i, target) not in maps:
            clf = classifier(name)
            maps[(name, i, target)] = np.asarray(
                occlusion_map(clf.predict_pixels, pixels[i], target=target, **occlusion).heatmap)
        return maps[(name, i, target)]

    try:
        targets = {ref: [int(t) for t in classifier(ref).predict_pixels(pixels).argmax(axis=1)]
                   for ref in dict.fromkeys(pairs.values())}
        out = {}
        for variant, ref in pairs.items():
            rhos, ious = [], []
            for i, target in enumerate(targets[ref]):
                a, b = heatmap(variant, i, target), heatmap(ref, i, target)
                rhos.append(metrics.rank_correlation(a, b))
                ious.append(metrics.top_region_iou(a, b))
            out[variant] = {"reference": ref, "rank_correlation": round(float(np.mean(rhos)), 4),
                            "top20_iou": round(float(np.mean(ious)), 4), "images": len(rhos)}
        return out
    finally:
        for clf in classifiers.values():
            clf.close()


# --- text and figure ---------------------------------------------------------------------------------------

def _signed(value: Any) -> str:
    value = number(value)
    return "-" if value is None else f"{value:+.4f}"


def _agreement_text(agreement: Any) -> str:
    agreement = _mapping(agreement)
    rho, iou = number(agreement.get("rank_correlation")), number(agreement.get("top20_iou"))
    if rho is None and iou is None:
        return "-"
    return (f"ρ {'-' if rho is None else f'{rho:.2f}'}, IoU {'-' if iou is None else f'{iou:.2f}'}"
            f" ({agreement.get('images')} images)")


def _drop_text(drop: Any) -> str:
    drop = _mapping(drop)
    return "-" if number(drop.get("change")) is None else f"{drop.get('class')} ({drop['change']:+.4f})"


def drift_markdown(drift: Mapping, class_names: Sequence[str]) -> str:
    """drift.md's body: the headline table, then the change of accuracy per class (when K <= 30)."""
    comparisons = list(drift.get("comparisons") or [])
    lines = ["What compression changed besides top-1: each variant minus the float32 model it came from "
             "(ECE and worst-slice gap: lower is better; explanation agreement: of occlusion maps, Spearman ρ "
             "and IoU of the top-20 % regions).", ""]
    if comparisons:
        heads = ["variant", "reference", *(head for _, head, _ in HEADLINES), "explanation agreement (ρ, IoU)",
                 "largest per-class drop (class, Δ)"]
        lines += ["| " + " | ".join(heads) + " |",
                  "| --- | --- | " + " | ".join("---:" for _ in HEADLINES) + " | --- | --- |"]
        for c in comparisons:
            cells = [c.get("variant"), c.get("reference"), *(_signed(c.get(key)) for key, _, _ in HEADLINES),
                     _agreement_text(c.get("explanation_agreement")), _drop_text(c.get("largest_class_drop"))]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
        names = [str(n) for n in class_names]
        with_classes = [c for c in comparisons if c.get("per_class_accuracy_change")]
        if with_classes and len(names) <= 30:
            lines += ["Change of accuracy (recall) per class:", "",
                      "| class | " + " | ".join(_cell(c["variant"]) for c in with_classes) + " |",
                      "| --- | " + " | ".join("---:" for _ in with_classes) + " |"]
            for name in names:
                lines.append(f"| {_cell(name)} | " + " | ".join(_signed(c["per_class_accuracy_change"].get(name))
                                                               for c in with_classes) + " |")
            lines.append("")
    else:
        lines += ["No variant to compare: drift needs a float32 variant and at least one other variant "
                  "evaluated.", ""]
    for name, why in (drift.get("unmatched") or {}).items():
        lines.append(f"- {name}: not compared: {why}")
    return "\n".join(lines).rstrip() + "\n"


def drift_summary(drift: Mapping) -> list[str]:
    """A few terminal lines: per variant, its headline changes against its reference (absent ones left out)."""
    lines = []
    for c in drift.get("comparisons") or []:
        parts = [f"{label} {_signed(c.get(key))}" for key, _, label in HEADLINES if number(c.get(key)) is not None]
        if c.get("explanation_agreement"):
            parts.append(f"explanations {_agreement_text(c['explanation_agreement'])}")
        if c.get("largest_class_drop"):
            parts.append(f"largest class drop {_drop_text(c['largest_class_drop'])}")
        lines.append(f"{c.get('variant')} vs {c.get('reference')}: " + (", ".join(parts) or "no shared measure"))
    for name, why in (drift.get("unmatched") or {}).items():
        lines.append(f"{name}: not compared: {why}")
    return lines


def drift_plot(drift: Mapping, path: str | Path, *, title: str) -> Path | None:
    """Grouped bars: per headline change (and the largest per-class drop), a bar per variant; None when empty."""
    comparisons = list(drift.get("comparisons") or [])
    metrics = [(key, head) for key, head, _ in HEADLINES
               if any(number(c.get(key)) is not None for c in comparisons)]
    if any(c.get("largest_class_drop") for c in comparisons):
        metrics.append(("largest_class_drop", "largest class drop"))
    if not comparisons or not metrics:
        return None
    plt = _pyplot()
    colours = _colours(plt, len(comparisons))
    width = 0.8 / len(comparisons)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(metrics) + 0.4 * len(comparisons)), 4.2))
    for j, c in enumerate(comparisons):
        xs, ys = [], []
        for i, (key, _) in enumerate(metrics):
            value = number(_mapping(c.get(key)).get("change")) if key == "largest_class_drop" else number(c.get(key))
            if value is not None:
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(value)
        ax.bar(xs, ys, width=width, color=colours[j], edgecolor="black", linewidth=0.4,
               label=f"{c.get('variant')} vs {c.get('reference')}")
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:+.3f}", (x, y), textcoords="offset points", xytext=(0, 3 if y >= 0 else -9),
                        ha="center", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(metrics)), [head for _, head in metrics], fontsize=8)
    ax.set_ylabel("variant minus reference")
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(y=0.2)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{title}\n(accuracy, mAP, corruption accuracy: higher is better; ECE, gap: lower is better)",
                 fontsize=9)
    return _finish(plt, fig, path)
