"""The runtime's command line (argparse, no click): what ``edgecls-runtime.pyz`` and ``python -m edgecls.runtime`` run.

    classify MODEL IMAGE_OR_DIR... [--top-k 5] [--threads N] [--json] [--labels FILE]
    classify MODEL --camera 0|VIDEO|picamera2 [--frames N]
    bench MODEL [--threads 2] [--runs 50] [--warmup 5] [--json]
    eval MODEL --data test.npz [--threads N] [--corruptions a,b] [--severities 1,3,5] [--json]
    explain MODEL IMAGE_OR_DIR... [--patch N] [--stride N] [--out DIR] [--json]
    info MODEL [--json]
    backends

``edgecls classify`` (click) runs :func:`classify_command` too, with the same
options: both parsers are built from :mod:`edgecls.runtime.options`. A user's
mistake is one line on stderr (``error: ...``) and a non-zero exit code, never
a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import Any, Iterable, Iterator, Sequence, TextIO

from edgecls.runtime.corruptions import DEFAULT_SEVERITIES
from edgecls.runtime.errors import EdgeclsError, ImageError, UsageError
from edgecls.runtime.options import (BACKEND, CLASSIFY, DELEGATE, LABELS, MODEL_OPTIONS, PREPROCESSING, THREADS,
                                     VERBOSE, Option, check_int, resolve)

PROG = "edgecls-runtime"


# ---------------------------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True, *, keep_python: bool = False) -> Iterator[None]:
    """Hide what native code writes to fd 2 (XNNPACK and LiteRT INFO lines); EDGECLS_TF_LOGS=1 shows it.

    Python exceptions still carry the interpreters' error messages. ``keep_python``: where stderr is a
    terminal, ``sys.stderr`` itself keeps writing to it, so a progress bar drawn from Python inside the
    block (int8 calibration, which the converter drives) stays visible while native lines are hidden.
    """
    if not enabled or os.environ.get("EDGECLS_TF_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    python_stderr = None
    try:
        os.dup2(devnull, 2)
        if keep_python and os.isatty(saved):
            python_stderr = sys.stderr
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None),
                              errors="backslashreplace")
        yield
    finally:
        if python_stderr is not None:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_classifier(model: str, *, threads: int | None = None, labels: str | None = None,
                    backend: str | None = None, delegate: str | None = None, require_labels: bool = True,
                    quiet: bool = True, **preprocessing: Any) -> Any:
    """Classifier.from_file with the interpreters' start-up chatter hidden.

    ``preprocessing``: mean, std, resize, output_kind (None: the model's metadata or the default).
    """
    from edgecls.runtime.classifier import Classifier

    with quiet_native_stderr(quiet):
        clf = Classifier.from_file(model, num_threads=threads, labels=labels, backend=backend, delegate=delegate,
                                   require_labels=require_labels,
                                   **{k: v for k, v in preprocessing.items() if v is not None})
        clf.runner.run(clf.normalize(_blank(clf)))  # first run: delegates finish preparing here, quietly
    return clf


def _blank(clf: Any) -> Any:
    import numpy as np

    h, w = clf.input_size
    return np.zeros((h, w, clf.channels), np.uint8)


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files as given; directories walked (sorted, recursively) for image and .npy files."""
    from edgecls.runtime.image import IMAGE_SUFFIXES

    out: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for root, dirs, files in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES)]
            if not found:
                raise ImageError(f"{item}: no image files in this folder ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(item)
    return out


def _missing_file_error(path: str) -> ImageError | None:
    if not os.path.exists(path):
        return ImageError(f"{path}: no such file")
    return None


# ---------------------------------------------------------------------------------------------- classify

def classify_paths(model: str, inputs: Sequence[str], *, top_k: int = 5, threads: int | None = None,
                   labels: str | None = None, backend: str | None = None, delegate: str | None = None,
                   as_json: bool = False, workers: int = 1, interpreters: int = 1, out: TextIO | None = None,
                   err: TextIO | None = None, **preprocessing: Any) -> int:
    """Classify image files and folders with ``model``; print a table or JSON lines; return the exit code.

    A model problem raises (one EdgeclsError); an input that cannot be
    classified prints ``error: ...`` on ``err`` and the others go on; the exit
    code is then 1.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    check_int(top_k, "--top-k")
    if not inputs:
        raise UsageError("give at least one image, .npy file or folder (or --camera N)")
    paths = expand_inputs(inputs)
    clf = load_classifier(model, threads=threads, labels=labels, backend=backend, delegate=delegate,
                          **preprocessing)
    k = min(top_k, clf.num_classes)
    width = min(max(len(p) for p in paths), 60)
    if not as_json:
        print(f"{'IMAGE':<{width}}  {'RANK':>4}  {'INDEX':>5}  {'SCORE':>7}  LABEL", file=out)
    failures = 0
    existing = []
    for p in paths:
        missing = _missing_file_error(p)
        if missing is not None:
            failures += 1
            print(f"error: {missing}", file=err)
        else:
            existing.append(p)
    for path, result in clf.classify_iter(existing, top_k=k, workers=workers, interpreters=interpreters,
                                          errors="return"):
        if isinstance(result, EdgeclsError):
            failures += 1
            print(f"error: {result}", file=err)
            continue
        if as_json:
            print(json.dumps({"image": path, "predictions": [
                {"label": p.label, "index": p.index, "score": round(p.score, 6)} for p in result]}), file=out)
        else:
            for rank, p in enumerate(result, 1):
                shown = path if rank == 1 else ""
                print(f"{shown:<{width}}  {rank:>4}  {p.index:>5}  {p.score:>7.4f}  {p.label}", file=out)
        out.flush()
    return 1 if failures else 0


def classify_camera(model: str, camera: int | str, *, top_k: int = 1, threads: int | None = None,
                    labels: str | None = None, backend: str | None = None, delegate: str | None = None,
                    as_json: bool = False, frames: int | None = None, out: TextIO | None = None,
                    **preprocessing: Any) -> int:
    """Classify camera frames (an OpenCV index, a video file/URL, or "picamera2"); print top-1 and FPS per frame.

    A camera that does not open or gives no first frame raises CameraError (one line); a video that ends
    stops the loop.
    """
    from edgecls.runtime.camera import CameraError, camera_frames

    out = out or sys.stdout
    source = camera_frames(camera)  # a missing OpenCV / Picamera2 is named before the model loads
    clf = load_classifier(model, threads=threads, labels=labels, backend=backend, delegate=delegate,
                          **preprocessing)
    with quiet_native_stderr():  # libcamera logs INFO lines on fd 2 as it starts
        source.open()
    count, fps, last = 0, 0.0, time.perf_counter()
    try:
        with contextlib.closing(source):
            while frames is None or count < frames:
                rgb = source.read()
                if rgb is None:
                    if count == 0:
                        raise CameraError(f"{source.name}: opened, but gave no frame")
                    break
                preds = clf.classify(rgb, top_k=top_k)
                now = time.perf_counter()
                inst = 1.0 / max(now - last, 1e-9)
                fps = inst if count == 0 else 0.9 * fps + 0.1 * inst
                last = now
                count += 1
                best = preds[0]
                if as_json:
                    print(json.dumps({"frame": count, "label": best.label, "index": best.index,
                                      "score": round(best.score, 6), "fps": round(fps, 2)}), file=out)
                else:
                    print(f"frame {count:6d}  {best.label:<24} {best.score:6.3f}  {fps:6.1f} fps", file=out)
                out.flush()
    except KeyboardInterrupt:
        pass
    return 0


# ---------------------------------------------------------------------------------------------- bench, info

def bench(model: str, *, threads: int | None = None, runs: int = 50, warmup: int = 5, backend: str | None = None,
          delegate: str | None = None, batch: int = 1, quiet: bool = True) -> dict:
    """:func:`edgecls.runtime.timing.measure` as a JSON-able dict."""
    from edgecls.runtime.timing import measure

    if runs < 1 or warmup < 0 or batch < 1:
        raise UsageError(f"need --runs >= 1, --warmup >= 0 and --batch >= 1 (got {runs}, {warmup}, {batch})")
    from edgecls.runtime.backends import load_backend

    with quiet_native_stderr(quiet):
        load_backend(backend)  # imports first: init_ms is the model's, not the modules' (a zipapp compiles them)
        with contextlib.suppress(ImportError):  # the metadata reader and the schema it reads (need flatbuffers)
            import edgecls._vendor.tflite_schema  # noqa: F401
            import edgecls.runtime.metadata  # noqa: F401
        timing = measure(model, num_threads=threads, runs=runs, warmup=warmup, backend=backend, delegate=delegate,
                         batch=batch)
    return timing.to_dict()


def _print_bench(result: dict, out: TextIO) -> None:
    print(f"{result['model']}  ({result['backend']} {result['backend_version']}, {result['threads']} threads, "
          f"delegate {result['delegate']}, batch {result['batch']})", file=out)
    for key in ("init_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms"):
        print(f"  {key:<12} {result[key]:10.3f}", file=out)
    print(f"  {'fps':<12} {result['fps']:10.2f}", file=out)
    if result.get("peak_rss_mb") is not None:
        print(f"  {'peak_rss_mb':<12} {result['peak_rss_mb']:10.1f}", file=out)


def backends_report() -> dict:
    from edgecls.runtime.backends import BACKENDS, installed_backends, load_backend
    from edgecls.runtime.image import has_pillow

    report: dict = {"installed": installed_backends(), "order": list(BACKENDS), "pillow": has_pillow()}
    try:
        b = load_backend()
        report["selected"] = f"{b.name} {b.version}"
    except EdgeclsError as exc:
        report["selected"] = None
        report["error"] = str(exc)
    return report


# ---------------------------------------------------------------------------------------------- argparse

# Eval's --threads counts worker processes (one single-threaded interpreter each), within the same range.
EVAL_THREADS = dataclasses.replace(THREADS, help="cores: N processes with one interpreter thread each",
                                   default_text="all cores")
# The options of each command (classify's and the shared ones from edgecls.runtime.options); resolve() checks them.
TABLES: dict[str, tuple[Option, ...]] = {
    "classify": CLASSIFY,
    "bench": (Option("--runs", "runs", "timed runs", kind="int", default=50, low=1, metavar="N"),
              Option("--warmup", "warmup", "untimed runs first", kind="int", default=5, low=0, metavar="N"),
              Option("--batch", "batch", "images per invoke", kind="int", default=1, low=1, metavar="N"),
              *MODEL_OPTIONS),
    "eval": (Option("--batch", "batch", "images per invoke", kind="int", low=1, metavar="N", default_text="by size"),
             Option("--corruptions", "corruptions", "also the accuracy under these corruptions (ImageNet-C): "
                    "gaussian_noise,gaussian_blur,jpeg,brightness,contrast,pixelate or all", metavar="A,B"),
             Option("--severities", "severities", "with --corruptions: severities 1 to 5", metavar="1,3,5",
                    default=",".join(map(str, DEFAULT_SEVERITIES))),
             EVAL_THREADS, BACKEND, DELEGATE, VERBOSE),
    "explain": (Option("--patch", "patch", "occluding square's side in pixels of the model's input", kind="int",
                       low=1, metavar="N", default_text="min(H, W) / 6"),
                Option("--stride", "stride", "step between patches, at most the patch", kind="int", low=1,
                       metavar="N", default_text="patch / 2"),
                Option("--out", "out_dir", "folder for <image>-occlusion.png and .npy", metavar="DIR", default="."),
                Option("--json", "as_json", "JSON lines instead of text", kind="flag", default=False),
                LABELS, *PREPROCESSING, *MODEL_OPTIONS),
    "info": (LABELS, *PREPROCESSING, *MODEL_OPTIONS),
}


def add_options(parser: argparse.ArgumentParser, table: Sequence[Option]) -> None:
    """argparse options from a table; they collect text, which :func:`resolve` converts and checks."""
    for o in table:
        if o.kind == "flag":
            parser.add_argument(o.flag, dest=o.dest, action="store_true", help=o.help_text)
        else:
            parser.add_argument(o.flag, dest=o.dest, default=o.default, choices=o.choices or None,
                                metavar=o.metavar, help=o.help_text)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Classify images with a .tflite model "
                                     "(no TensorFlow: numpy + ai-edge-litert or tflite-runtime; Pillow for image "
                                     "files, not for .npy arrays).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("classify", help="classify images, .npy arrays, folders, or camera frames")
    c.add_argument("model")
    c.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR")

    b = sub.add_parser("bench", help="time inference on a preprocessed tensor: warm-up, N runs, percentiles")
    b.add_argument("model")
    b.add_argument("--json", action="store_true", help="one JSON object")

    e = sub.add_parser("eval", help="accuracy, top-5, macro-F1 and ECE on labelled pixels (.npz), on all cores")
    e.add_argument("model")
    e.add_argument("--data", required=True, metavar="FILE.npz",
                   help="pixels (N,H,W,3 uint8), labels (N,) and class_names, as edgecls bench writes them")
    e.add_argument("--json", action="store_true", help="one JSON object: the classification report")

    x = sub.add_parser("explain", help="occlusion sensitivity: which regions the prediction depends on "
                       "(PNG panel and .npy heatmap per image)")
    x.add_argument("model")
    x.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")

    i = sub.add_parser("info", help="what the model takes and returns, and how it will be preprocessed")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")

    for name, table in TABLES.items():
        add_options(sub.choices[name], table)
    sub.add_parser("backends", help="which interpreter packages are installed, and which one is used")
    return parser


def classify_command(model: str, inputs: Sequence[str], options: dict, out: TextIO, err: TextIO) -> int:
    """``classify`` with the options of :data:`~edgecls.runtime.options.CLASSIFY` (resolved): both CLIs run this."""
    o = dict(options)
    if o.pop("verbose"):
        os.environ["EDGECLS_TF_LOGS"] = "1"  # quiet_native_stderr() then shows the native log lines
    camera, frames, top_k = o.pop("camera"), o.pop("frames"), o.pop("top_k")
    workers, interpreters = o.pop("workers"), o.pop("interpreters")
    if camera is not None:
        if inputs:
            raise UsageError("give either images or --camera, not both")
        return classify_camera(model, camera, top_k=1, frames=frames, out=out, **o)
    return classify_paths(model, list(inputs), top_k=top_k, workers=workers, interpreters=interpreters, out=out,
                          err=err, **o)


def _show(result: dict, as_json: bool, pretty: Any, out: TextIO) -> int:
    """One JSON object, or ``pretty(result, out)``; exit code 0."""
    if as_json:
        print(json.dumps(result), file=out)
    else:
        pretty(result, out)
    return 0


def _print_fields(result: dict, out: TextIO) -> None:
    for key, value in result.items():
        print(f"{key:<12} {value}", file=out)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    opts = resolve(TABLES.get(args.command, ()), vars(args))
    if args.command == "classify":
        return classify_command(args.model, args.inputs, opts, out, err)
    quiet = not opts.get("verbose", False)
    if not quiet:
        os.environ["EDGECLS_TF_LOGS"] = "1"  # quiet_native_stderr() then shows the native log lines
    model_opts = {k: opts.get(k) for k in ("threads", "backend", "delegate")}
    pre = {k: opts[k] for k in ("mean", "std", "resize", "output_kind", "draft") if k in opts}  # explain, info
    if args.command == "bench":
        result = bench(args.model, runs=opts["runs"], warmup=opts["warmup"], batch=opts["batch"], quiet=quiet,
                       **model_opts)
        return _show(result, args.json, _print_bench, out)
    if args.command == "eval":
        from edgecls.runtime.corruptions import parse_corruptions, parse_severities
        from edgecls.runtime.evaluate import evaluate, print_summary

        corruptions = parse_corruptions(opts["corruptions"]) if opts["corruptions"] else ()
        severities = parse_severities(opts["severities"])  # checked even alone: a typo is not silently ignored
        report = evaluate(args.model, args.data, batch=opts["batch"], corruptions=corruptions, severities=severities,
                          **model_opts)
        return _show(report, args.json, print_summary, out)
    if args.command == "explain":
        from edgecls.runtime.explain import explain_paths

        return explain_paths(args.model, args.inputs, patch=opts["patch"], stride=opts["stride"],
                             out_dir=opts["out_dir"], as_json=opts["as_json"], labels=opts["labels"], out=out,
                             err=err, quiet=quiet, **model_opts, **pre)
    if args.command == "info":
        clf = load_classifier(args.model, labels=opts["labels"], require_labels=False, quiet=quiet, **model_opts,
                              **pre)
        return _show(clf.info(), args.json, _print_fields, out)
    if args.command == "backends":
        report = backends_report()
        for key, value in report.items():
            print(f"{key:<10} {value}", file=out)
        return 0 if report.get("selected") else 1
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses it first


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Parse and run; EdgeclsError becomes ``error: <message>`` on stderr and its exit code."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        return run(args, sys.stdout, sys.stderr)
    except EdgeclsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
