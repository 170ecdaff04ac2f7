"""The model zoo on one task. Run: ``.venv/bin/python benchmarks/models.py`` (about 40 min on 2 cores).

For one edge-sized configuration per family (and a few more), on the
procedural ``shapes`` data at 64 px after one fixed short schedule:
parameters, MACs, float test accuracy, full-int8 test accuracy (LiteRT
interpreter) and int8 latency on this CPU. Prints a Markdown table.

Each model is a recipe (:func:`recipe`) put through the public API, as a user
would: ``edgecls.train`` into ``--out/<model>/``, ``edgecls.export`` (float32
and full int8, int8 in and out), ``edgecls.bench`` on the ``local`` device. So
the table measures edgecls's trainer, converter and runtime, not a copy.

Same data, split, schedule and seeds for every model, so the rows compare
the architectures, not the tuning; the schedule is short, so no net is
trained to convergence (the table says how far each gets). The shapes are
hard on purpose, and what separates the nets is how many steps they get:
with 1,800 images (540 steps) the MobileNets, EfficientNets and ViT are all
still at chance (1/6) while Inception and ResNet-18 pass 0.8; with the
default 4,800 images (1,440 steps) MobileNetV2 x0.35 reaches ~0.55.
``--only`` runs a subset.

A run directory whose stages are current is reused (edgecls skips current
work: a model is trained again only when its recipe changed); delete --out to
train from scratch.

Options: --only NAME[,NAME]  --epochs 12  --count 4800  --threads 1  --runs 100  --out runs/bench-models
--json runs/bench-models/models.json  --png runs/bench-models/models.png
--resume (keep the rows already in --json made with the same schedule; the file is rewritten after every model).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgecls  # noqa: E402 - after the path, so the checkout's edgecls is measured
from edgecls.errors import first_line  # noqa: E402
from edgecls.progress import bar  # noqa: E402

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring")
SIZE = 64

# One edge-sized configuration per family at 64 px (label, model, options), plus the recipes' MobileNetV2.
CONFIGS = [
    ("lenet5", "lenet5", {}),
    ("small_cnn", "small_cnn", {}),
    ("alexnet x0.5", "alexnet", {"width": 0.5, "fc_units": 256, "stem_stride": 2}),
    ("vgg_small x0.5", "vgg_small", {"width": 0.5}),
    ("inception_small", "inception_small", {}),
    ("resnet8", "resnet8", {}),
    ("resnet18 x0.25", "resnet18", {"width": 0.25, "stem_stride": 2}),
    ("resnet18_v2 x0.25", "resnet18_v2", {"width": 0.25, "stem_stride": 2}),
    ("densenet_small", "densenet_small", {}),
    ("mobilenet_v1 x0.25", "mobilenet_v1", {"width": 0.25}),
    ("mobilenet_v2 x0.35", "mobilenet_v2", {"width": 0.35}),
    ("mobilenet_v3_small x0.5", "mobilenet_v3_small", {"width": 0.5}),
    ("efficientnet_lite0 x0.5", "efficientnet_lite0", {"width": 0.5, "depth": 0.5}),
    ("efficientnet_b0 x0.5", "efficientnet_b0", {"width": 0.5, "depth": 0.5}),
    ("vit_tiny x0.5 d4 p8", "vit_tiny", {"width": 0.5, "depth": 4, "patch_size": 8}),
]


def run_name(label: str) -> str:
    """A label as a run directory (and recipe) name: 'resnet18 x0.25' -> 'resnet18_x0.25'."""
    return label.replace(" ", "_")


def recipe(label: str, name: str, options: dict, *, epochs: int, count: int) -> "edgecls.Recipe":
    """The fixed schedule: Adam 2e-3 with cosine decay, batch 32, horizontal flips, label smoothing 0.1;
    shapes at 64 px split 80/20 (no validation: the short schedule has no early stopping to feed)."""
    return edgecls.Recipe.from_dict({
        "name": run_name(label),
        "description": f"{label} on shapes {SIZE} px, benchmarks/models.py",
        "seed": 0,
        "data": {"source": "shapes",
                 "options": {"image_size": SIZE, "classes": list(CLASSES), "count": count, "seed": 0},
                 "image_size": SIZE, "channels": 3, "normalize": {"mean": [0.5] * 3, "std": [0.5] * 3},
                 "splits": {"validation": 0.0, "test": 0.2}, "augment": {"flip": "horizontal"}},
        "model": {"name": name, "options": dict(options)},
        "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 2e-3},
                  "schedule": {"name": "cosine"}, "label_smoothing": 0.1},
        "export": [{"name": "float32", "mode": "float32"},
                   {"name": "int8", "mode": "int8", "input_type": "int8", "output_type": "int8"}],
    })


def train_options(run: "edgecls.Run", rec: "edgecls.Recipe") -> dict:
    """Reuse the run's training when it was made from this very recipe (resume: a finished run is kept,
    an interrupted one continues); otherwise train it again (force)."""
    if not run.recipe.is_file():
        return {}
    try:
        same = edgecls.Recipe.load(run.recipe) == rec
    except edgecls.EdgeclsError:  # a damaged recipe.yaml: start over
        same = False
    return {"resume": True} if same else {"force": True}


def measure(label: str, name: str, options: dict, out: Path, *, epochs: int, count: int, threads: int,
            runs: int) -> dict:
    """One model through train -> export -> bench (each skips what is current); the table row's figures."""
    from edgecls.models.macs import model_macs

    rec = recipe(label, name, options, epochs=epochs, count=count)
    run = edgecls.Run(out / rec.name)
    trained = edgecls.train(rec, run, **train_options(run, rec))
    edgecls.export(run)
    report = edgecls.bench(run, "local", threads=[threads], runs=runs, plots=False)
    rows = {r["variant"]: r for r in report["rows"]}
    failed = [f"{v}: {r['status']}" for v, r in rows.items() if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"bench rows failed: {'; '.join(failed)}")
    int8, f32 = rows["int8"], rows["float32"]
    arch = edgecls.create_model(name, len(CLASSES), (SIZE, SIZE, 3), **options)  # params and MACs only
    return {"params": int(arch.count_params()), "macs": model_macs(arch), "float_acc": trained.accuracy,
            "int8_acc": int8["accuracy"], "int8_ms": latency(int8), "int8_kb": int8["size_bytes"] / 1024,
            "float32_acc": f32["accuracy"], "float32_ms": latency(f32), "train_s": trained.train_seconds,
            "run": str(run.root), "bench_row": int8}


def latency(row: dict) -> float:
    """A bench row's p50 (the figure its plot uses)."""
    from edgecls.bench.latency import plot_latency

    return plot_latency(row)


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    """int8 accuracy against int8 latency, point area ~ file size, the Pareto front circled: each model's
    int8 bench row, named by the model."""
    from edgecls.bench.plots import pareto_plot

    pts = [{**r["bench_row"], "variant": r["model"]} for r in rows if "error" not in r]
    return pareto_plot(pts, path, title=title, label=("variant",))


def table(rows: list[dict]) -> str:
    lines = ["| model | params | MACs | float acc | int8 acc | int8 ms | int8 KB | train s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['params']:,} | {r['macs'] / 1e6:.1f}M | {r['float_acc']:.3f} "
                     f"| {r['int8_acc']:.3f} | {r['int8_ms']:.2f} | {r['int8_kb']:.0f} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated labels or model names of CONFIGS to run")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--count", type=int, default=4800, help="images generated (80%% train, 20%% test)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads for the latency")
    parser.add_argument("--runs", type=int, default=100, help="timed runs for the latency (median reported)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-models"),
                        help="a run directory per model goes here (default runs/bench-models)")
    parser.add_argument("--json", type=Path, default=Path("runs/bench-models/models.json"),
                        help="rows, rewritten after every model (default runs/bench-models/models.json)")
    parser.add_argument("--png", type=Path, default=Path("runs/bench-models/models.png"),
                        help="int8 accuracy against latency")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows in --json made with the same schedule and run only the others")
    args = parser.parse_args(argv)

    from edgecls import fileio

    wanted = set(args.only.split(",")) if args.only else None
    configs = [c for c in CONFIGS if wanted is None or c[0] in wanted or c[1] in wanted]
    schedule = {"epochs": args.epochs, "count": args.count, "threads": args.threads, "runs": args.runs}
    kept = {}
    if args.resume and args.json.exists():
        kept = {r["model"]: r for r in json.loads(args.json.read_text()).get("rows", [])
                if r.get("schedule") == schedule and "bench_row" in r}  # measured, by this version
    title = (f"shapes {SIZE}px, {len(CLASSES)} classes, {args.count} images split 80/20 train/test, "
             f"{args.epochs} epochs, int8 latency: median of {args.runs} runs, {args.threads} thread(s)")
    print(title, flush=True)
    rows = []
    # One bar over the models (on a TTY); each model's lines go through it, so they are not drawn over the bar.
    with bar(total=len(configs), desc="models", unit="model") as progress:
        for i, (label, name, options) in enumerate(configs, 1):
            if label in kept:
                rows.append(kept[label])
                progress.write(f"  [{i}/{len(configs)}] {label}: kept from {args.json}", file=sys.stderr)
                progress.update(1)
                continue
            progress.set_postfix_str(label)
            progress.write(f"  [{i}/{len(configs)}] {label}: train, export, bench in {args.out / run_name(label)}",
                           file=sys.stderr)
            t0 = time.perf_counter()
            try:
                row = measure(label, name, options, args.out, epochs=args.epochs, count=args.count,
                              threads=args.threads, runs=args.runs)
                said = f"float {row['float_acc']:.3f}, int8 {row['int8_acc']:.3f} at {row['int8_ms']:.2f} ms"
            except Exception as exc:  # one net failing must not cost the others their rows
                row = {"error": f"{type(exc).__name__}: {first_line(exc)}"[:160]}
                said = "FAILED " + row["error"]
            rows.append({"model": label, "name": name, "options": options, "schedule": schedule, **row})
            fileio.write_json(args.json, {"title": title, "rows": rows})  # a crash keeps these
            progress.write(f"  [{i}/{len(configs)}] {label}: {said} ({time.perf_counter() - t0:.0f} s)",
                           file=sys.stderr)
            progress.update(1)
    print()
    print(table(rows))
    try:
        if plot(rows, args.png, title):
            print(f"\nplot: {args.png}")
    except ImportError:
        print("\nno plot: matplotlib is not installed (pip install edgecls[plot])")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
