"""Run a recipe's ``export:`` list: convert, embed metadata, check parity, write ``export/``.

Reads ``recipe.yaml``, ``split.json`` and the source models (``train/`` or
``compress/``); writes ``export/<variant>.tflite``, ``labels.txt``,
``test.npz`` (the test split as a device sees it, for bench) and
``export.json`` (an ExportRecord). A variant whose record is current is
skipped (resumable); a stale one (its source model, the split or its recipe
entry changed) is converted again and the log says why.

``calibrate: temperature`` on an entry fits one softmax temperature T on the
validation split and bakes it into the graph (softmax(logits / T), see
:func:`edgecls.export.convert.with_temperature`), so every interpreter gets
calibrated probabilities; the record's ``calibration`` gives T and the test
ECE before and after.
"""
from __future__ import annotations

import gzip
import logging
import time
from typing import Callable

import numpy as np

from edgecls import fileio, metrics
from edgecls.errors import StageError
from edgecls.recipe import load_recipe
from edgecls.recipe.schema import ExportVariant, Recipe
from edgecls.run import ExportRecord, Run, VariantRecord, sha256_file

log = logging.getLogger("edgecls.export")

# calibrate: temperature. T is fitted to the Keras source's validation outputs for every mode. A quantized
# variant's logits are the source's up to quantization error, but its probabilities cannot give them back: a
# uint8 output is 0 for most classes, log(0) is clipped to -87, and the fitted T comes out absurd (digits LeNet:
# T 15.7, test ECE 0.08 -> 0.62 where the source's T 2.08 gives 0.03). ece_before is the test ECE without T:
# the source's for modes whose outputs equal it up to float error (free, already computed), else that of the
# variant converted once without T: a second conversion and test pass, which about doubles an int8 export
# (measured on digits: small_cnn 3.7 s -> 6.5 s, LeNet-5 2.5 s -> 4.5 s), the price of a before figure that
# is the variant's own (quantization alone moved the LeNet's test ECE from 0.090 to 0.083).
SOURCE_OUTPUTS = ("float32", "float16")


def export(run: Run, *, only: tuple[str, ...] = (), force: bool = False) -> ExportRecord:
    """Export the variants that are missing or stale (all of ``only`` with ``force``); returns export.json's record."""
    run = Run.open(run.root)
    with run.lock("export"):
        return _export(run, only, force)


def _export(run: Run, only: tuple[str, ...], force: bool) -> ExportRecord:
    recipe = load_recipe(run.recipe)
    if not recipe.export:
        raise StageError(f"{run.recipe} has no export: variants")
    names = [v.name for v in recipe.export]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise StageError(f"no export variant named '{unknown[0]}'; variants: {', '.join(names)}")

    old = run.exported()
    done = {v.name: v for v in old.variants} if old else {}
    rows = {(r.kind, r.name): r for r in run.status(recipe)}  # the one judgement of staleness
    todo, blocked = [], []
    for v in recipe.export:
        if only and v.name not in only:
            continue
        row, src = rows[("variant", v.name)], rows.get(("stage", v.source))
        if src is not None and src.state != "done":  # a stale compressed model would ship what no record describes
            blocked.append(f"'{v.name}' reads compress stage '{v.source}', which is {src.state}"
                           f"{f' ({src.why})' if src.why else ''}")
            continue
        why = ("--force" if force else "not exported yet" if row.state == "missing" else
               row.why if row.state != "done" else None)
        if why:
            if row.state != "missing" and not force:
                log.info("export: %s is stale (%s); converting it again", v.name, why)
            todo.append(v)
        else:
            log.info("export: %s is done; --force converts it again", v.name)
    if not todo and run.test_split.is_file() and old is not None:
        if recipe.data.slices:
            _refresh_slices(recipe, run)
        _refuse(blocked, run)
        return old

    from edgecls.data.run_data import load_run_data

    data = load_run_data(recipe, run)
    to_calibrate = [v for v in todo if v.calibrate == "temperature"]
    if to_calibrate and not len(data.split["validation"]):
        raise StageError(f"export variant '{to_calibrate[0].name}': calibrate: temperature fits on the validation "
                         f"split, and {run.split} has no validation images (data.splits.validation: "
                         f"{recipe.data.splits.validation}); give it a fraction > 0 and train again, or use "
                         "calibrate: none")
    # float_layers: auto chooses layers by validation accuracy (choosing by test accuracy would tune to the test);
    # named layers are scored on validation too where there is one, else on test (nothing is chosen by it).
    to_choose = [v for v in todo if v.float_layers]
    has_val = bool(len(data.split["validation"]))
    if any(v.float_layers == "auto" for v in to_choose) and not has_val:
        auto = next(v for v in to_choose if v.float_layers == "auto")
        raise StageError(f"export variant '{auto.name}': float_layers: auto chooses layers by validation "
                         f"accuracy, and {run.split} has no validation images (data.splits.validation: "
                         f"{recipe.data.splits.validation}); give it a fraction > 0 and train again, or name the "
                         "layers")
    labels = data.labels("test")
    test_pixels = np.ascontiguousarray(data.pixels("test", channels=3), dtype=np.uint8)
    # Slices (slice_<attribute>: the source's attributes, data.slices' columns) and object boxes, for bench;
    # read before anything is written, so a bad slice CSV leaves the earlier export as it was.
    annotations = data.test_annotations()
    fileio.write_text(run.labels, "\n".join(data.class_names) + "\n")
    with fileio.atomic_path(run.test_split, suffix=".npz") as tmp:
        np.savez(tmp, pixels=test_pixels, labels=np.asarray(labels, dtype=np.int64),
                 class_names=np.array([str(n) for n in data.class_names], dtype=str), **annotations)
    x_test = data.arrays("test")[0] if todo else None
    x_val, y_val = data.arrays("validation") if to_calibrate or (to_choose and has_val) else (None, None)
    val_pixels = data.pixels("validation", channels=3) if to_choose and has_val else None

    calibrated = [v for v in todo if v.mode in ("int8", "int16x8")]
    train_pixels = data.pixels("train", channels=3) if calibrated else None
    models, refs, val_refs = {}, {}, {}
    report = ExportRecord(recipe=recipe.name, variants=[done[n] for n in names if n in done],
                          input={"size": list(recipe.data.image_size), "channels": 3, "pixels": "RGB 0..255",
                                 "resize": recipe.data.resize})
    for v in todo:
        if v.source not in models:
            models[v.source] = run.load_model(recipe, v.source)
            refs[v.source] = models[v.source].predict(x_test, batch_size=256, verbose=0)
        if (v.calibrate == "temperature" or (v.float_layers and has_val)) and v.source not in val_refs:
            val_refs[v.source] = models[v.source].predict(x_val, batch_size=256, verbose=0)
        t0 = time.perf_counter()
        rep_idx = Run.calibration_indices(recipe, len(data.split["train"]), v.representative_samples)
        rep = train_pixels[rep_idx] if v in calibrated else None
        made_from = run.made_from(Run.variant_sections(recipe, v), [run.model_file(recipe, v.source), run.split])
        if v.target == "onnx":
            rec = export_onnx(recipe, run, v, models[v.source], refs[v.source], test_pixels, labels)
        else:
            choose = None if not v.float_layers else ("validation", val_pixels, y_val, val_refs[v.source]) \
                if has_val else ("test", test_pixels, labels, refs[v.source])
            rec = export_variant(recipe, run, v, models[v.source], refs[v.source], test_pixels, labels,
                                 data.class_names, rep,
                                 (y_val, val_refs[v.source]) if v.calibrate == "temperature" else None, choose)
        rec.seconds = round(time.perf_counter() - t0, 1)
        rec.made_from = made_from
        done[v.name] = rec
        report.variants = [done[n] for n in names if n in done]
        fileio.write_json(run.export_json, report.to_json())
        cal = rec.calibration
        if rec.float_layers and rec.float_layers.get("spec") == "auto" and not rec.float_layers.get("target_met"):
            fl = rec.float_layers
            log.warning("export: %s: float_layers %s did not reach the target: best %s accuracy %.4f with %d "
                        "layer(s) float, target %.4f (float %.4f); raise max_float_layers or max_accuracy_drop",
                        v.name, fl.get("spec"), fl.get("scored_on", "validation"), fl["accuracy"],
                        len(fl.get("layers", [])), fl["target"], fl["float_accuracy"])
        log.info("export: %-14s %-8s %8s B  accuracy %.4f  agreement %.4f  max|diff| %.4f%s%s", v.name, v.mode,
                 f"{rec.size_bytes:,}", rec.accuracy, rec.top1_agreement, rec.max_abs_diff,
                 "" if rec.fully_integer or v.mode != "int8" else
                 f"  float layers: {', '.join(rec.float_layers['layers']) or 'none'}" if rec.float_layers else
                 "  NOT fully integer",
                 f"  ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} (T {cal['temperature']:g})" if cal else "")
    if not todo:
        fileio.write_json(run.export_json, report.to_json())
    _refuse(blocked, run)
    return report


def _refresh_slices(recipe: Recipe, run: Run) -> None:
    """A slice CSV edited in place (same path, so every variant is current): its groups go into test.npz,
    whose new hash then makes earlier bench reports stale, instead of old groups passing as current."""
    from edgecls.data.run_data import load_run_data

    fresh = load_run_data(recipe, run).test_annotations()
    with np.load(run.test_split, allow_pickle=False) as npz:
        saved = {k: npz[k] for k in npz.files}
    kept = {k: v for k, v in saved.items() if not k.startswith("slice_") and k != "boxes"}
    if set(fresh) == set(saved) - set(kept) and all(np.array_equal(fresh[k], saved[k]) for k in fresh):
        return
    with fileio.atomic_path(run.test_split, suffix=".npz") as tmp:
        np.savez(tmp, **kept, **fresh)
    log.info("export: %s changed since test.npz was written; its slices are updated", recipe.data.slices)


def _refuse(blocked: list[str], run: Run) -> None:
    """After the variants that could be exported: an error for those whose compressed source is stale."""
    if blocked:
        more = f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""
        raise StageError(f"export variant {blocked[0]}{more}: run `edgecls compress {run.root}` first")


def export_variant(recipe: Recipe, run: Run, v: ExportVariant, model, reference: np.ndarray,
                   test_pixels: np.ndarray, labels: np.ndarray, class_names, representative,
                   validation: tuple[np.ndarray, np.ndarray] | None = None,
                   choose: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> VariantRecord:
    """Convert one variant. ``validation`` (calibrate: temperature): the validation labels and the source's
    probabilities for them, to fit the temperature baked into the variant's softmax. ``choose``
    (float_layers): the split's name, pixels, labels and the source's probabilities, to choose and score by."""
    from edgecls.export.convert import ExportError, convert, with_pixel_input, with_temperature
    from edgecls.export.metadata import add_metadata
    from edgecls.export.ops import op_report
    from edgecls.export.parity import compare, tflite_probs
    from edgecls.runtime.metadata import ModelMetadata

    d = recipe.data
    rep = None if representative is None else representative.astype(np.float32)
    selective: dict = {}

    def to_tflite(keras_model) -> bytes:
        wrapped = with_pixel_input(keras_model, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std)
        try:
            if v.float_layers:
                blob, selective["record"] = _selective(v, wrapped, rep, choose)
                return blob
            return convert(wrapped, v.mode, input_type=v.input_type, output_type=v.output_type,
                           per_channel=v.per_channel, representative=rep)
        except ExportError as err:
            raise ExportError(f"export variant '{v.name}' ({v.source}, {v.mode}): {err}") from None

    calibration = None
    if validation is None:
        raw = to_tflite(model)
    else:
        val_labels, val_probs = validation
        temperature = float(f"{metrics.fit_temperature(val_labels, val_probs):.4g}")  # the T the graph gets
        try:
            calibrated = with_temperature(model, temperature)
        except ExportError as err:
            raise ExportError(f"export variant '{v.name}' ({v.source}): {err}") from None
        calibration = calibration_record(v, model, temperature, len(val_labels), reference, test_pixels, labels,
                                         to_tflite)
        raw = to_tflite(calibrated)
        # Parity is against what the graph computes: the source's probabilities at the same temperature.
        reference = metrics.apply_temperature(reference, temperature)
    ops = op_report(raw)
    if v.target == "micro":  # before anything is written: an op TFLite Micro lacks leaves the export as it was
        from edgecls.export.micro import check_micro

        check_micro(raw, f"export variant '{v.name}'")
    extra = {"recipe": recipe.name, "model": recipe.model.label, "source": v.source, "mode": v.mode,
             "trained_channels": d.channels, "normalization": {"mean": list(d.normalize.mean),
                                                               "std": list(d.normalize.std)}}
    if calibration:
        extra["temperature"] = calibration["temperature"]
    if selective:
        extra["float_layers"] = list(selective["record"].get("layers", []))
    meta = ModelMetadata(
        name=f"{recipe.name}-{v.name}", version="1",
        description=f"{recipe.model.label} trained by edgecls recipe '{recipe.name}', exported as {v.mode}"
                    + (f", probabilities calibrated (temperature {calibration['temperature']:g})"
                       if calibration else ""),
        labels=tuple(class_names), color_space="RGB", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        output_kind="probabilities", resize=d.resize, extra=extra)
    blob = add_metadata(raw, meta)
    probs = tflite_probs(blob, test_pixels)
    parity = compare(reference, probs, labels, class_names)
    if calibration:
        calibration["ece_after"] = metrics.expected_calibration_error(labels, probs)
    micro = None
    if v.target == "micro":
        from edgecls.export.micro import c_sources, micro_record

        micro = micro_record(blob, test_pixels, probs, labels)
        sources = c_sources(blob, v.name, arena_bytes=micro["arena_bytes"], labels=list(class_names))
    float_layers = selective.get("record")
    if float_layers is not None:
        float_layers["cost"] = _selective_cost(v, blob, model, recipe, representative, test_pixels, probs, labels)
    path = fileio.write_bytes(run.variant(v.name), blob)
    _remove(run.onnx(v.name))  # what an earlier target of this entry wrote would outlive its record
    if micro is not None:
        for file, text in zip(run.micro_sources(v.name), sources):
            fileio.write_text(file, text)
        micro["sources"] = {run.rel(f): sha256_file(f) for f in run.micro_sources(v.name)}
    else:
        _remove(*run.micro_sources(v.name))
    return VariantRecord(
        name=v.name, source=v.source, mode=v.mode, per_channel=v.per_channel, path=run.rel(path),
        size_bytes=len(blob), gzip_bytes=len(gzip.compress(blob, 9)),
        accuracy=parity["accuracy"], source_accuracy=parity["source_accuracy"],
        top1_agreement=parity["top1_agreement"], max_abs_diff=parity["max_abs_diff"],
        mean_abs_diff=parity["mean_abs_diff"], fully_integer=ops["fully_integer"],
        float_ops=ops["float_ops"], input_dtype=ops["input_dtype"], output_dtype=ops["output_dtype"],
        ops=ops["ops"], metrics={"metrics": parity["metrics"]}, output_sha256=sha256_file(path),
        calibration=calibration, target=v.target, float_layers=float_layers,
        arena_bytes=micro["arena_bytes"] if micro else None,
        micro_agreement=micro["agreement"] if micro else None, micro=micro)


def _selective(v: ExportVariant, wrapped, representative: np.ndarray, choose) -> tuple[bytes, dict]:
    """float_layers: int8 with the named (or, for auto, the debugger's worst) layers kept in float."""
    from edgecls.export.parity import tflite_probs
    from edgecls.export.quantdebug import selective_int8

    split, pixels, split_labels, source_probs = choose

    def evaluate(blob: bytes) -> float:
        return metrics.accuracy(split_labels, tflite_probs(blob, pixels).argmax(1))

    blob, record = selective_int8(wrapped, representative, v.float_layers, per_channel=v.per_channel,
                                  input_type=v.input_type, output_type=v.output_type, evaluate=evaluate,
                                  float_accuracy=metrics.accuracy(split_labels, source_probs.argmax(1)),
                                  max_accuracy_drop=v.max_accuracy_drop, max_float_layers=v.max_float_layers)
    record["scored_on"] = split  # the split whose accuracies the record's accuracy figures are
    return blob, record


def _selective_cost(v: ExportVariant, blob: bytes, model, recipe: Recipe, representative, test_pixels: np.ndarray,
                    probs: np.ndarray, labels: np.ndarray) -> dict:
    """What keeping layers float cost against the same variant fully int8: size, test accuracy and latency on
    this host, measured side by side (one thread, the runtime's timing)."""
    import tempfile
    from pathlib import Path

    from edgecls.export.convert import convert, with_pixel_input
    from edgecls.export.parity import tflite_probs
    from edgecls.runtime.timing import measure

    d = recipe.data
    wrapped = with_pixel_input(model, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std)
    plain = convert(wrapped, "int8", input_type=v.input_type, output_type=v.output_type, per_channel=v.per_channel,
                    representative=representative.astype(np.float32))
    with tempfile.TemporaryDirectory(prefix="edgecls-cost-") as tmp:
        files = {"int8": Path(tmp, "int8.tflite"), "selective": Path(tmp, "selective.tflite")}
        files["int8"].write_bytes(plain)
        files["selective"].write_bytes(blob)
        ms = {k: measure(f, num_threads=1, runs=50, warmup=5).p50_ms for k, f in files.items()}
    int8_accuracy = metrics.accuracy(labels, tflite_probs(plain, test_pixels).argmax(1))
    return {"int8_size_bytes": len(plain), "size_bytes": len(blob), "size_ratio": round(len(blob) / len(plain), 4),
            "int8_p50_ms_host": round(ms["int8"], 4), "p50_ms_host": round(ms["selective"], 4),
            "latency_ratio": round(ms["selective"] / ms["int8"], 3) if ms["int8"] else None,
            "int8_accuracy": int8_accuracy, "accuracy": metrics.accuracy(labels, probs.argmax(1))}


def calibration_record(v: ExportVariant, model, temperature: float, images: int, reference: np.ndarray,
                       test_pixels: np.ndarray, labels: np.ndarray, to_tflite: Callable[[object], bytes]) -> dict:
    """The record's ``calibration`` but for ``ece_after`` (the calibrated variant's, added by the caller).

    T was fitted to the source's outputs on the validation split (``fitted_to``); ``ece_before`` is measured
    on the test split, on the outputs named by ``ece_before_of``: "source" (the Keras model, for
    SOURCE_OUTPUTS modes) or "variant" (this variant converted without T).
    """
    from edgecls.export.parity import tflite_probs

    if v.mode in SOURCE_OUTPUTS:
        test_probs, whose = reference, "source"
    else:
        test_probs, whose = tflite_probs(to_tflite(model), test_pixels), "variant"
    return {"method": "temperature", "temperature": temperature, "fitted_on": "validation", "fitted_to": "source",
            "images": int(images), "ece_before": metrics.expected_calibration_error(labels, test_probs),
            "ece_before_of": whose}


def export_onnx(recipe: Recipe, run: Run, v: ExportVariant, model, reference: np.ndarray, test_pixels: np.ndarray,
                labels: np.ndarray) -> VariantRecord:
    """target: onnx: the float model through tf2onnx, its parity checked in onnxruntime on the test split."""
    from edgecls.export.convert import with_pixel_input
    from edgecls.export.onnx import onnx_record

    d = recipe.data  # (a QAT source is refused when the recipe loads: see Recipe.__post_init__)
    wrapped = with_pixel_input(model, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std)
    blob, parity = onnx_record(wrapped, test_pixels, reference, labels)
    path = fileio.write_bytes(run.onnx(v.name), blob)
    _remove(run.variant(v.name), *run.micro_sources(v.name))  # an earlier target's files
    return VariantRecord(
        name=v.name, source=v.source, mode=v.mode, per_channel=v.per_channel, path=run.rel(path),
        size_bytes=len(blob), gzip_bytes=len(gzip.compress(blob, 9)), accuracy=parity["accuracy"],
        source_accuracy=metrics.accuracy(labels, reference.argmax(1)), top1_agreement=parity["top1_agreement"],
        max_abs_diff=parity["max_abs_diff"], mean_abs_diff=parity.get("mean_abs_diff", 0.0), fully_integer=False,
        input_dtype="float32", output_dtype="float32", output_sha256=sha256_file(path), target="onnx", onnx=parity)


def _remove(*paths) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
