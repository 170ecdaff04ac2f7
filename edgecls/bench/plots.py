"""Plots of a benchmark (matplotlib with the Agg backend, imported only here, only when plotting).

* :func:`pareto_plot`: accuracy against p50 latency, one point per row; point
  area proportional to the model's size; the Pareto front drawn as a step
  line through its points and circled.
* :func:`confusion_plot`: the confusion matrix of one variant (rows: true
  class, columns: predicted), coloured by recall share, with counts.

Both write PNG bytes atomically. Without matplotlib they raise ImportError,
which the caller turns into a note in the report (``pip install edgecls[plot]``).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from edgecls import fileio
from edgecls.bench.latency import plot_latency
from edgecls.bench.report import is_ok, pareto_front

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return fileio.write_bytes(path, buf.getvalue())


def pareto_plot(rows: Sequence[dict], path: str | Path, *, title: str, group: str = "variant",
                label: Sequence[str] = ("variant", "threads")) -> Path | None:
    """Accuracy (y) against p50 latency (x, log scale when it spans 10x); None when no row is complete.

    ``group``: the row key that picks a point's colour (variant; device when comparing devices);
    ``label``: the keys written beside each point.
    """
    pts = [r for r in rows if is_ok(r) and r.get("accuracy") is not None and plot_latency(r) is not None]
    if not pts:
        return None
    plt = _pyplot()
    front = pareto_front(pts)
    groups = list(dict.fromkeys(str(r.get(group)) for r in pts))
    threads = sorted({int(r.get("threads") or 0) for r in pts})
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    biggest = max((r.get("size_bytes") or 0) for r in pts) or 1
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    def area(r: dict) -> float:
        return 40 + 760 * (r.get("size_bytes") or 0) / biggest  # proportional to size, above a visible minimum

    for r in pts:
        x, y = plot_latency(r), r["accuracy"]
        ax.scatter([x], [y], s=area(r), color=colours(groups.index(str(r.get(group))) % colours.N), alpha=0.7,
                   marker=MARKERS[threads.index(int(r.get("threads") or 0)) % len(MARKERS)], edgecolors="black",
                   linewidths=0.5, zorder=3)
        text = " ".join(f"{r.get(k)}t" if k == "threads" else str(r.get(k)) for k in label if r.get(k) is not None)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7, zorder=4)
    fx = [plot_latency(r) for r in front]
    fy = [r["accuracy"] for r in front]
    ax.step(fx, fy, where="post", color="crimson", linewidth=1.5, zorder=2, label="Pareto front")
    ax.scatter(fx, fy, s=[area(r) * 1.8 + 120 for r in front], facecolors="none", edgecolors="crimson",
               linewidths=1.5, zorder=5)
    xs = [plot_latency(r) for r in pts]
    if min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours(i % colours.N), label=g)
               for i, g in enumerate(groups)]
    handles += [plt.Line2D([], [], marker=MARKERS[i % len(MARKERS)], linestyle="", color="grey",
                           label=f"{t} thread{'s' if t != 1 else ''}") for i, t in enumerate(threads)]
    handles += [plt.Line2D([], [], color="crimson", label="Pareto front")]
    # Many groups make a tall legend that would cover points: put it beside the axes then.
    where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if len(groups) > 6 else {"loc": "best"}
    ax.legend(handles=handles, fontsize=8, title=f"{group}; point area ~ model size", title_fontsize=8, **where)
    uses_mean = any((r.get("latency_ms") or {}).get("p50") is None for r in pts)
    ax.set_xlabel("latency per image, ms (p50" + ("; mean where no p50" if uses_mean else "") + ")")
    ax.set_ylabel("accuracy on the test split")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.08, y=0.12)  # room for the largest points and their labels
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def confusion_plot(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, *,
                   title: str) -> Path:
    import numpy as np

    plt = _pyplot()
    cm = np.asarray(matrix, dtype=np.int64)
    k = cm.shape[0]
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(12.0, 2.5 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7 if k > 12 else 9,
                            color="white" if share[i, j] > 0.5 else "black")
    names = [str(n) for n in class_names]
    if k <= 50:
        ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 3 else 0, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
