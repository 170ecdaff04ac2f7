"""Training throughput for 1 and 2 replicas, and whether the input pipeline keeps up.

    python benchmarks/distributed.py [--epochs 3] [--image-size 64] [--count 1600]

Each replica count runs in a fresh process (logical CPU devices must be set
before TensorFlow starts; on GPUs the same code uses the GPUs). In each, on the
shapes data with augmentation on, it measures:
- train:    images/s of model.fit on the tf.data pipeline (epochs after the first);
- memory:   images/s of model.fit on in-memory tensors (the step alone, no pipeline);
- pipeline: images/s of iterating the tf.data pipeline alone (decode, augment, batch).
The goal: pipeline >= 0.9 x train, i.e. the input pipeline is not the bottleneck.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(replicas: int, epochs: int, image_size: int, count: int) -> dict:
    from edgecls.recipe.schema import TrainConfig
    from edgecls.train.strategy import build_strategy

    info = build_strategy(TrainConfig(strategy="mirrored" if replicas > 1 else "default", cpu_replicas=replicas))
    from edgecls._tf import keras
    from edgecls.data.run_data import RunData
    from edgecls.data.splits import stratified_split
    from edgecls.data.sources import load_source
    from edgecls.models import create
    from edgecls.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "shapes.yaml",
                         [f"data.options.count={count}", f"data.options.image_size={image_size}",
                          f"data.image_size={image_size}"])
    examples = load_source("shapes", {"image_size": image_size, "classes": list(recipe.data.options.classes),
                                      "count": count, "seed": 0})
    data = RunData(recipe, examples, stratified_split(examples.labels, validation=0.0, test=0.1, seed=0))
    batch = recipe.train.batch_size
    ds = data.dataset("train", training=True, batch_size=batch)
    n = len(data.split["train"])
    with info.strategy.scope():
        model = create(recipe.model.name, data.num_classes, (image_size, image_size, 3), **recipe.model.options)
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    clock = Clock()
    clock.times = []
    model.fit(ds, epochs=epochs, callbacks=[clock], verbose=0)
    train = n / (sum(clock.times[1:]) / (len(clock.times) - 1))  # the first epoch traces and fills the cache

    x, y = data.arrays("train")
    y = keras.utils.to_categorical(y, data.num_classes)
    clock.times = []
    model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=[clock], verbose=0)
    memory = n / (sum(clock.times[1:]) / (len(clock.times) - 1))

    for _ in ds:  # one pass to fill the cache, as training had
        pass
    t0 = time.perf_counter()
    for _ in range(epochs - 1):
        for _ in ds:
            pass
    pipeline = n * (epochs - 1) / (time.perf_counter() - t0)
    return {"replicas": info.replicas, "train": train, "memory": memory, "pipeline": pipeline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--count", type=int, default=1600)
    parser.add_argument("--replicas", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.replicas:
        print(json.dumps(measure(args.replicas, args.epochs, args.image_size, args.count)))
        return 0
    rows = []
    for replicas in (1, 2):
        out = subprocess.run([sys.executable, __file__, "--replicas", str(replicas), "--epochs", str(args.epochs),
                              "--image-size", str(args.image_size), "--count", str(args.count)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"measured {replicas} replica(s)", file=sys.stderr)
    print(f"shapes {args.image_size} px, {args.count} images, mobilenet_v2 x0.35, augmentation on, "
          f"{args.epochs} epochs (the first not counted)\n")
    print("| replicas | train img/s (tf.data) | train img/s (in-memory) | pipeline img/s | pipeline / train |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['replicas']} | {r['train']:.0f} | {r['memory']:.0f} | {r['pipeline']:.0f} | "
              f"{r['pipeline'] / r['train']:.2f} {'(met)' if r['pipeline'] >= 0.9 * r['train'] else '(NOT met)'} |")
    print(f"\n2 replicas / 1 replica, training: {rows[1]['train'] / rows[0]['train']:.2f}x "
          "(logical CPU devices share the same 2 cores here; on GPUs each replica has its own device)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
