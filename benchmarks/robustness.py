"""Speed goals of occlusion maps and corrupted evaluation in the runtime. Run: ``.venv/bin/python benchmarks/robustness.py``.

On a 96-px MobileNetV2 (``edgecls.models.create("mobilenet_v2", ...)``, random
weights: fine for speed; built and converted once with TensorFlow in a
subprocess, cached, so this process and its forked workers hold no TensorFlow):

1. occlusion sensitivity of one image with the default patch and stride
   (:func:`edgecls.runtime.explain.occlusion_map` through ``Classifier.predict_pixels``,
   the interpreter on all cores up to 4): goal <= 2 s per image;
2. :func:`edgecls.runtime.evaluate.evaluate` on ~300 test images: clean alone vs
   clean + 6 corruptions x 3 severities (19 passes over the data), side by side
   in one run (alternating, median of the rounds): goal <= 20 x the clean pass.

Options: --images 300  --rounds 3  --occlusion-images 5  --threads N (evaluate's workers; default all cores)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path(os.environ.get("EDGECLS_BENCH_CACHE", Path(tempfile.gettempdir()) / "edgecls-bench"))
SIZE, CLASSES = 96, 10

_BUILD = """
from edgecls._tf import tf
from edgecls.models import create
model = create("mobilenet_v2", {classes}, ({size}, {size}, 3))
open({out!r}, "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
"""


def build_model() -> Path:
    path = CACHE / f"mobilenet_v2_{SIZE}_float32.tflite"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building {path.name} (TensorFlow, once; cached in {CACHE}) ...", flush=True)
    code = _BUILD.format(classes=CLASSES, size=SIZE, out=str(path) + ".tmp")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"building {path.name} failed:\n{proc.stderr[-3000:]}")
    os.replace(str(path) + ".tmp", path)
    return path


def test_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Photographic-ish content (smooth shapes, texture, noise): what JPEG and blur cost on real images."""
    from edgecls.data.shapes import generate_shapes

    return generate_shapes(image_size=SIZE, count=n, seed=0)


def occlusion_seconds(model: Path, images: np.ndarray) -> list[float]:
    from edgecls.runtime import Classifier
    from edgecls.runtime.explain import occlusion_map

    clf = Classifier.from_file(model, require_labels=False)
    print(f"occlusion: {clf!r}")
    occlusion_map(lambda x: clf.predict_pixels(x, 64), images[0])  # warm-up: first invokes, batch resize
    out = []
    for img in images:
        t = time.perf_counter()
        occ = occlusion_map(lambda x: clf.predict_pixels(x, 64), img)
        out.append(time.perf_counter() - t)
    h, w = images.shape[1:3]
    n = len(range(0, h - occ.patch + 1, occ.stride))
    print(f"  patch {occ.patch}, stride {occ.stride}: about {n * n} occluded copies per image")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--occlusion-images", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from edgecls.runtime.corruptions import CORRUPTIONS
    from edgecls.runtime.evaluate import cpu_count, evaluate

    model = build_model()
    x, y = test_images(args.images)
    print(f"model {model} ({SIZE} px, {CLASSES} classes, random weights); {len(x)} test images; "
          f"{cpu_count()} cores")

    times = occlusion_seconds(model, x[:args.occlusion_images])
    med = statistics.median(times)
    print(f"1. occlusion per image: median {med:.3f} s (min {min(times):.3f}, max {max(times):.3f})  "
          f"goal <= 2 s: {'MET' if med <= 2 else 'MISSED'}")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "test.npz"
        np.savez(data, pixels=x, labels=y % CLASSES, class_names=np.array([str(i) for i in range(CLASSES)]))
        evaluate(model, data, threads=args.threads)  # warm-up (page cache, imports)
        clean, corrupted, ratios, proper = [], [], [], []
        for _ in range(args.rounds):  # alternating, so machine noise hits both alike
            t = time.perf_counter()
            plain = evaluate(model, data, threads=args.threads)
            clean.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = evaluate(model, data, threads=args.threads, corruptions=CORRUPTIONS, severities=(1, 3, 5))
            corrupted.append(time.perf_counter() - t)
            ratios.append(corrupted[-1] / clean[-1])
            proper.append(report["seconds"] / plain["seconds"])
        ratio = statistics.median(ratios)
        print(f"2. evaluate() wall time, {len(x)} images, {report['workers']} worker(s): clean "
              f"{statistics.median(clean):.2f} s; clean + {len(CORRUPTIONS)} corruptions x 3 severities "
              f"{statistics.median(corrupted):.2f} s ({1 + 3 * len(CORRUPTIONS)} passes); ratio {ratio:.1f}x "
              f"(rounds: {', '.join(f'{r:.1f}' for r in ratios)})  goal <= 20x: {'MET' if ratio <= 20 else 'MISSED'}")
        print(f"   without loading data and model (the reports' own 'seconds': workers' start, passes): ratio "
              f"{statistics.median(proper):.1f}x for {1 + 3 * len(CORRUPTIONS)}x the images")
        print(f"   mean corruption accuracy {report['mean_corruption_accuracy']:.3f} (random weights: only a "
              "check that it ran)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
