"""Run a recipe's ``export:`` list: convert, embed metadata, check parity, write ``export/``.

Reads ``recipe.yaml``, ``split.json`` and the source models (``train/`` or
``compress/``); writes ``export/<variant>.tflite``, ``labels.txt`` and
``export.json``. A variant whose file and entry exist is skipped (resumable).
"""
from __future__ import annotations

import gzip
import logging
import time

import numpy as np

from edgecls import fileio
from edgecls.errors import StageError
from edgecls.recipe import load_recipe
from edgecls.recipe.schema import ExportVariant, Recipe
from edgecls.rundir import RunDir

log = logging.getLogger("edgecls.export")


def export_json(run: RunDir):
    return run.export / "export.json"


def read_export(run: RunDir) -> dict:
    path = export_json(run)
    return fileio.read_json(path) if path.exists() else {"variants": []}


def export(run: RunDir, *, only: tuple[str, ...] = (), force: bool = False) -> dict:
    """Export the variants; returns export.json's content."""
    if not run.recipe.exists():
        raise StageError(f"{run.recipe} not found: run `edgecls train` first")
    recipe = load_recipe(run.recipe)
    if not recipe.export:
        raise StageError(f"{run.recipe} has no export: variants")
    names = [v.name for v in recipe.export]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise StageError(f"no export variant named '{unknown[0]}'; variants: {', '.join(names)}")

    report = read_export(run)
    done = {e["name"]: e for e in report["variants"]}
    todo = [v for v in recipe.export if (not only or v.name in only)
            and (force or v.name not in done or not (run.export / f"{v.name}.tflite").exists())]
    for v in recipe.export:
        if v not in todo and (not only or v.name in only):
            log.info("export: %s is done; --force converts it again", v.name)
    if not todo:
        return report

    from edgecls.compress.stages import load_model
    from edgecls.data.run_data import load_run_data

    data = load_run_data(recipe, run)
    labels = data.labels("test")
    test_pixels = data.pixels("test", channels=3)
    x_test, _ = data.arrays("test")
    fileio.write_text(run.export / "labels.txt", "\n".join(data.class_names) + "\n")

    calibrated = [v for v in todo if v.mode in ("int8", "int16x8")]
    train_pixels = data.pixels("train", channels=3) if calibrated else None
    models, refs = {}, {}
    for v in todo:
        if v.source not in models:
            models[v.source] = load_model(run, recipe, v.source)
            refs[v.source] = models[v.source].predict(x_test, batch_size=256, verbose=0)
        t0 = time.perf_counter()
        n_rep = min(v.representative_samples, len(data.split["train"]))
        # The same calibration images for a variant however many others are exported with it.
        rep_idx = np.sort(np.random.default_rng(recipe.seed).choice(len(data.split["train"]), n_rep, replace=False))
        rep = train_pixels[rep_idx] if v in calibrated else None
        entry = export_variant(recipe, run, v, models[v.source], refs[v.source], test_pixels, labels,
                               data.class_names, rep)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        done[v.name] = entry
        report = {"recipe": recipe.name, "labels": "labels.txt",
                  "input": {"size": list(recipe.data.image_size), "channels": 3, "pixels": "RGB 0..255",
                            "resize": recipe.data.resize},
                  "variants": [done[n] for n in names if n in done]}
        fileio.write_json(export_json(run), report)
        log.info("export: %-14s %-8s %8s B  accuracy %.4f  agreement %.4f  max|diff| %.4f%s", v.name, v.mode,
                 f"{entry['size_bytes']:,}", entry["accuracy"], entry["top1_agreement"], entry["max_abs_diff"],
                 "" if entry["fully_integer"] or v.mode != "int8" else "  NOT fully integer")
    return report


def export_variant(recipe: Recipe, run: RunDir, v: ExportVariant, model, reference: np.ndarray,
                   test_pixels: np.ndarray, labels: np.ndarray, class_names, representative) -> dict:
    from edgecls.export.convert import ExportError, convert, with_pixel_input
    from edgecls.export.metadata import add_metadata
    from edgecls.export.ops import op_report
    from edgecls.export.parity import compare, tflite_probs
    from edgecls.runtime.metadata import ModelMetadata

    d = recipe.data
    wrapped = with_pixel_input(model, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std)
    try:
        raw = convert(wrapped, v.mode, input_type=v.input_type, output_type=v.output_type, per_channel=v.per_channel,
                      representative=None if representative is None else representative.astype(np.float32))
    except ExportError as err:
        raise ExportError(f"export variant '{v.name}' ({v.source}, {v.mode}): {err}") from None
    ops = op_report(raw)
    meta = ModelMetadata(
        name=f"{recipe.name}-{v.name}", version="1",
        description=f"{recipe.model.label} trained by edgecls recipe '{recipe.name}', exported as {v.mode}",
        labels=tuple(class_names), color_space="RGB", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        output_kind="probabilities", resize=d.resize,
        extra={"recipe": recipe.name, "model": recipe.model.label, "source": v.source, "mode": v.mode,
               "trained_channels": d.channels, "normalization": {"mean": list(d.normalize.mean),
                                                                 "std": list(d.normalize.std)}})
    blob = add_metadata(raw, meta)
    probs = tflite_probs(blob, test_pixels)
    parity = compare(reference, probs, labels, class_names)
    path = fileio.write_bytes(run.export / f"{v.name}.tflite", blob)
    return {
        "name": v.name, "source": v.source, "mode": v.mode, "per_channel": v.per_channel,
        "path": str(path.relative_to(run.root)),
        "size_bytes": len(blob), "gzip_bytes": len(gzip.compress(blob, 9)),
        "accuracy": parity["accuracy"], "source_accuracy": parity["source_accuracy"],
        "top1_agreement": parity["top1_agreement"], "max_abs_diff": parity["max_abs_diff"],
        "mean_abs_diff": parity["mean_abs_diff"], "fully_integer": ops["fully_integer"],
        "float_ops": ops["float_ops"], "input_dtype": ops["input_dtype"], "output_dtype": ops["output_dtype"],
        "ops": ops["ops"], "metrics": parity["metrics"],
    }
