"""The model zoo on one task. Run: ``.venv/bin/python benchmarks/models.py`` (about 40 min on 2 cores).

For one edge-sized configuration per family (and a few more), on the
procedural ``shapes`` data at 64 px after one fixed short schedule:
parameters, MACs, float test accuracy, full-int8 test accuracy (LiteRT
interpreter) and int8 latency on this CPU. Prints a Markdown table.

Same data, split, schedule and seeds for every model, so the rows compare
the architectures, not the tuning; the schedule is short, so no net is
trained to convergence (the table says how far each gets). The shapes are
hard on purpose, and what separates the nets is how many steps they get:
with 1,800 images (540 steps) the MobileNets, EfficientNets and ViT are all
still at chance (1/6) while Inception and ResNet-18 pass 0.8; with the
default 4,800 images (1,440 steps) MobileNetV2 x0.35 reaches ~0.55.
``--only`` runs a subset.

Options: --only NAME[,NAME]  --epochs 12  --count 4800  --threads 1  --runs 100  --json runs/bench-models/models.json
--png runs/bench-models/models.png  --resume (keep the rows already in --json; the file is rewritten after every model).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgecls.errors import first_line

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def load_data(count: int) -> dict:
    """Shapes at 64 px, split 80/20 by a fixed permutation, normalized to [-1, 1] as the shapes recipe does."""
    from edgecls.data.shapes import generate_shapes

    images, labels = generate_shapes(image_size=SIZE, classes=CLASSES, count=count, seed=0)
    order = np.random.default_rng(0).permutation(count)
    cut = int(0.8 * count)
    x = (images.astype(np.float32) / 255.0 - 0.5) / 0.5
    return {"x_train": x[order[:cut]], "y_train": labels[order[:cut]],
            "x_test": x[order[cut:]], "y_test": labels[order[cut:]]}


def train(name: str, options: dict, data: dict, *, epochs: int) -> tuple:
    """The fixed schedule: Adam 2e-3 with cosine decay, batch 32, flips, label smoothing 0.1."""
    from edgecls._tf import keras, tf
    from edgecls.models import create

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = create(name, len(CLASSES), (SIZE, SIZE, 3), **options)
    steps = epochs * int(np.ceil(len(data["y_train"]) / 32))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    ds = (tf.data.Dataset.from_tensor_slices((data["x_train"], tf.one_hot(data["y_train"], len(CLASSES))))
          .shuffle(4096, seed=0).batch(32)
          .map(lambda x, y: (tf.image.random_flip_left_right(x, seed=0), y)).prefetch(2))
    t0 = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    train_s = time.perf_counter() - t0
    probs = model.predict(data["x_test"], batch_size=64, verbose=0)
    return model, float(np.mean(probs.argmax(1) == data["y_test"])), train_s


def int8_metrics(model, data: dict, *, threads: int, runs: int) -> tuple:
    """Full-int8 conversion (int8 in and out), test accuracy in the interpreter, and latency of one image."""
    from edgecls.export.convert import convert
    from edgecls.runtime.runner import Runner
    from edgecls.runtime.timing import time_calls

    n = len(data["x_train"])
    rep = data["x_train"][np.random.default_rng(1).choice(n, min(200, n), replace=False)]
    blob = convert(model, "int8", representative=rep, input_type="int8", output_type="int8")
    runner = Runner(blob, num_threads=threads)
    correct = 0
    for x, y in zip(data["x_test"], data["y_test"]):
        correct += int(runner.run(runner.as_input(x)).argmax() == y)
    one = runner.as_input(data["x_test"][0])
    timing = time_calls(lambda: runner.run(one), runs=runs, warmup=10)
    return correct / len(data["y_test"]), timing.p50_ms, len(blob)


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    """int8 accuracy against int8 latency, point area ~ file size, the Pareto front circled."""
    from edgecls.bench.plots import pareto_plot

    pts = [{"variant": r["model"], "status": "ok", "threads": r["schedule"]["threads"], "accuracy": r["int8_acc"], "latency_ms": {"p50": r["int8_ms"]},
            "size_bytes": r["int8_kb"] * 1024} for r in rows if "error" not in r]
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
    parser.add_argument("--json", type=Path, default=Path("runs/bench-models/models.json"),
                        help="rows, rewritten after every model (default runs/bench-models/models.json)")
    parser.add_argument("--png", type=Path, default=Path("runs/bench-models/models.png"),
                        help="int8 accuracy against latency")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows in --json made with the same schedule and run only the others")
    args = parser.parse_args(argv)

    from edgecls import fileio
    from edgecls.models.macs import model_macs

    wanted = set(args.only.split(",")) if args.only else None
    configs = [c for c in CONFIGS if wanted is None or c[0] in wanted or c[1] in wanted]
    schedule = {"epochs": args.epochs, "count": args.count, "threads": args.threads, "runs": args.runs}
    kept = {}
    if args.resume and args.json.exists():
        kept = {r["model"]: r for r in json.loads(args.json.read_text()).get("rows", [])
                if r.get("schedule") == schedule and "error" not in r}
    data = load_data(args.count)
    title = (f"shapes {SIZE}px, {len(CLASSES)} classes, {len(data['y_train'])} train / {len(data['y_test'])} test, "
             f"{args.epochs} epochs, int8 latency: median of {args.runs} runs, {args.threads} thread(s)")
    print(title, flush=True)
    rows = []
    for i, (label, name, options) in enumerate(configs, 1):
        if label in kept:
            rows.append(kept[label])
            print(f"  [{i}/{len(configs)}] {label}: kept from {args.json}", file=sys.stderr, flush=True)
            continue
        t0 = time.perf_counter()
        try:
            model, float_acc, train_s = train(name, options, data, epochs=args.epochs)
            params = model.count_params()
            int8_acc, ms, size = int8_metrics(model, data, threads=args.threads, runs=args.runs)
            row = {"params": params, "macs": model_macs(model), "float_acc": float_acc, "int8_acc": int8_acc,
                   "int8_ms": ms, "int8_kb": size / 1024, "train_s": train_s}
            said = f"float {float_acc:.3f}, int8 {int8_acc:.3f} at {ms:.2f} ms"
        except Exception as exc:  # one net failing must not cost the others their rows
            row = {"error": f"{type(exc).__name__}: {first_line(exc)}"[:160]}
            said = "FAILED " + row["error"]
        rows.append({"model": label, "name": name, "options": options, "schedule": schedule, **row})
        fileio.write_json(args.json, {"title": title, "rows": rows})  # a crash keeps these
        print(f"  [{i}/{len(configs)}] {label}: {said} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
              flush=True)
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
