"""``edgecls bench``: every exported variant, scored for accuracy and timed on one device.

Reads ``export/export.json``, ``export/*.tflite`` and ``export/test.npz`` (the
test images: no data source, no TensorFlow); writes ``bench/<device>/``: report.json,
report.csv, report.md, pareto.png and confusion-<variant>.png. The steps:

1. open the device (connect; check its Python, numpy and interpreter
   package): a failure here is one line naming device and step, and nothing
   is written;
2. stage the runtime zipapp, the models and the test split on it;
3. per variant and delegate: the accuracy on the test split with all cores
   (on the device; on this host for adb), then the latency per thread count,
   each in a fresh process;
4. rows that fail say why in their status; the others are measured.

A ``connect: micro`` device (a microcontroller board) skips all that: its rows are the ``target: micro``
variants' TFLite Micro figures from export.json against the board's flash and RAM budgets
(:mod:`edgecls.bench.micro`); nothing runs on the board. Other devices skip ``target: onnx`` variants.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edgecls import __version__, fileio
from edgecls.bench import accuracy as acc
from edgecls.bench import drift
from edgecls.bench import latency as lat
from edgecls.bench import micro
from edgecls.bench.report import mark_front, plots_skipped, summarize, write_report
from edgecls.devices import DeviceRecipe, StepFailed, load_device, make_runner
from edgecls.errors import StageError, UsageError, first_line
from edgecls.progress import bar
from edgecls.recipe.typed import to_plain
from edgecls.run import BenchRow, Run, VariantRecord
from edgecls.runtime.options import MAX_THREADS

log = logging.getLogger("edgecls.bench")


def parse_threads(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'1,2,4' -> (1, 2, 4); None stays None; anything else is a UsageError."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            raise UsageError(f"--threads takes comma-separated positive integers, e.g. 1,2,4; got {text!r}") from None
    else:
        values = tuple(int(v) for v in text)
    if not values or any(not 1 <= v <= MAX_THREADS for v in values):
        raise UsageError(f"--threads takes comma-separated integers from 1 to {MAX_THREADS}, e.g. 1,2,4; "
                         f"got {text!r}")
    return tuple(dict.fromkeys(values))


def _variants(run: Run, device: DeviceRecipe) -> list[VariantRecord]:
    exported = run.exported()
    if exported is None:
        raise StageError(f"{run.export_json} not found: run `edgecls export {run.root}` first")
    chosen = [v for v in exported.variants if any(fnmatch.fnmatchcase(v.name, p) for p in device.variants)]
    if not chosen:
        names = ", ".join(v.name for v in exported.variants) or "none"
        raise StageError(f"no exported variant of {run.root} matches the device's variants "
                         f"({', '.join(device.variants)}); exported: {names}")
    if device.connect == "micro":  # a board takes only what was exported for TFLite Micro
        for_micro = [v for v in chosen if v.target == "micro"]
        if not for_micro:
            raise StageError(f"device '{device.name}' is a microcontroller and {run.root} has no export variant with "
                             "target: micro; add one to the recipe's export, e.g. {name: int8_micro, source: train, "
                             "mode: int8, target: micro}, and run `edgecls export` again")
        return for_micro
    onnx = [v.name for v in chosen if v.target == "onnx"]
    if onnx:  # micro variants are plain .tflite files and stay; ONNX files are no interpreter's input here
        log.info("bench: skipping %s (target: onnx, not a .tflite model)", ", ".join(onnx))
        chosen = [v for v in chosen if v.target != "onnx"]
        if not chosen:
            raise StageError(f"every exported variant of {run.root} the device's variants match is an ONNX model "
                             f"({', '.join(onnx)}); bench measures .tflite variants")
    return chosen


def _model_file(run: Run, entry: VariantRecord, suffix: str) -> Path:
    path = run.root / entry.path
    return path.with_name(f"{path.stem}{suffix}{path.suffix}") if suffix else path


def _missing_reason(path: Path, run: Run, suffix: str) -> str:
    rel = os.path.relpath(path, run.root)
    if suffix == "_edgetpu":
        return (f"model: {rel} not found: compile it with the Edge TPU compiler, "
                f"edgetpu_compiler -o {run.export} {path.with_name(path.name.replace(suffix, ''))}")
    return f"model: {rel} not found (run edgecls export again)"


@dataclass(frozen=True)
class Quality:
    """What bench measures besides top-1 and latency: corrupted copies of the test split (on the device) and
    how many test images the explanation agreement of the drift report uses (on this host; 0 = none)."""

    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = ()
    explain_images: int = 8


def parse_quality(corruptions: str | Sequence[str] | None = None, severities: str | Sequence[int] | None = None,
                  explain_images: int = 8) -> Quality:
    """--corruptions/--severities as a Quality (UsageError, one line, for unknown names or severities)."""
    from edgecls.runtime.corruptions import DEFAULT_SEVERITIES, parse_corruptions, parse_severities

    names = parse_corruptions(corruptions if isinstance(corruptions, str) else ",".join(corruptions)) \
        if corruptions else ()
    if severities is not None and not names:
        raise UsageError("--severities needs --corruptions (which corruptions to apply at those severities)")
    if not names:
        levels = ()
    elif severities is None:
        levels = DEFAULT_SEVERITIES
    else:
        levels = parse_severities(severities if isinstance(severities, str) else ",".join(map(str, severities)))
    if not 0 <= int(explain_images) <= 10_000:
        raise UsageError(f"--explain-images takes 0 to 10000 test images, got {explain_images}")
    return Quality(names, levels, int(explain_images))


def run_bench(run_dir: str | os.PathLike, device: str | os.PathLike | DeviceRecipe = "local", *,
              threads: Sequence[int] | str | None = None, runs: int | None = None, warmup: int | None = None,
              out_dir: str | os.PathLike | None = None, plots: bool = True,
              corruptions: str | Sequence[str] | None = None, severities: str | Sequence[int] | None = None,
              explain_images: int = 8) -> dict:
    """Benchmark every exported variant of ``run_dir`` on ``device`` (a name, a recipe path or a DeviceRecipe).

    ``threads``/``runs``/``warmup`` override the device recipe's. ``corruptions`` (names of
    :data:`edgecls.runtime.corruptions.CORRUPTIONS`) at ``severities`` (1..5; default 1,3,5) add accuracy
    under each corruption; ``explain_images`` test images give the drift report's explanation agreement.
    Returns the report (also written to ``bench/<device>/report.json``). Raises DeviceError
    when the device cannot be used at all, StageError when the run has no export.
    """
    run = Run.open(run_dir.root if isinstance(run_dir, Run) else run_dir)
    dev = device if isinstance(device, DeviceRecipe) else load_device(device)
    thread_counts = parse_threads(threads) or dev.threads
    runs = dev.runs if runs is None else int(runs)
    warmup = dev.warmup if warmup is None else int(warmup)
    if runs < 1 or warmup < 0:
        raise UsageError(f"--runs must be >= 1 and --warmup >= 0 (got {runs}, {warmup})")
    quality = parse_quality(corruptions, severities, explain_images)
    if dev.connect == "micro" and quality.corruptions:
        raise UsageError(f"--corruptions needs a device that runs the models; '{dev.name}' is a microcontroller "
                         "(bench checks its budgets from export.json)")
    with run.lock(f"bench --device {dev.name}"):
        return _bench(run, dev, thread_counts, runs, warmup, out_dir, plots, quality)


def _bench(run: Run, dev: DeviceRecipe, thread_counts, runs: int, warmup: int, out_dir, plots: bool,
           quality: Quality) -> dict:
    entries = _variants(run, dev)
    # Timing a file its record no longer describes would report numbers for another model. Inputs that
    # are not here (a copy of export/ on a device host) cannot be checked; a changed one is proof.
    for e in entries:
        why = run.stale_because(e, None, run.root / e.path, missing_ok=True) if e.made_from else None
        if why:
            raise StageError(f"export variant '{e.name}' is stale ({why}); run `edgecls export {run.root}` first")
    out = Path(out_dir) if out_dir else run.bench(dev.name)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if dev.connect == "micro":
        return _bench_micro(run, dev, entries, out, created)

    models: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for e in entries:
        path = _model_file(run, e, dev.model_suffix)
        if path.is_file():
            models[e.name] = path
        else:
            missing[e.name] = _missing_reason(path, run, dev.model_suffix)

    with tempfile.TemporaryDirectory(prefix="edgecls-bench-") as tmp:
        from edgecls.runtime.pack import build_zipapp

        split = acc.read_test_split(run)
        pyz = build_zipapp(Path(tmp) / "edgecls-runtime.pyz")
        log.info("bench: %d variant(s) of %s on %s (%s); test split %d images; threads %s; %d runs after %d "
                 "warm-up", len(entries), run.root, dev.name, dev.where, split.size,
                 ",".join(map(str, thread_counts)), runs, warmup)
        runner = make_runner(dev)
        evaluator = runner if runner.evaluates_on_device else acc.host_runner(dev)
        with contextlib.ExitStack() as stack:
            stack.enter_context(runner)  # closes (cleans the device up) however this block ends
            info = runner.open()
            log.info("bench: %s: %s", dev.name, _describe(info))
            on_device = runner.evaluates_on_device
            runner.stage(models, split.path if on_device else None, pyz if on_device else None)
            if not on_device:
                stack.enter_context(evaluator)
                evaluator.open()
                evaluator.stage(models, split.path, pyz)
            rows, evaluations = _measure(dev, runner, evaluator, entries, models, missing, thread_counts, runs,
                                         warmup, quality)

    mark_front(rows)
    report = {
        "device": dev.name, "connect": dev.connect, "where": dev.where, "device_info": info,
        "device_recipe": to_plain(dev), "run_dir": str(run.root), "recipe": run.exported().recipe,
        # What the figures were measured on: a re-export makes this report stale (edgecls status).
        "made_from": run.made_from({}, [split.path, *(run.root / e.path for e in entries)]).to_json(),
        "created": created, "edgecls_version": __version__, "threads": list(thread_counts), "runs": runs,
        "warmup": warmup, "test_images": split.size, "class_names": list(split.class_names),
        "accuracy_on": "device" if runner.evaluates_on_device else "host",
        "corruptions": {"names": list(quality.corruptions), "severities": list(quality.severities)},
        # The quality figures (PR, reliability, slices, corruptions, drift) compare variants on one delegate,
        # the device's first: across delegates they would measure the delegate, not the compression.
        "quality_delegate": dev.delegates[0] if runner.evaluates_on_device else "xnnpack",
        **summarize(rows), "rows": rows, "evaluations": evaluations,
    }
    # References are looked up among all exported variants: a device that times only *int8* says the float32
    # exists but was not measured here, rather than that there is none. (An ONNX file is no bench reference.)
    variants = [v.to_json() for v in run.exported().variants if v.target != "onnx"]
    # Explanations run on this host, on the plain .tflite files (a device's own build, e.g. _edgetpu, may not).
    host_models = {e.name: run.root / e.path for e in entries if (run.root / e.path).is_file()}
    report["drift"] = drift.drift_report(quality_evaluations(report), variants, agreement=_agreement(
        host_models, variants, split.path, quality.explain_images))
    report["plots"] = _plots(out, report) if plots else _drop_plots(out, "plots=False")
    _write_quality(out, report, variants)
    write_report(out, report)
    report["out_dir"] = str(out)
    state = "complete" if report["complete"] else f"INCOMPLETE: {report['rows_failed']} of {report['rows_total']} " \
                                                  "rows failed"
    log.info("bench: %s -> %s (%s)", dev.name, out / "report.json", state)
    return report


def _bench_micro(run: Run, dev: DeviceRecipe, entries: list[VariantRecord], out: Path, created: str) -> dict:
    """A microcontroller: one row per micro variant, its export figures against the board's budgets."""
    rows = []
    for e in entries:
        path = _model_file(run, e, dev.model_suffix)
        rows.append(micro.fit_row(e, dev, path if path.is_file() else None,
                                  None if path.is_file() else _missing_reason(path, run, dev.model_suffix)))
        micro.log_row(rows[-1])
    mark_front(rows)  # no row has a latency: none is on the front
    measured = [run.root / e.path for e in entries if (run.root / e.path).is_file()]
    split = run.test_split
    report = {
        "device": dev.name, "connect": dev.connect, "where": dev.where, "device_info": micro.budgets(dev),
        "device_recipe": to_plain(dev), "run_dir": str(run.root), "recipe": run.exported().recipe,
        # The verdicts come from the model bytes and from export.json's arena (a re-export with another
        # tflite-micro changes it for the same bytes): either changing makes this report stale; so does the
        # board's budget (Run.status compares device_info with the board's recipe now).
        "made_from": run.made_from({}, [*([split] if split.is_file() else []), run.export_json,
                                        *measured]).to_json(),
        "created": created, "edgecls_version": __version__, "threads": [], "runs": None, "warmup": None,
        "test_images": max((r["images"] or 0 for r in rows), default=0) or None, "class_names": [],
        "accuracy_on": micro.ACCURACY_ON, "corruptions": {"names": [], "severities": []}, "quality_delegate": None,
        **summarize(rows), "rows": rows, "evaluations": [], "drift": None,
        "plots": _drop_plots(out, micro.NO_PLOTS),
    }
    for name in _QUALITY_FILES:  # an earlier benchmark's, which would pass for this report's
        if (out / name).exists():
            (out / name).unlink()
    write_report(out, report, markdown=micro.to_markdown(report))
    report["out_dir"] = str(out)
    fit = sum(1 for r in rows if r["fits"])
    log.info("bench: %s -> %s (%d of %d variant(s) fit)", dev.name, out / "report.json", fit, len(rows))
    return report


def _describe(info: dict) -> str:
    parts = [info.get("model") or info.get("hostname"), info.get("system"), info.get("machine") or info.get("abi"),
             f"{info['cpu_count']} cores" if info.get("cpu_count") else None,
             f"Python {info['python']}" if info.get("python") else None,
             f"numpy {info['numpy']}" if info.get("numpy") else None,
             f"{info.get('backend')} {info.get('backend_version') or ''}".strip() if info.get("backend") else None]
    return ", ".join(str(p) for p in parts if p)


def _measure(dev, runner, evaluator, entries, models, missing, thread_counts, runs, warmup, quality: Quality):
    with bar(total=len(entries) * len(dev.delegates) * (1 + len(thread_counts)), desc=f"bench {dev.name}",
             unit="step") as steps:
        def logged(n: int, level: int, msg: str, *args) -> None:
            """A step's one log line, then the bar moves (cleared first: the line is not drawn over it)."""
            steps.clear()
            log.log(level, msg, *args)
            steps.update(n)

        return _measure_steps(dev, runner, evaluator, entries, models, missing, thread_counts, runs, warmup,
                              quality, logged)


def _measure_steps(dev, runner, evaluator, entries, models, missing, thread_counts, runs, warmup, quality: Quality,
                   logged):
    rows: list[dict] = []
    evaluations: list[dict] = []
    done: dict[tuple, dict] = {}
    total = len(entries) * len(dev.delegates) * (1 + len(thread_counts))
    step = 0
    for e in entries:
        name = e.name
        size = os.path.getsize(models[name]) if name in models else e.size_bytes
        for delegate in dev.delegates:
            base = {"variant": name, "mode": e.mode, "delegate": delegate, "device": dev.name,
                    "size_bytes": size, "accuracy_on": "device" if evaluator is runner else "host"}
            if name in missing:
                step += 1 + len(thread_counts)
                logged(1 + len(thread_counts), logging.INFO, "bench: [%d/%d] %s: %s", step, total, name,
                       missing[name])
                for t in thread_counts:
                    rows.append(BenchRow(**base, threads=t, **acc.row_fields(None), **lat.row_fields(None),
                                         status=f"failed: {missing[name]}").to_json())
                continue
            step += 1
            acc_error = None
            report = None
            key = (name, delegate if evaluator is runner else None)  # on the host: one CPU evaluation per variant
            try:
                if key not in done:
                    done[key] = evaluator.evaluate(name, delegate=key[1], corruptions=quality.corruptions,
                                                   severities=quality.severities)
                    evaluations.append({"variant": name, "delegate": key[1] or "xnnpack",
                                        "on": base["accuracy_on"], **acc.summary(done[key])})
                report = done[key]
                logged(1, logging.INFO, "bench: [%d/%d] %s%s: accuracy %.4f, macro-F1 %.4f, ECE %.4f (%d images, "
                       "%s process(es), %.2f s%s)", step, total, name, _d(delegate, dev), report["accuracy"],
                       report["macro_f1"], report["ece"], report["num_examples"], report.get("workers"),
                       report.get("seconds", 0), "" if evaluator is runner else ", on this host")
            except StepFailed as err:
                acc_error = f"{err.step}: {err.reason}"
                logged(1, logging.WARNING, "bench: [%d/%d] %s%s: accuracy FAILED: %s", step, total, name,
                       _d(delegate, dev), err.reason)
            for t in thread_counts:
                step += 1
                result, lat_error = None, None
                try:
                    result = runner.latency(name, threads=t, runs=runs, warmup=warmup, delegate=delegate)
                    p = result.get("p50_ms")
                    logged(1, logging.INFO, "bench: [%d/%d] %s%s threads=%d: %s %.4g ms, init %.3g ms%s", step,
                           total, name, _d(delegate, dev), t, "p50" if p is not None else "mean",
                           p if p is not None else result["mean_ms"], result.get("init_ms") or 0,
                           f", peak {result['peak_rss_mb']:.0f} MiB" if result.get("peak_rss_mb") else "")
                except StepFailed as err:
                    lat_error = f"{err.step}: {err.reason}"
                    logged(1, logging.WARNING, "bench: [%d/%d] %s%s threads=%d: latency FAILED: %s", step,
                           total, name, _d(delegate, dev), t, err.reason)
                errors = [x for x in (acc_error, lat_error) if x]
                rows.append(BenchRow(**base, threads=t, **acc.row_fields(report), **lat.row_fields(result),
                                     status="ok" if not errors else "failed: " + "; ".join(errors)).to_json())
    return rows, evaluations


def _d(delegate: str, dev: DeviceRecipe) -> str:
    return "" if len(dev.delegates) == 1 and delegate == "xnnpack" else f" [{delegate}]"


def _agreement(models: dict[str, Path], variants: list[dict], split: Path, images: int) -> dict | None:
    """Occlusion-map agreement of each variant with its float reference on the first ``images`` test images,
    on this host (the runtime's interpreter): the drift report's "what does it look at now" figure."""
    pairs = {v["name"]: ref for v in variants if (ref := drift.reference_for(v, variants))
             and v["name"] in models and ref in models}
    if not images or not pairs:
        return None
    import numpy as np

    with np.load(split, allow_pickle=False) as npz:
        pixels = npz["pixels"][:images]
    log.info("bench: explanation agreement of %d variant(s) with their float reference on %d test image(s)",
             len(pairs), len(pixels))
    try:
        return drift.explanation_agreement({n: models[n] for n in {*pairs, *pairs.values()}}, pairs, pixels,
                                           images=images)
    except Exception as err:  # noqa: BLE001 - a figure of the drift report, not worth the benchmark
        log.warning("bench: explanation agreement not computed: %s", first_line(err))
        return None


# Files of the quality report that a later benchmark without those figures must not leave behind (plots: _plots).
_QUALITY_FILES = ("drift.json", "drift.md", "slices.md")


def quality_evaluations(report: dict) -> list[dict]:
    """The evaluations the quality figures compare: one per variant, on the report's quality delegate."""
    wanted = report.get("quality_delegate")
    return [ev for ev in report["evaluations"] if wanted is None or ev.get("delegate") == wanted]


_PLOTS = ("pareto.png", "confusion-*.png", "reliability-*.png", "pr_curves.png", "slices.png", "corruptions.png",
          "drift.png")


def _drop_plots(out: Path, why: str) -> dict:
    """No plots this time: remove the earlier report's, which would pass for this one's."""
    for pattern in _PLOTS:
        for path in out.glob(pattern):
            path.unlink()
    return {"skipped": why}


def _write_quality(out: Path, report: dict, variants: list[dict]) -> None:
    """drift.json and drift.md always; slices.md when the test split has slices; older files removed."""
    from edgecls.bench.quality import slices_markdown

    written = {"drift.json", "drift.md"}
    fileio.write_json(out / "drift.json", {"device": report["device"], "run_dir": report["run_dir"],
                                           "created": report["created"], "made_from": report["made_from"],
                                           **report["drift"]})
    fileio.write_text(out / "drift.md", drift.drift_markdown(report["drift"], report["class_names"]))
    evaluations = quality_evaluations(report)
    if any(ev.get("slices") for ev in evaluations):
        refs = {v["name"]: r for v in variants if (r := drift.reference_for(v, variants))}
        fileio.write_text(out / "slices.md", slices_markdown(evaluations, reference=refs))
        written.add("slices.md")
    for name in _QUALITY_FILES:
        if name not in written and (out / name).exists():
            (out / name).unlink()


def _plots(out: Path, report: dict) -> dict:
    try:
        from edgecls.bench.plots import confusion_plot, pareto_plot
    except ImportError as err:  # pragma: no cover - matplotlib is in edgecls[plot]
        return _drop_plots(out, plots_skipped(err)["skipped"])
    result: dict = {"confusion": {}}
    try:
        result.update(_quality_plots(out, report))
        path = pareto_plot(report["rows"], out / "pareto.png",
                           title=f"{report.get('recipe') or 'run'} on {report['device']}: accuracy vs latency")
        result["pareto"] = path.name if path else None
        if path is None and (out / "pareto.png").exists():
            (out / "pareto.png").unlink()  # an older plot would pass for this report's
        wanted = set()
        for ev in report["evaluations"]:
            if ev["variant"] in result["confusion"] or "confusion_matrix" not in ev:
                continue
            name = f"confusion-{ev['variant']}.png"
            confusion_plot(ev["confusion_matrix"], report["class_names"], out / name,
                           title=f"{ev['variant']} on {report['device']}: accuracy {ev['accuracy']:.4f}")
            result["confusion"][ev["variant"]] = name
            wanted.add(name)
        for stale in out.glob("confusion-*.png"):  # variants no longer exported
            if stale.name not in wanted:
                stale.unlink()
    except ImportError as err:
        return _drop_plots(out, plots_skipped(err)["skipped"])
    return result


def _quality_plots(out: Path, report: dict) -> dict:
    """PR curves, reliability diagrams, slices, corruptions and drift as PNGs (each only when measured)."""
    from edgecls.bench import quality

    evaluations, where = quality_evaluations(report), f"on {report['device']}"
    made: dict = {"reliability": {}}
    figures = {
        "pr_curves": lambda p: quality.pr_curves_plot(evaluations, report["class_names"], p,
                                                      title=f"precision-recall per variant {where}"),
        "slices": lambda p: quality.slices_plot(evaluations, p, title=f"accuracy per slice {where}"),
        "corruptions": lambda p: quality.corruption_plot(evaluations, p, title=f"accuracy under corruption {where}"),
        "drift": lambda p: drift.drift_plot(report["drift"], p, title=f"what compression changed {where}"),
    }
    for key, draw in figures.items():
        path = draw(out / f"{key}.png")
        made[key] = path.name if path else None
        if path is None and (out / f"{key}.png").exists():
            (out / f"{key}.png").unlink()  # an older plot would pass for this report's
    wanted = set()
    for ev in evaluations:
        if ev["variant"] in made["reliability"]:
            continue
        path = quality.reliability_plot(ev, out / f"reliability-{ev['variant']}.png",
                                        title=f"{ev['variant']} {where}: reliability")
        if path:
            made["reliability"][ev["variant"]] = path.name
            wanted.add(path.name)
    for stale in out.glob("reliability-*.png"):
        if stale.name not in wanted:
            stale.unlink()
    return made
