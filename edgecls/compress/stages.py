"""Run a recipe's ``compress:`` stages in order, each a fine-tune under the training strategy.

Reads ``recipe.yaml``, ``split.json`` and ``train/model.keras`` (or an earlier
stage); writes ``compress/<stage>.keras`` (``.h5`` for QAT: tf_keras's .keras
format cannot reload tfmot's quantize layers) and ``compress/metrics.json``.
A stage whose record is current (same recipe section, same source model and
split, its model file unchanged) is skipped, so the command resumes; a stale
one is run again and the log says why.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import warnings

from edgecls import fileio
from edgecls.errors import StageError
from edgecls.recipe import load_recipe
from edgecls.recipe.schema import CompressStage, Recipe
from edgecls.run import Run, StageRecord, sha256_file

log = logging.getLogger("edgecls.compress")


def _technique(kind: str):
    from edgecls.compress import cluster, prune, quantize

    return {"prune": prune, "cluster": cluster, "quantize": quantize}[kind]


def compress(run: Run, *, only: tuple[str, ...] = (), force: bool = False) -> dict[str, StageRecord]:
    """Run the stages that are missing or stale (all of ``only`` with ``force``); returns every stage's record."""
    from edgecls.train.strategy import reset_precision, writes_run

    run = Run.open(run.root)
    chief = writes_run(load_recipe(run.recipe).train)  # multi-worker: every worker runs this, the chief writes
    with (run.lock("compress") if chief else contextlib.nullcontext()):
        try:
            return _compress(run, only, force)
        finally:
            reset_precision()


def _compress(run: Run, only: tuple[str, ...], force: bool) -> dict[str, StageRecord]:
    recipe = load_recipe(run.recipe)
    if not recipe.compress:
        raise StageError(f"{run.recipe} has no compress: stages")
    unknown = [n for n in only if n not in {s.name for s in recipe.compress}]
    if unknown:
        raise StageError(f"no compress stage named '{unknown[0]}'; stages: {', '.join(s.name for s in recipe.compress)}")
    if not run.model.exists():
        raise StageError(f"{run.model} not found: run `edgecls train` first")
    for i, stage in enumerate(recipe.compress):
        src = recipe.stage_source(i)
        if src != "train" and next(s for s in recipe.compress if s.name == src).kind == "quantize":
            raise StageError(f"compress stage '{stage.name}' reads the QAT stage '{src}': QAT must come last "
                             "(use preserve: sparsity|clusters|both to combine)")

    records = run.stages()
    state = {r.name: r for r in run.status(recipe) if r.kind == "stage"}  # the one judgement of staleness
    todo = [(i, s) for i, s in enumerate(recipe.compress) if not only or s.name in only]
    redo: set[str] = set()  # stages run now: those reading them are stale too, whatever their files say
    pending = []
    for i, stage in todo:
        row, out, src = state[stage.name], run.stage_model(stage.name, stage.kind), recipe.stage_source(i)
        why = ("--force" if force else f"its source '{src}' is compressed again" if src in redo else
               "not run yet" if row.state == "missing" else row.why if row.state != "done" else None)
        if why:
            if row.state != "missing" and not force:
                log.info("compress: %s is stale (%s); running it again", stage.name, why)
            pending.append((i, stage))
            redo.add(stage.name)
        else:
            log.info("compress: %s is done (%s); --force runs it again", stage.name, run.rel(out))
    if not pending:
        return records

    from edgecls.train.strategy import build_strategy
    info = build_strategy(recipe.train)
    from edgecls._tf import keras
    from edgecls.data.run_data import load_run_data

    keras.utils.set_random_seed(recipe.seed)
    log.info(info.describe(recipe.train.batch_size))
    data = load_run_data(recipe, run)
    for i, stage in pending:
        t0 = time.perf_counter()
        rec = _run_stage(recipe, run, data, info, stage, recipe.stage_source(i))
        rec.seconds = round(time.perf_counter() - t0, 1)
        records[stage.name] = rec
        if info.is_chief:
            run.save_stages(records)
        log.info("compress: %s done: accuracy %.4f, %s", stage.name, rec.accuracy,
                 f"sparsity {rec.metrics['sparsity']:.2%}" if "sparsity" in rec.metrics else stage.kind)
    return records


def _run_stage(recipe: Recipe, run: Run, data, info, stage: CompressStage, source: str) -> StageRecord:
    from edgecls._tf import keras, tfmot
    from edgecls.compress import weights
    from edgecls.train.callbacks import EpochLog

    tech = _technique(stage.kind)
    if stage.kind == "prune" and stage.epochs < 1:
        raise StageError(f"compress stage '{stage.name}': pruning needs at least 1 epoch of fine-tuning")
    batch = recipe.train.batch_size
    steps = math.ceil(len(data.split["train"]) / batch)
    total = max(steps * stage.epochs, 1)
    lr = stage.learning_rate or recipe.train.optimizer.learning_rate / 10
    log.info("compress: %s (%s) from '%s', %d epoch(s) at lr %g", stage.name, stage.kind, source, stage.epochs, lr)
    source_file = run.model_file(recipe, source)
    made_from = run.made_from(Run.stage_sections(recipe, stage), [source_file, run.split])
    with info.strategy.scope():
        base = run.load_model(recipe, source)
        model, wrap = tech.apply(base, stage.options, total_steps=total)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.train.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    if stage.epochs:
        val = data.dataset("validation", training=False, batch_size=batch) if len(data.split["validation"]) else None
        model.fit(data.dataset("train", training=True, batch_size=batch), validation_data=val, epochs=stage.epochs,
                  callbacks=[*tech.callbacks(wrap), EpochLog()], verbose=1 if sys.stderr.isatty() else 0)
    final = tech.strip(model)
    figures = data.evaluate(final, batch_size=max(batch, 256))
    figures.update(weights.sparsity_report(final))
    if stage.kind == "cluster" or (stage.kind == "quantize" and stage.options.preserve in ("clusters", "both")):
        figures.update(weights.unique_report(final))
    out = run.stage_model(stage.name, stage.kind)
    rec = StageRecord(name=stage.name, kind=stage.kind, source=source, path=run.rel(out), metrics=figures,
                      epochs=stage.epochs, learning_rate=lr, layers_wrapped=wrap["wrapped"], layers_left=wrap["left"],
                      made_from=made_from)
    if info.is_chief:
        with fileio.atomic_path(out, suffix=out.suffix) as tmp:
            if out.suffix == ".h5":
                with tfmot().quantization.keras.quantize_scope(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "HDF5 is legacy": it is the format that reloads QAT
                    final.save(str(tmp), include_optimizer=False)
            else:
                final.save(str(tmp))
        rec.output_sha256 = sha256_file(out)
    return rec
