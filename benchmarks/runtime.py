"""The runtime's goals, measured on this machine. Run: ``.venv/bin/python benchmarks/runtime.py``.

1. Latency of ``Classifier.predict`` on a preprocessed tensor <= 1.05 x the
   median of LiteRT's own ``litert-benchmark``, same model and threads, run
   side by side (alternating fresh processes; the median of the per-round ratios), and
   call by call in one process against LiteRT's CompiledModel as a check.
2. End-to-end classification of image files (decode + resize + invoke, the
   CLI's path: ``classify_iter`` decoding one image ahead) >= 0.85 x the
   invoke-only throughput, for a 224-px MobileNetV2 (random weights: fine for
   speed) on 640x480 JPEGs. Also printed: the bound the CPU itself sets for that
   ratio (cores x invoke / (threads x invoke + decode)), and ``--interpreters N``
   (one single-threaded copy of the model per core).
3. ``python -c "import edgecls.runtime"`` under 0.3 s (wall time of the whole process; the
   tests check only that the import loads nothing else, tests/runtime/test_runtime_no_tensorflow.py).
4. The size of a runtime environment (numpy, Pillow, ai-edge-litert): the
   .venv-rt-litert that ``make side-envs`` builds, or ``--runtime-venv DIR``.
   Nothing is installed at run time; without it, part 4 says what to run.

Options: --threads 1,2  --rounds 9  --runs 100  --images 40  --int8  --model PATH  --no-env-size
         --runtime-venv DIR
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("EDGECLS_BENCH_CACHE", Path(tempfile.gettempdir()) / "edgecls-bench"))


_MOBILENET_V2 = """
import numpy as np
from edgecls._tf import keras, tf

def block(x, t, c, s, name):
    cin = x.shape[-1]
    y = x
    if t != 1:
        y = keras.layers.Conv2D(cin * t, 1, use_bias=False, name=name + "_expand")(y)
        y = keras.layers.BatchNormalization(name=name + "_expand_bn")(y)
        y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=name + "_dw")(y)
    y = keras.layers.BatchNormalization(name=name + "_dw_bn")(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Conv2D(c, 1, use_bias=False, name=name + "_project")(y)
    y = keras.layers.BatchNormalization(name=name + "_project_bn")(y)
    return keras.layers.Add()([x, y]) if s == 1 and cin == c else y

# MobileNetV2 (Sandler et al. 2018, Table 2), width 1.0, 224x224, 1000 classes, random weights.
inputs = keras.Input((224, 224, 3))
x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)
x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
k = 0
for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
    for i in range(n):
        x = block(x, t, c, s if i == 0 else 1, f"b{k}")
        k += 1
x = keras.layers.Conv2D(1280, 1, use_bias=False)(x)
x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
x = keras.layers.GlobalAveragePooling2D()(x)
outputs = keras.layers.Dense(1000, activation="softmax")(x)
model = keras.Model(inputs, outputs)
conv = tf.lite.TFLiteConverter.from_keras_model(model)
if INT8:
    rng = np.random.default_rng(0)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)] for _ in range(20))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
open(OUT, "wb").write(conv.convert())
"""


def build_mobilenet(int8: bool) -> Path:
    """MobileNetV2 at 224x224x3, 1000 classes, random weights, converted to .tflite (cached)."""
    path = CACHE / f"mobilenet_v2_224_{'int8' if int8 else 'float32'}.tflite"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    code = f"INT8 = {int8}\nOUT = {str(path) + '.tmp'!r}\n" + _MOBILENET_V2
    print(f"building {path.name} (TensorFlow; once, cached in {CACHE}) ...", flush=True)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"building {path.name} failed:\n{proc.stderr[-3000:]}")
    os.replace(str(path) + ".tmp", path)
    return path


def litert_median(model: Path, threads: int, runs: int, warmup: int) -> float:
    exe = BIN / "litert-benchmark"
    proc = subprocess.run([str(exe), "--model", str(model), "--num_threads", str(threads), "--num_runs", str(runs),
                           "--warmup_runs", str(warmup)], capture_output=True, text=True, check=True)
    return float(re.search(r"Inference \(median\):\s+([\d.]+) ms", proc.stdout).group(1))


def ours_median(model: Path, threads: int, runs: int, warmup: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "edgecls.runtime", "bench", str(model), "--threads", str(threads),
                           "--runs", str(runs), "--warmup", str(warmup), "--json"], capture_output=True, text=True,
                          check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(proc.stdout)


def latency_goal(model: Path, threads: int, rounds: int, runs: int, warmup: int) -> dict:
    """Fresh processes, alternating which goes first; the ratio is the median of the per-round ratios
    (each round's two runs are seconds apart, so they see the same machine load)."""
    ours, theirs, last = [], [], {}
    for i in range(rounds):
        if i % 2:
            last = ours_median(model, threads, runs, warmup)
            theirs.append(litert_median(model, threads, runs, warmup))
        else:
            theirs.append(litert_median(model, threads, runs, warmup))
            last = ours_median(model, threads, runs, warmup)
        ours.append(last["p50_ms"])
    o, t = statistics.median(ours), statistics.median(theirs)
    paired = statistics.median(a / b for a, b in zip(ours, theirs))
    return {"threads": threads, "ours_p50_ms": o, "litert_benchmark_median_ms": t, "ratio": paired,
            "ratio_of_medians": o / t, "ours_rounds": ours, "litert_rounds": theirs, "ours_p90_ms": last["p90_ms"],
            "ours_p99_ms": last["p99_ms"], "init_ms": last["init_ms"], "peak_rss_mb": last["peak_rss_mb"],
            "backend": last["backend"]}


def interleaved(model: Path, threads: int, calls: int = 60) -> dict:
    """In one process, call by call: Classifier.predict vs LiteRT's CompiledModel.run_by_index (what
    litert-benchmark runs) vs the bare Interpreter.invoke. The least noisy comparison this machine allows."""
    import numpy as np
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    from edgecls.runtime import Classifier
    from edgecls.runtime.cli import quiet_native_stderr

    with quiet_native_stderr():
        clf = Classifier.from_file(model, num_threads=threads, require_labels=False)
        cm = CompiledModel.from_file(str(model), options=Options(hardware_accelerators=HardwareAccelerator.CPU,
                                                                cpu_options=CpuOptions(num_threads=threads)))
    h, w = clf.input_size
    x = clf.normalize(np.random.default_rng(0).integers(0, 256, (h, w, clf.channels), dtype=np.uint8))
    inb, outb = cm.create_input_buffers(0), cm.create_output_buffers(0)
    inb[0].write(x)
    engine = clf.runner._engine
    fns = {"classifier": lambda: clf.predict(x), "compiled_model": lambda: cm.run_by_index(0, inb, outb),
           "bare_invoke": engine._invoke}
    times: dict = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(5):
            fn()
    for _ in range(calls):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**{f"{k}_ms": v for k, v in med.items()}, "ratio": med["classifier"] / med["compiled_model"]}


def make_jpegs(folder: Path, n: int, size=(480, 640)) -> list[Path]:
    """Photo-like 640x480 JPEGs: gradients, a few shapes, sensor-like noise; quality 90."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = size
    paths = []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        base = (rng.uniform(0, 255, 3) * (xx / w)[..., None] + rng.uniform(0, 255, 3) * (yy / h)[..., None]) / 2
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rng.integers(0, w - 50), rng.integers(0, h - 50)
            box = (int(x0), int(y0), int(x0 + rng.integers(30, 250)), int(y0 + rng.integers(30, 200)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
        img = img.filter(ImageFilter.GaussianBlur(1.2))
        arr = np.asarray(img).astype(np.float32) + rng.normal(0, 4, (h, w, 3))
        path = folder / f"img{i:03d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def throughput_goal(model: Path, images: list[Path], threads: int, repeats: int = 3) -> dict:
    import numpy as np

    from edgecls.runtime import Classifier

    clf = Classifier.from_file(model, num_threads=threads, require_labels=False, mean=[127.5], std=[127.5])
    n = len(images)
    tensor = clf.preprocess(images[0])
    for _ in range(5):
        clf.predict(tensor)
    for _ in clf.classify_iter(images[:5]):
        pass

    def invoke_only() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            clf.predict(tensor)
        return n / (time.perf_counter() - t0)

    def end_to_end() -> float:
        t0 = time.perf_counter()
        for _ in clf.classify_iter(images, top_k=5):
            pass
        return n / (time.perf_counter() - t0)

    def sequential() -> float:
        t0 = time.perf_counter()
        for path in images:
            clf.classify(path, top_k=5)
        return n / (time.perf_counter() - t0)

    def parallel() -> float:  # `--interpreters threads`: one single-threaded copy of the model per core
        t0 = time.perf_counter()
        for _ in clf.classify_iter(images, top_k=5, interpreters=threads):
            pass
        return n / (time.perf_counter() - t0)

    inv, e2e, seq, par = [], [], [], []
    for _ in range(repeats):  # interleaved, medians
        inv.append(invoke_only())
        e2e.append(end_to_end())
        seq.append(sequential())
        if threads > 1:
            par.append(parallel())
    t0 = time.perf_counter()
    for path in images:
        clf.load_pixels(path)
    decode_ms = (time.perf_counter() - t0) * 1000 / n
    i, e, s = statistics.median(inv), statistics.median(e2e), statistics.median(seq)
    # The CPU's own bound: each image costs `threads` cores for the invoke plus one for the decode, and
    # the machine has `cores`; no schedule of the same work beats this ratio.
    cores, invoke_ms = os.cpu_count() or 1, 1000 / i
    ceiling = min(1.0, cores * invoke_ms / (threads * invoke_ms + decode_ms))
    return {"threads": threads, "invoke_only_ips": i, "end_to_end_ips": e, "ratio": e / i,
            "sequential_ips": s, "sequential_ratio": s / i, "decode_resize_ms": decode_ms,
            "cpu_bound_ratio": ceiling, "cores": cores,
            "parallel_ips": statistics.median(par) if par else None,
            "parallel_ratio": statistics.median(par) / i if par else None,
            "images": n, "image_size": "640x480 JPEG q90", "_check": bool(np.isfinite(e))}


def import_time(python: str, env_extra: dict | None = None, n: int = 15) -> dict:
    env = {**os.environ, **(env_extra or {})}

    def wall(code: str) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([python, "-c", code], check=True, env=env, cwd="/")
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return {"python": python, "import_s": wall("import edgecls.runtime"), "bare_python_s": wall("pass")}


SIDE_ENV = ROOT / ".venv-rt-litert"  # numpy, Pillow, ai-edge-litert: what `make side-envs` builds
SIDE_ENV_HINT = ("make side-envs (it builds .venv-rt-litert from tests/runtime/requirements-litert.txt), or give "
                 "--runtime-venv DIR for a venv with numpy, Pillow and ai-edge-litert")


def env_size(venv: Path) -> dict:
    """The size of a runtime environment (a venv with numpy, Pillow and ai-edge-litert) as it is on disk.

    Nothing is installed here: the venv is the one ``make side-envs`` builds (or ``--runtime-venv``).
    The test runner's packages are in that venv too and are left out of the total.
    """
    site = next((venv / "lib").glob("python*/site-packages"), None)
    if site is None:
        raise SystemExit(f"{venv}: no lib/python*/site-packages in it; {SIDE_ENV_HINT}")

    def du(path: Path) -> int:
        files = [path] if path.is_file() else path.rglob("*")
        return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())

    tooling = ("pip", "setuptools", "_distutils_hack", "pytest", "_pytest", "pluggy", "iniconfig", "packaging",
               "pygments", "pytest_timeout")
    sizes: dict[str, int] = {}
    packages = []
    for d in site.iterdir():
        stem = d.name.split(".")[0].split("-")[0]
        if d.name.endswith(".dist-info"):
            name, _, version = d.name[:-len(".dist-info")].partition("-")
            if name.lower() not in tooling:
                packages.append(f"{name}=={version}")
        elif stem.lower() not in tooling and d.name != "__pycache__":
            sizes[d.name] = du(d)
    total = sum(sizes.values())
    return {"venv": str(venv), "packages_mb": total / 2**20, "venv_total_mb": du(venv) / 2**20,
            "largest": {k: round(v / 2**20, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:6]},
            "packages": sorted(packages, key=str.lower)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--int8", action="store_true", help="also the int8 (uint8 input) MobileNetV2")
    ap.add_argument("--model", type=Path, default=None, help="use this .tflite instead of building MobileNetV2")
    ap.add_argument("--parts", default="1,2,3,4", help="which goals to measure (1 latency, 2 end-to-end, 3 import, "
                    "4 environment size)")
    ap.add_argument("--no-env-size", action="store_true")
    ap.add_argument("--runtime-venv", type=Path, default=SIDE_ENV,
                    help="a venv with numpy, Pillow and ai-edge-litert for parts 3 and 4 [default: .venv-rt-litert]")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    parts = {int(p) for p in args.parts.split(",")} - ({4} if args.no_env_size else set())
    models = []
    if parts & {1, 2}:  # only the timing goals need a model
        models = [args.model] if args.model else [build_mobilenet(False)] + ([build_mobilenet(True)] if args.int8
                                                                              else [])
    results: dict = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "latency": [], "throughput": []}

    if 1 in parts:
        print(f"\n== 1. latency on a preprocessed tensor: Classifier.predict vs litert-benchmark "
              f"({args.rounds} alternating rounds of {args.runs} runs) ==")
        for model in models:
            for t in threads:
                r = latency_goal(model, t, args.rounds, args.runs, args.warmup)
                r["model"] = model.name
                results["latency"].append(r)
                print(f"{model.name:34} threads={t}  ours p50 {r['ours_p50_ms']:7.2f} ms   litert-benchmark median "
                      f"{r['litert_benchmark_median_ms']:7.2f} ms   paired ratio {r['ratio']:.3f}  (goal <= 1.05: "
                      f"{'met' if r['ratio'] <= 1.05 else 'NOT met'}; ratio of medians {r['ratio_of_medians']:.3f})\n"
                      f"{'':34} rounds ours={['%.2f' % x for x in r['ours_rounds']]}"
                      f" litert={['%.2f' % x for x in r['litert_rounds']]}", flush=True)
                r["interleaved"] = inter = interleaved(model, t)
                print(f"{'':34} in one process, call by call: Classifier.predict {inter['classifier_ms']:.2f} ms, "
                      f"CompiledModel.run {inter['compiled_model_ms']:.2f} ms, bare invoke "
                      f"{inter['bare_invoke_ms']:.2f} ms -> ratio {inter['ratio']:.3f}", flush=True)

    if 2 in parts:
        print(f"\n== 2. end-to-end image files vs invoke-only ({args.images} x 640x480 JPEG) ==")
        with tempfile.TemporaryDirectory() as tmp:
            images = make_jpegs(Path(tmp) / "imgs", args.images)
            for model in models:
                for t in threads:
                    r = throughput_goal(model, images, t)
                    r["model"] = model.name
                    results["throughput"].append(r)
                    print(f"{model.name:34} threads={t}  invoke-only {r['invoke_only_ips']:6.1f} img/s   end-to-end "
                          f"{r['end_to_end_ips']:6.1f} img/s   ratio {r['ratio']:.3f} (goal >= 0.85: "
                          f"{'met' if r['ratio'] >= 0.85 else 'NOT met'})   [no prefetch: {r['sequential_ips']:.1f} "
                          f"img/s = {r['sequential_ratio']:.2f}; decode+resize {r['decode_resize_ms']:.1f} ms/img]",
                          flush=True)
                    print(f"{'':34} CPU bound for this work on {r['cores']} cores: ratio {r['cpu_bound_ratio']:.3f} "
                          f"(threads x invoke + decode per image)", flush=True)
                    if r["parallel_ips"]:
                        print(f"{'':34} --interpreters {t} (one 1-thread copy per core): {r['parallel_ips']:6.1f} "
                              f"img/s = {r['parallel_ratio']:.3f} x invoke-only at {t} threads", flush=True)

    if 3 in parts:
        print("\n== 3. python -c 'import edgecls.runtime' (wall time, median of 15) ==")
        imports = [import_time(sys.executable)]
        lite = args.runtime_venv / "bin" / "python"
        if lite.exists():
            imports.append(import_time(str(lite), {"PYTHONPATH": str(ROOT)}))
        else:
            print(f"(no {lite}: the runtime environment's import time is not measured; {SIDE_ENV_HINT})")
        for r in imports:
            print(f"{r['python']:40} {r['import_s'] * 1000:6.0f} ms  (bare python {r['bare_python_s'] * 1000:.0f} "
                  f"ms)  goal < 300 ms: {'met' if r['import_s'] < 0.3 else 'NOT met'}")
        results["import"] = imports

    if 4 in parts:
        print(f"\n== 4. a runtime environment: numpy, Pillow, ai-edge-litert ({args.runtime_venv}) ==")
        if not (args.runtime_venv / "bin" / "python").exists():
            print(f"not measured: {args.runtime_venv} is missing; run {SIDE_ENV_HINT}")
        else:
            size = env_size(args.runtime_venv)
            results["env_size"] = size
            print(f"runtime packages {size['packages_mb']:.0f} MB (the whole venv, with pip and the test runner: "
                  f"{size['venv_total_mb']:.0f} MB); largest: {size['largest']}")
            print("installed:", " ".join(size["packages"]))
    results["load_avg_end"] = os.getloadavg()
    print(f"\nload average: start {results['load_avg_start']}, end {results['load_avg_end']} ({os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
