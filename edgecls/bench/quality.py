"""Figures and tables of a benchmark's quality measures, beyond top-1 (matplotlib Agg, via edgecls.bench.plots).

Every function takes ``evaluations``: one dict per variant, the runtime's
``evaluate()`` answer plus ``"variant"`` (its name). Any of the keys read here
may be absent (an older device runtime) or malformed; that variant is then left
out of the figure, and a function with nothing to draw returns None (plots) or
"" (markdown). Nothing here raises on a missing key.

* :func:`pr_curves_plot`: interpolated precision-recall curves, one axes per variant.
* :func:`reliability_plot`: the reliability diagram of one variant.
* :func:`slices_plot` / :func:`slices_markdown`: accuracy per slice (subgroup) of the test split.
* :func:`corruption_plot`: accuracy against corruption severity.

The PNGs are written atomically (``plots._save``); without matplotlib the
plotting functions raise ImportError, which the caller turns into a note.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgecls.bench.plots import _pyplot, _save


# --- reading evaluations defensively ----------------------------------------------------------------------

def number(value: Any) -> float | None:
    """``value`` as a finite float, else None (absent, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _name(evaluation: Mapping) -> str:
    return str(evaluation.get("variant", "?"))


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _floats(values: Any, n: int | None = None) -> list[float | None] | None:
    """A list of numbers (None kept for gaps) of length ``n`` when given; None when it is not one."""
    if not isinstance(values, (list, tuple)) or (n is not None and len(values) != n):
        return None
    return [number(v) for v in values]


def pr_curve_of(evaluation: Mapping) -> tuple[list[float], list[float], dict[str, list[float]]] | None:
    """(recall grid, macro precision, {class: precision}) of an evaluation, or None when it has no usable curve."""
    curve = _mapping(evaluation.get("pr_curve"))
    recall = _floats(curve.get("recall"))
    if not recall or None in recall:
        return None
    macro = _floats(curve.get("macro"), len(recall))
    if macro is None or None in macro:
        return None
    per_class = {}
    for name, values in _mapping(curve.get("precision")).items():
        values = _floats(values, len(recall))
        if values is not None and None not in values:
            per_class[str(name)] = values
    return recall, macro, per_class


def mean_average_precision(evaluation: Mapping) -> float | None:
    value = number(evaluation.get("mean_average_precision"))
    return value if value is not None else number(_mapping(evaluation.get("average_precision")).get("macro"))


def worst_slice(evaluation: Mapping) -> dict | None:
    """The evaluation's worst slice {attribute, value, n, accuracy, macro_f1, gap}, or None."""
    worst = _mapping(_mapping(evaluation.get("slices")).get("worst"))
    if number(worst.get("gap")) is None or number(worst.get("accuracy")) is None:
        return None
    return dict(worst)


def slice_rows(evaluation: Mapping) -> list[tuple[str, str, dict]]:
    """[(attribute, value, {n, accuracy, macro_f1})] of an evaluation's slices, in report order."""
    rows = []
    for attr, values in _mapping(_mapping(evaluation.get("slices")).get("attributes")).items():
        for value, stats in _mapping(values).items():
            if isinstance(stats, Mapping) and number(stats.get("accuracy")) is not None:
                rows.append((str(attr), str(value), dict(stats)))
    return rows


def corruption_curves(evaluation: Mapping) -> dict[str, dict[int, float]]:
    """{corruption: {severity: accuracy}} of an evaluation (severity keys are text in JSON; ints here)."""
    out: dict[str, dict[int, float]] = {}
    for name, by_severity in _mapping(_mapping(evaluation.get("corruptions")).get("accuracy")).items():
        points = {}
        for severity, acc in _mapping(by_severity).items():
            try:
                s = int(severity)
            except (TypeError, ValueError):
                continue
            if number(acc) is not None:
                points[s] = float(acc)
        if points:
            out[str(name)] = dict(sorted(points.items()))
    return out


def mean_corruption_accuracy(evaluation: Mapping) -> float | None:
    value = number(_mapping(evaluation.get("corruptions")).get("mean_accuracy"))
    return value if value is not None else number(evaluation.get("mean_corruption_accuracy"))


def _fmt(value: Any, spec: str = ".4f") -> str:
    value = number(value)
    return "-" if value is None else format(value, spec)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _colours(plt, n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _hide_spare(axes, used: int, xlabel: str, ylabel: str) -> None:
    """Hide the grid's unused axes; label x on each column's lowest used axes (with its ticks), y on the left."""
    rows, cols = axes.shape
    for i, ax in enumerate(axes.flat):
        if i >= used:
            ax.set_visible(False)
        elif i + cols >= used:  # nothing used below it
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)


def _finish(plt, fig, path: str | Path) -> Path:
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


# --- precision-recall --------------------------------------------------------------------------------------

def pr_curves_plot(evaluations: Sequence[Mapping], class_names: Sequence[str], path: str | Path, *,
                   title: str) -> Path | None:
    """Interpolated precision against recall: one axes per variant (small multiples, shared axes).

    Each class's curve (when the evaluation has them: the runtime sends them for
    K <= 20) is a thin line, the macro curve a bold black one; the legend gives
    each class's AP when K <= 10; each axes' title gives the variant's mAP.
    None when no evaluation has a curve.
    """
    panels = [(e, c) for e in evaluations if (c := pr_curve_of(e)) is not None]
    if not panels:
        return None
    plt = _pyplot()
    names = [str(n) for n in class_names]
    colours = dict(zip(names, _colours(plt, len(names))))
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (evaluation, (recall, macro, per_class)) in zip(axes.flat, panels):
        ap = _mapping(_mapping(evaluation.get("average_precision")).get("per_class"))
        order = [n for n in names if n in per_class] + [n for n in per_class if n not in names]
        for name in order:
            label = f"{name} (AP {_fmt(ap.get(name), '.3f')})" if len(names) <= 10 else None
            ax.plot(recall, per_class[name], linewidth=0.9, alpha=0.75, color=colours.get(name, "grey"), label=label)
        ax.plot(recall, macro, linewidth=2.4, color="black", label="macro")
        ax.set_title(f"{_name(evaluation)}: mAP {_fmt(mean_average_precision(evaluation), '.4f')}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower left")  # per-class entries only when K <= 10 (unlabelled lines skip)
    _hide_spare(axes, len(panels), "recall", "interpolated precision")
    fig.suptitle(title, fontsize=10)
    return _finish(plt, fig, path)


# --- calibration -------------------------------------------------------------------------------------------

def reliability_plot(evaluation: Mapping, path: str | Path, *, title: str) -> Path | None:
    """The reliability diagram of one variant; None when its evaluation has no (well-formed) reliability.

    Top: per confidence bin, a bar of the accuracy of the predictions in it, the
    diagonal (perfect calibration) and the gap to each bin's mean confidence
    shaded red. Bottom: how many predictions fall in each bin. ECE in the title.
    """
    rel = _mapping(evaluation.get("reliability"))
    try:
        bins = int(rel.get("bins"))
    except (TypeError, ValueError):
        return None
    count = _floats(rel.get("count"), bins) if bins > 0 else None
    acc = _floats(rel.get("accuracy"), bins) if bins > 0 else None
    conf = _floats(rel.get("confidence"), bins) if bins > 0 else None
    if count is None or acc is None or conf is None:
        return None
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.0), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    width = 1.0 / bins
    lefts = [i * width for i in range(bins)]
    full = [i for i in range(bins) if acc[i] is not None and conf[i] is not None and (count[i] or 0) > 0]
    top.bar([lefts[i] for i in full], [acc[i] for i in full], width=width, align="edge", color="tab:blue",
            edgecolor="black", linewidth=0.5, label="accuracy")
    top.bar([lefts[i] for i in full], [conf[i] - acc[i] for i in full], bottom=[acc[i] for i in full],
            width=width, align="edge", color="tab:red", alpha=0.45, edgecolor="darkred", hatch="//",
            linewidth=0.5, label="gap to confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(lefts, [c or 0 for c in count], width=width, align="edge", color="grey", edgecolor="black",
               linewidth=0.5)
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("predictions")
    ece = number(evaluation.get("ece"))
    top.set_title(f"{title}: ECE {_fmt(ece)}" if ece is not None else title, fontsize=10)
    return _finish(plt, fig, path)


# --- slices ------------------------------------------------------------------------------------------------

def slices_plot(evaluations: Sequence[Mapping], path: str | Path, *, title: str) -> Path | None:
    """Accuracy per slice, grouped by attribute, a bar per variant; None when no evaluation has slices.

    A dashed line in the variant's colour marks its accuracy on the whole test
    split; a red triangle above a bar marks the variant's worst slice.
    """
    panels = [(e, rows) for e in evaluations if (rows := slice_rows(e))]
    if not panels:
        return None
    plt = _pyplot()
    keys = list(dict.fromkeys((a, v) for _, rows in panels for a, v, _ in rows))
    attrs = list(dict.fromkeys(a for a, _ in keys))
    keys.sort(key=lambda k: attrs.index(k[0]))  # group by attribute (stable: values keep first-seen order)
    colours = _colours(plt, len(panels))
    width = 0.8 / len(panels)
    fig, ax = plt.subplots(figsize=(min(24.0, 3.0 + 0.35 * len(keys) * max(1.5, len(panels) * 0.7)), 4.8))
    for j, (evaluation, rows) in enumerate(panels):
        got = {(a, v): s for a, v, s in rows}
        xs = [i - 0.4 + width * (j + 0.5) for i, k in enumerate(keys) if k in got]
        ys = [float(got[k]["accuracy"]) for k in keys if k in got]
        ax.bar(xs, ys, width=width, color=colours[j], edgecolor="black", linewidth=0.4, label=_name(evaluation))
        overall = number(evaluation.get("accuracy"))
        if overall is not None:
            ax.axhline(overall, color=colours[j], linestyle="--", linewidth=1.2)
        worst = worst_slice(evaluation)
        if worst is not None and (str(worst.get("attribute")), str(worst.get("value"))) in got:
            i = keys.index((str(worst.get("attribute")), str(worst.get("value"))))
            ax.scatter([i - 0.4 + width * (j + 0.5)], [float(worst["accuracy"]) + 0.04], marker="v", s=60,
                       color="crimson", zorder=4)
    tilt = max(len(v) for _, v in keys) > 8
    ax.set_xticks(range(len(keys)), [v for _, v in keys], rotation=40 if tilt else 0, ha="right" if tilt else "center",
                  fontsize=8)
    # The attribute's name under its group of values, a thin line between groups.
    for attr in attrs:
        idx = [i for i, (a, _) in enumerate(keys) if a == attr]
        ax.annotate(attr, ((idx[0] + idx[-1]) / 2, 0), xycoords=("data", "axes fraction"),
                    xytext=(0, -60 if tilt else -22), textcoords="offset points", ha="center", va="top", fontsize=9,
                    fontweight="bold")
        if idx[0] > 0:
            ax.axvline(idx[0] - 0.5, color="grey", linewidth=0.8, alpha=0.6)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.grid(True, axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="grey", linestyle="--"),
                plt.Line2D([], [], color="crimson", marker="v", linestyle="")]
    labels += ["whole test split", "worst slice"]
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=10)
    return _finish(plt, fig, path)


def slices_markdown(evaluations: Sequence[Mapping], reference: Mapping[str, str] | None = None) -> str:
    """Markdown: per variant, its slices' table, its worst slice and, against its float reference, the gap change.

    ``reference`` maps a variant's name to its float reference's name (see
    :func:`edgecls.bench.drift.reference_for`). "gap to whole" is the accuracy on
    the whole test split minus the slice's (positive: the slice does worse).
    "" when no evaluation has slices, so a caller can skip the file.
    """
    if not any(slice_rows(e) for e in evaluations):
        return ""
    by_name = {_name(e): e for e in evaluations}
    lines = ["Accuracy and macro-F1 per slice (subgroup) of the test split; *gap to whole* is the accuracy on "
             "the whole split minus the slice's.", ""]
    for evaluation in evaluations:
        name = _name(evaluation)
        lines += [f"### {name}", ""]
        rows = slice_rows(evaluation)
        if not rows:
            lines += ["No slices in this evaluation (the test split has no attributes, or the runtime that "
                      "evaluated it predates slices).", ""]
            continue
        overall = number(evaluation.get("accuracy"))
        lines += ["| attribute | value | n | accuracy | macro-F1 | gap to whole |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for attr, value, stats in rows:
            acc = number(stats.get("accuracy"))
            gap = overall - acc if overall is not None and acc is not None else None
            n = number(stats.get("n"))
            lines.append(f"| {_cell(attr)} | {_cell(value)} | {'-' if n is None else int(n)} | {_fmt(acc)} | "
                         f"{_fmt(stats.get('macro_f1'))} | {_fmt(gap, '+.4f')} |")
        lines.append("")
        worst = worst_slice(evaluation)
        if worst is None:
            lines += ["No worst slice: no slice is large enough to count.", ""]
            continue
        lines.append(f"Worst slice: **{_cell(worst.get('attribute'))} = {_cell(worst.get('value'))}** "
                     f"(n = {worst.get('n')}, accuracy {_fmt(worst.get('accuracy'))}), "
                     f"gap to the whole {_fmt(worst.get('gap'))} (accuracy {_fmt(overall)}).")
        ref_name = (reference or {}).get(name)
        ref_worst = worst_slice(by_name[ref_name]) if ref_name in by_name else None
        if ref_worst is not None:
            change = float(worst["gap"]) - float(ref_worst["gap"])
            verb = ("widened the gap by" if change > 0 else "narrowed the gap by" if change < 0
                    else "left the gap unchanged")
            amount = f" {abs(change):.4f}" if change else ""
            lines.append(f"Against {ref_name} (worst-slice gap {_fmt(ref_worst['gap'])}, on "
                         f"{_cell(ref_worst.get('attribute'))} = {_cell(ref_worst.get('value'))}), "
                         f"compression {verb}{amount}.")
        elif ref_name:
            lines.append(f"No worst slice of its reference {ref_name} to compare with.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- robustness --------------------------------------------------------------------------------------------

def corruption_plot(evaluations: Sequence[Mapping], path: str | Path, *, title: str) -> Path | None:
    """Accuracy against severity: one panel per corruption, a line per variant, clean accuracy at severity 0.

    None when no evaluation has corruption results.
    """
    panels = [(e, c) for e in evaluations if (c := corruption_curves(e))]
    if not panels:
        return None
    plt = _pyplot()
    names = list(dict.fromkeys(n for _, curves in panels for n in curves))
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.2 * rows), sharey=True, squeeze=False)
    colours = _colours(plt, len(panels))
    severities = sorted({s for _, curves in panels for c in curves.values() for s in c})
    for ax, corruption in zip(axes.flat, names):
        for j, (evaluation, curves) in enumerate(panels):
            points = dict(curves.get(corruption, {}))
            if not points:
                continue
            clean = number(evaluation.get("accuracy"))
            if clean is not None:
                points[0] = clean
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker=("o", "s", "^", "D", "v", "P")[j % 6], markersize=4,
                    color=colours[j], label=_name(evaluation))
        ax.set_title(corruption.replace("_", " "), fontsize=9)
        ax.set_xticks([0, *severities], ["clean", *map(str, severities)], fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    _hide_spare(axes, len(names), "severity", "accuracy")
    handles = [plt.Line2D([], [], marker=("o", "s", "^", "D", "v", "P")[j % 6], markersize=4, color=colours[j])
               for j in range(len(panels))]
    fig.legend(handles, [_name(e) for e, _ in panels], fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 1.0), ncol=min(4, len(panels)))
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _finish(plt, fig, path)
