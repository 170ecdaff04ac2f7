"""Run a recipe's ``compress:`` stages in order, each a fine-tune under the training strategy.

Reads ``recipe.yaml``, ``split.json`` and ``train/model.keras`` (or an earlier
stage); writes ``compress/<stage>.keras`` (``.h5`` for QAT: tf_keras's .keras
format cannot reload tfmot's quantize layers) and ``compress/metrics.json``.
A stage whose output exists is skipped, so the command resumes.
"""
from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from pathlib import Path

from edgecls import fileio
from edgecls.errors import StageError, first_line
from edgecls.recipe import load_recipe
from edgecls.recipe.schema import CompressStage, Recipe
from edgecls.rundir import RunDir

log = logging.getLogger("edgecls.compress")


def stage_path(run: RunDir, stage: CompressStage) -> Path:
    return run.compress / f"{stage.name}{'.h5' if stage.kind == 'quantize' else '.keras'}"


def source_of(recipe: Recipe, index: int) -> str:
    stage = recipe.compress[index]
    return stage.source or (recipe.compress[index - 1].name if index else "train")


def model_path(run: RunDir, recipe: Recipe, name: str) -> Path:
    if name == "train":
        return run.model
    for stage in recipe.compress:
        if stage.name == name:
            return stage_path(run, stage)
    raise StageError(f"no stage named '{name}' in {run.recipe}")


def load_model(run: RunDir, recipe: Recipe, name: str):
    """The Keras model made by stage ``name`` ('train' or a compression stage) of a run."""
    path = model_path(run, recipe, name)
    if not path.exists():
        cmd = "edgecls train" if name == "train" else "edgecls compress"
        raise StageError(f"{path} not found: run `{cmd}` first")
    from edgecls._tf import keras, tfmot
    import edgecls.train.optim  # noqa: F401  (registers the learning-rate schedule for deserialization)

    try:
        if path.suffix == ".h5":
            with tfmot().quantization.keras.quantize_scope():
                return keras.models.load_model(str(path), compile=False)
        return keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError) as err:
        raise StageError(f"{path} cannot be loaded ({first_line(err)}); "
                         "it may be truncated: run the stage again with --force") from None


def _technique(kind: str):
    from edgecls.compress import cluster, prune, quantize

    return {"prune": prune, "cluster": cluster, "quantize": quantize}[kind]


def compress(run: RunDir, *, only: tuple[str, ...] = (), force: bool = False) -> dict:
    """Run the stages; returns compress/metrics.json's content."""
    if not run.recipe.exists():
        raise StageError(f"{run.recipe} not found: run `edgecls train` first")
    recipe = load_recipe(run.recipe)
    if not recipe.compress:
        raise StageError(f"{run.recipe} has no compress: stages")
    unknown = [n for n in only if n not in {s.name for s in recipe.compress}]
    if unknown:
        raise StageError(f"no compress stage named '{unknown[0]}'; stages: {', '.join(s.name for s in recipe.compress)}")
    if not run.model.exists():
        raise StageError(f"{run.model} not found: run `edgecls train` first")
    for i, stage in enumerate(recipe.compress):
        src = source_of(recipe, i)
        if src != "train" and next(s for s in recipe.compress if s.name == src).kind == "quantize":
            raise StageError(f"compress stage '{stage.name}' reads the QAT stage '{src}': QAT must come last "
                             "(use preserve: sparsity|clusters|both to combine)")

    metrics_path = run.compress / "metrics.json"
    report = fileio.read_json(metrics_path) if metrics_path.exists() else {}
    todo = [(i, s) for i, s in enumerate(recipe.compress) if not only or s.name in only]
    pending = []
    for i, stage in todo:
        if force or not stage_path(run, stage).exists() or stage.name not in report:
            pending.append((i, stage))
        else:
            log.info("compress: %s is done (%s); --force runs it again", stage.name, stage_path(run, stage))
    if not pending:
        return report

    from edgecls.train.strategy import build_strategy
    info = build_strategy(recipe.train)
    from edgecls._tf import keras
    from edgecls.data.run_data import load_run_data

    keras.utils.set_random_seed(recipe.seed)
    log.info(info.describe(recipe.train.batch_size))
    data = load_run_data(recipe, run)
    for i, stage in pending:
        t0 = time.perf_counter()
        entry = _run_stage(recipe, run, data, info, stage, source_of(recipe, i))
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report[stage.name] = entry
        if info.is_chief:
            fileio.write_json(metrics_path, report)
        log.info("compress: %s done: accuracy %.4f, %s", stage.name, entry["accuracy"],
                 f"sparsity {entry['sparsity']:.2%}" if "sparsity" in entry else stage.kind)
    keras.mixed_precision.set_global_policy("float32")
    return report


def _run_stage(recipe: Recipe, run: RunDir, data, info, stage: CompressStage, source: str) -> dict:
    from edgecls._tf import keras, tfmot
    from edgecls.compress import weights
    from edgecls.train.callbacks import EpochLog
    from edgecls.train.trainer import evaluate

    tech = _technique(stage.kind)
    if stage.kind == "prune" and stage.epochs < 1:
        raise StageError(f"compress stage '{stage.name}': pruning needs at least 1 epoch of fine-tuning")
    batch = recipe.train.batch_size
    steps = math.ceil(len(data.split["train"]) / batch)
    total = max(steps * stage.epochs, 1)
    lr = stage.learning_rate or recipe.train.optimizer.learning_rate / 10
    log.info("compress: %s (%s) from '%s', %d epoch(s) at lr %g", stage.name, stage.kind, source, stage.epochs, lr)
    with info.strategy.scope():
        base = load_model(run, recipe, source)
        model, wrap = tech.apply(base, stage.options, total_steps=total)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.train.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    if stage.epochs:
        val = data.dataset("validation", training=False, batch_size=batch) if len(data.split["validation"]) else None
        model.fit(data.dataset("train", training=True, batch_size=batch), validation_data=val, epochs=stage.epochs,
                  callbacks=[*tech.callbacks(wrap), EpochLog()], verbose=1 if sys.stderr.isatty() else 0)
    final = tech.strip(model)
    entry = {"kind": stage.kind, "source": source, "path": str(stage_path(run, stage).relative_to(run.root)),
             "epochs": stage.epochs, "learning_rate": lr, "layers_wrapped": wrap["wrapped"],
             "layers_left": wrap["left"]}
    entry.update(evaluate(final, data, batch_size=max(batch, 256)))
    entry.update(weights.sparsity_report(final))
    if stage.kind == "cluster" or (stage.kind == "quantize" and stage.options.preserve in ("clusters", "both")):
        entry.update(weights.unique_report(final))
    if info.is_chief:
        out = stage_path(run, stage)
        with fileio.atomic_path(out, suffix=out.suffix) as tmp:
            if out.suffix == ".h5":
                with tfmot().quantization.keras.quantize_scope(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "HDF5 is legacy": it is the format that reloads QAT
                    final.save(str(tmp), include_optimizer=False)
            else:
                final.save(str(tmp))
    return entry
