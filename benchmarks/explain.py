"""Grad-CAM speed against the goal (at most 0.5 s an image, 96-px MobileNetV2). Run: ``.venv/bin/python
benchmarks/explain.py`` (about 30 s on 2 cores).

Times :class:`edgecls.explain.GradCam` (what ``edgecls explain --method gradcam`` runs) on a MobileNetV2 from
``edgecls.create_model`` at 96 px with random weights (speed does not depend on the weights), taking raw pixels
as the command does. Reports the one-off set-up (building the gradient model and tracing it) apart, then the
median of ``--repeats`` timings per image: one image per call, and ``--batch`` images per call.

Options: --size 96  --width 1.0  --classes 10  --batch 32  --repeats 5  --json FILE
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import edgecls  # noqa: E402 - after the path, so the checkout's edgecls is measured

GOAL_S = 0.5  # seconds per image (issue #14)


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgecls.explain import GradCam

    model = edgecls.create_model("mobilenet_v2", args.classes, (args.size, args.size, 3), width=args.width)
    # Raw RGB pixels in, normalized in the graph, as `edgecls explain` feeds a run's model.
    pixels = SimpleNamespace(channels=3, normalize=SimpleNamespace(mean=(0.5,), std=(0.5,)))
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3)).astype(np.float32)

    t0 = time.perf_counter()
    cam = GradCam(model, pixels=pixels)
    cam(images[:1])  # traces the gradient function once
    setup = time.perf_counter() - t0
    single = _median_seconds(lambda: cam(images[:1]), args.repeats)
    batched = _median_seconds(lambda: cam(images, batch=args.batch), args.repeats) / args.batch

    result = {"model": f"mobilenet_v2 x{args.width}", "input": args.size, "layer": cam.layer.name,
              "feature_map": list(cam.layer.output_shape[1:3]), "gradient_of": cam.score_kind,
              "setup_s": round(setup, 3), "single_s_per_image": round(single, 4),
              "batched_s_per_image": round(batched, 4), "batch": args.batch, "goal_s_per_image": GOAL_S}
    print(f"Grad-CAM, {result['model']} at {args.size} px, layer {cam.layer.name} "
          f"{'x'.join(map(str, result['feature_map']))}, gradient of the {cam.score_kind}")
    print(f"  set-up (build + trace, once per model): {setup:.2f} s")
    for label, value in (("one image per call", single), (f"batches of {args.batch}", batched)):
        verdict = f"meets the {GOAL_S} s goal, {GOAL_S / value:.0f}x under it" if value <= GOAL_S else \
            f"MISSES the {GOAL_S} s goal"
        print(f"  {label:<22} {value * 1000:8.1f} ms/image  ({verdict})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if max(single, batched) <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
