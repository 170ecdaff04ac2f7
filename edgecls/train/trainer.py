"""Train a recipe into its run directory: split, fit, checkpoint, evaluate on the test split.

Writes (chief only, holding the run's lock) ``recipe.yaml``, ``split.json`` and ``train/``:
``model.keras``, ``checkpoints/``, ``history.csv``, ``metrics.json`` (a TrainRecord), ``tensorboard/``.
``--force`` deletes nothing until the new recipe has validated, the data has loaded and the new
model is built: a mistake in the new recipe leaves the old run as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecls import fileio
from edgecls.errors import StageError
from edgecls.recipe import diff_recipes, load_recipe, save_recipe
from edgecls.recipe.schema import Recipe, TrainConfig
from edgecls.run import Run, TrainRecord, sha256_file

log = logging.getLogger("edgecls.train")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One model.fit: epochs [first_epoch, first_epoch + epochs), with what is trainable and the peak rate."""

    first_epoch: int
    epochs: int
    unfreeze: int | str | None = None  # None: leave trainable flags as built (plain training)
    learning_rate: float | None = None  # None: train.optimizer.learning_rate


def plan_phases(cfg: TrainConfig) -> list[Phase]:
    """train.finetune as fit calls; without it, one phase of train.epochs.

    A phase without its own rate takes train.optimizer's for the first phase and a
    tenth of it after (the Keras transfer-learning guide's low rate for fine-tuning).
    """
    if not cfg.finetune:
        return [Phase(0, cfg.epochs)]
    phases, first = [], 0
    for i, p in enumerate(cfg.finetune):
        rate = p.learning_rate or (None if i == 0 else cfg.optimizer.learning_rate / 10)
        phases.append(Phase(first, p.epochs, p.unfreeze, rate))
        first += p.epochs
    return phases


def check_run_dir(recipe: Recipe, run: Run, *, resume: bool, force: bool) -> bool:
    """Decide what to do with an existing run directory. Returns True when training is already complete."""
    if force:
        return False  # the old train/ goes only when the new model is about to train (see _discard)
    if run.recipe.exists():
        saved = load_recipe(run.recipe)
        # Only what training reads must match; new compress: or export: entries are the later stages'
        # business (their records make what changed stale).
        changed = [k for k in diff_recipes(saved, recipe) if k.split(".")[0] in Run.train_sections(recipe)]
        if changed and (resume or run.model.exists() or run.has_backup()):
            raise StageError(f"{run.root} was made from a different recipe (changed: {', '.join(changed[:5])}); "
                             "use another --run-dir, or --force to start over")
    if run.model.exists():
        if resume:
            return True
        raise StageError(f"{run.model} exists: this run is trained. Use --resume to keep it, "
                         "--force to train again, or another --run-dir")
    if run.has_backup() and not resume:
        raise StageError(f"{run.root} holds an interrupted run; pass --resume to continue it or --force to start over")
    return False


def _class_weights(recipe: Recipe, labels: np.ndarray, class_names: tuple[str, ...]) -> dict[int, float] | None:
    cw = recipe.train.class_weights
    if cw == "none":
        return None
    k = len(class_names)
    if cw == "balanced":
        counts = np.bincount(labels, minlength=k).astype(float)
        return {i: float(len(labels) / (k * c)) if c else 0.0 for i, c in enumerate(counts)}
    unknown = [n for n in cw if n not in class_names]
    if unknown:
        raise StageError(f"train.class_weights: no class named '{unknown[0]}'; classes: {', '.join(class_names)}")
    return {i: float(cw.get(name, 1.0)) for i, name in enumerate(class_names)}


def _discard(run: Run) -> None:
    """--force: the old training goes (its model, checkpoints, backup, history, split). Compressed and
    exported models stay; their records name the old model's hash, so they show as stale."""
    shutil.rmtree(run.train, ignore_errors=True)
    run.split.unlink(missing_ok=True)


def train(recipe: Recipe, run: Run, *, resume: bool = False, force: bool = False) -> TrainRecord:
    """Train ``recipe`` into ``run``; returns the TrainRecord (also train/metrics.json).

    The chief holds the run's lock for the whole of it: a second writer fails at once.
    """
    from edgecls.train.strategy import reset_precision, writes_run

    with (run.lock("train") if writes_run(recipe.train) else contextlib.nullcontext()):
        try:
            return _train(recipe, run, resume=resume, force=force)
        finally:
            reset_precision()


def _train(recipe: Recipe, run: Run, *, resume: bool, force: bool) -> TrainRecord:
    if check_run_dir(recipe, run, resume=resume, force=force):
        rec = run.training()
        if rec is not None:
            log.info("%s is already trained; nothing to do", run.model)
            if diff_recipes(load_recipe(run.recipe), recipe):  # compress:/export: changed: the run takes them
                save_recipe(recipe, run.recipe)
            return rec
        raise StageError(f"{run.model} exists but {run.train_metrics} does not: the run was cut short while "
                         "saving; train again with --force")

    # The strategy first: logical CPU devices must be set before TensorFlow uses any device.
    from edgecls.train.strategy import StrategyError, build_strategy
    info = build_strategy(recipe.train)

    from edgecls._tf import keras, tf
    from edgecls.data.run_data import load_run_data
    from edgecls.models.transfer import freeze_backbone
    from edgecls.train.callbacks import EpochCheckpoint, EpochLog, HistoryCSV
    from edgecls.train.start import build_model
    from edgecls.train.optim import build_optimizer, build_schedule

    keras.utils.set_random_seed(recipe.seed)
    if recipe.train.deterministic:
        tf.config.experimental.enable_op_determinism()

    # A saved split is kept only to resume trained work; otherwise it is made anew (the seed makes the same one
    # from the same recipe), so a split.json left by a start that failed never outlives the recipe it came from.
    fresh = force or not run.has_backup()
    data = load_run_data(recipe, run, make_split=True, write=False, fresh=fresh)
    split, k = data.split, data.num_classes
    log.info("split: %s", ", ".join(f"{name} {len(v)}" for name, v in split.items()))
    class_weight = _class_weights(recipe, data.labels("train"), data.class_names)

    batch = recipe.train.batch_size
    train_ds = data.dataset("train", training=True, batch_size=batch)
    val_ds = data.dataset("validation", training=False, batch_size=batch) if len(split["validation"]) else None
    steps = math.ceil(len(split["train"]) / batch)
    log.info(info.describe(batch))

    d = recipe.data
    input_shape = (*d.image_size, d.channels)
    opt_cfg = recipe.train.optimizer
    if recipe.train.scale_lr and info.replicas > 1:  # the linear scaling rule; pair it with warm-up
        opt_cfg = dataclasses.replace(opt_cfg, learning_rate=opt_cfg.learning_rate * info.replicas)
        log.info("learning rate scaled by %d replicas to %g", info.replicas, opt_cfg.learning_rate)
    phases = plan_phases(recipe.train)

    def compile_phase(model, phase: Phase) -> None:
        cfg = dataclasses.replace(opt_cfg, learning_rate=phase.learning_rate or opt_cfg.learning_rate)
        opt = build_optimizer(cfg, build_schedule(cfg, recipe.train.schedule, steps, phase.epochs))
        model_metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if k >= 5:
            model_metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
        model.compile(optimizer=opt,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.train.label_smoothing),
                      metrics=model_metrics, jit_compile=recipe.train.jit_compile,
                      steps_per_execution=recipe.train.steps_per_execution)

    with info.strategy.scope():
        model = build_model(recipe, k, input_shape)
    log.info("model: %s, %s parameters, input %s", recipe.model.label, f"{model.count_params():,}", input_shape)

    if info.is_chief:  # the new recipe, data and model are sound: now the run becomes this recipe's
        if force:
            _discard(run)
        if fresh:
            data.save_split(run.split)
        save_recipe(recipe, run.recipe)
    run.train.mkdir(parents=True, exist_ok=True)
    callbacks = [
        EpochCheckpoint(run.checkpoints, keep=recipe.train.checkpoints_to_keep, enabled=info.is_chief),
        HistoryCSV(run.history, enabled=info.is_chief),
        EpochLog(),
    ]
    # Non-chief workers log TensorBoard to a private folder: all workers must run the same ops.
    tb_dir = run.tensorboard if info.is_chief else Path(tempfile.mkdtemp(prefix="edgecls-worker-tb-"))
    callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tb_dir), write_graph=False))
    es = recipe.train.early_stopping
    if es.patience:
        monitor = es.monitor if val_ds is not None else es.monitor.removeprefix("val_")
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=es.patience, min_delta=es.min_delta,
                                                       restore_best_weights=es.restore_best))
    t0 = time.perf_counter()
    for i, phase in enumerate(phases):
        # A finished phase leaves its weights in the backup folder: a resumed run skips it.
        done = run.backup / f"phase-{i + 1}-done.weights.h5"
        if len(phases) > 1 and done.is_file():
            model.load_weights(str(done))
            log.info("phase %d/%d was done before the interruption; its weights are loaded", i + 1, len(phases))
            continue
        with info.strategy.scope():
            if phase.unfreeze is not None:
                trainable = freeze_backbone(model, None if phase.unfreeze == 0 else
                                            (10**9 if phase.unfreeze == "all" else phase.unfreeze))
                log.info("phase %d/%d: %d epoch(s) at lr %g, backbone %s; %d trainable weight tensors", i + 1,
                         len(phases), phase.epochs, phase.learning_rate or opt_cfg.learning_rate,
                         "frozen" if phase.unfreeze == 0 else f"unfrozen: {phase.unfreeze}", trainable)
            compile_phase(model, phase)
        backup = run.backup if len(phases) == 1 else run.backup / f"phase-{i + 1}"
        try:
            model.fit(train_ds, validation_data=val_ds, initial_epoch=phase.first_epoch,
                      epochs=phase.first_epoch + phase.epochs,
                      callbacks=[keras.callbacks.BackupAndRestore(backup_dir=str(backup)), *callbacks],
                      class_weight=class_weight, verbose=1 if sys.stderr.isatty() else 0)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as err:
            if recipe.train.strategy != "multi_worker":
                raise
            raise StrategyError(f"a worker stopped answering ({type(err).__name__}); restart every worker with "
                                "--resume: training goes on from the last epoch's backup", hard_exit=True) from None
        if len(phases) > 1 and i + 1 < len(phases):
            if info.is_chief:
                with fileio.atomic_path(done, suffix=".weights.h5") as tmp:
                    model.save_weights(str(tmp))
            else:
                with tempfile.TemporaryDirectory(prefix="edgecls-worker-") as tmp:
                    model.save_weights(str(Path(tmp) / "w.weights.h5"))
    train_seconds = time.perf_counter() - t0
    if info.is_chief:  # BackupAndRestore empties its folder at the end; drop the folder too
        shutil.rmtree(run.backup, ignore_errors=True)

    record = TrainRecord(metrics=data.evaluate(model, batch_size=max(batch, 256)),
                         train_seconds=round(train_seconds, 2), replicas=info.replicas)
    if info.is_chief:
        with fileio.atomic_path(run.model, suffix=".keras") as tmp:
            model.save(str(tmp))
        record.output_sha256 = sha256_file(run.model)
        record.made_from = run.made_from(Run.train_sections(recipe), [run.split])
        fileio.write_json(run.train_metrics, record.to_json())
    else:  # every worker takes part in saving (collective reads); only the chief's copy is kept
        with tempfile.TemporaryDirectory(prefix="edgecls-worker-") as tmp:
            model.save(str(Path(tmp) / "model.keras"))
        shutil.rmtree(tb_dir, ignore_errors=True)
    return record
