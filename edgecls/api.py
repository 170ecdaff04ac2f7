"""The stages as a user calls them from Python; the CLI, ``edgecls run`` and benchmarks/ call these too.

Each function takes what a user has at hand (a Recipe or a recipe's path or
bundled name; a Run or a run directory's path) and returns the typed record
the stage wrote. TensorFlow loads only inside the stages that train.

``edgecls.train``, ``edgecls.compress``, ``edgecls.export`` and
``edgecls.bench`` are also the subpackages that implement them; each of those
packages is callable (:func:`callable_package`), so ``edgecls.train(recipe)``
works however much of the package has been imported.
"""
from __future__ import annotations

import contextlib
import sys
import types
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Sequence

from edgecls.run import ExportRecord, Run, StageRecord, StatusRow, TrainRecord

# Recipes already checked by an enclosing call (run_all, the CLI): the stages it calls do not read the data,
# weights and backbone a second time. Per context, so threads and later calls check for themselves.
_CHECKED: ContextVar[tuple] = ContextVar("edgecls_checked", default=())


def _checked(recipe, overrides: Sequence[str] = (), *, device=None):
    """The Recipe (a Recipe, a path or a bundled name), with what it points at checked before any work
    (edgecls.recipe.preflight): the recipe's mistakes and those of its data, weights, backbone and
    ``device`` in one RecipeError."""
    from edgecls.recipe.preflight import load_checked, preflight
    from edgecls.recipe.schema import Recipe

    if isinstance(recipe, Recipe):
        if overrides:
            from edgecls.errors import UsageError

            raise UsageError("overrides go with a recipe file or name; a Recipe object is already resolved")
        if device is None and any(r is recipe for r in _CHECKED.get()):
            return recipe
        preflight(recipe, device=device)
        return recipe
    return load_checked(recipe, list(overrides), device=device)


@contextlib.contextmanager
def checked(recipe, overrides: Sequence[str] = (), *, device=None) -> Iterator:
    """The Recipe, checked once (see :func:`train`); the API calls inside the block do not check it again."""
    rec = _checked(recipe, overrides, device=device)
    token = _CHECKED.set((*_CHECKED.get(), rec))
    try:
        yield rec
    finally:
        _CHECKED.reset(token)


def _run(run) -> Run:
    return run if isinstance(run, Run) else Run(Path(run))


def run_for(recipe, run_dir=None) -> Run:
    """``run_dir`` as a Run, or ``runs/<recipe name>`` when it is None."""
    return _run(run_dir) if run_dir is not None else Run.for_recipe(recipe.name)


def train(recipe, run_dir=None, *, overrides: Sequence[str] = (), resume: bool = False,
          force: bool = False) -> TrainRecord:
    """Train a recipe into its run directory (default ``runs/<name>``); returns train/metrics.json's record.

    ``resume`` continues an interrupted run (and keeps a finished one); ``force`` trains again, replacing
    train/ only once the new model is about to train. What the recipe points at (data, weights, backbone)
    is checked first (edgecls.recipe.preflight): every problem in one RecipeError, before any work.
    """
    from edgecls.train.trainer import train as _train

    rec = _checked(recipe, overrides)
    return _train(rec, run_for(rec, run_dir), resume=resume, force=force)


def compress(run, *, stages: Sequence[str] = (), force: bool = False) -> dict[str, StageRecord]:
    """Run the recipe's compression stages that are missing or stale; returns every stage's record."""
    from edgecls.compress.stages import compress as _compress

    return _compress(_run(run), only=tuple(stages), force=force)


def export(run, *, variants: Sequence[str] = (), force: bool = False) -> ExportRecord:
    """Convert the recipe's TFLite variants that are missing or stale; returns export.json's record."""
    from edgecls.export.stage import export as _export

    return _export(_run(run), only=tuple(variants), force=force)


def bench(run, device="local", *, threads=None, runs: int | None = None, warmup: int | None = None,
          out_dir=None, plots: bool = True, corruptions=None, severities=None, explain_images: int = 8) -> dict:
    """Score and time every exported variant on a device (a name in devices/, a path or a DeviceRecipe).

    ``corruptions`` ("jpeg,contrast", "all" or a list) at ``severities`` (1..5, default 1,3,5) add accuracy on
    corrupted test images; ``explain_images`` test images give the drift report's explanation agreement."""
    from edgecls.bench.run import run_bench

    return run_bench(_run(run), device, threads=threads, runs=runs, warmup=warmup, out_dir=out_dir, plots=plots,
                     corruptions=corruptions, severities=severities, explain_images=explain_images)


def quantdebug(run, variant: str) -> dict:
    """Per-layer int8 quantization error of an int8 export variant's source model (TFLite's
    QuantizationDebugger, calibrated on the images export calibrates with): layers ranked by RMSE / scale,
    and the ones to keep in float. Writes ``export/<variant>.quantdebug.json`` and ``.png``; returns the record."""
    from edgecls.export.quantdebug import quantdebug as _quantdebug

    r = Run.open(_run(run).root)
    with r.lock(f"quantdebug --variant {variant}"):
        return _quantdebug(r, variant)


def explain(run, inputs: Sequence, *, variants: Sequence[str] = (), method: str = "occlusion",
            layer: str | None = None, out_dir=None, patch: int | None = None, stride: int | None = None) -> dict:
    """Saliency maps of the run's models for image files and folders: a PNG panel and a JSON record per image.

    ``method``: "occlusion" (every exported variant, or ``variants``, and the float model 'train') or
    "gradcam" (Keras models: 'train', compress stages, or export variants meaning their Keras source).
    Writes ``out_dir`` (default RUN/explain/) and returns its index.json: mean agreement with 'train' per
    model, and the images that failed (``complete`` False).
    """
    from edgecls.explain.stage import explain as _explain

    return _explain(_run(run), inputs, variants=variants, method=method, layer=layer, out_dir=out_dir,
                    patch=patch, stride=stride)


def status(run) -> list[StatusRow]:
    """Every stage, variant and bench report of a run: done, stale (and why), missing or failed."""
    return Run.open(_run(run).root).status()


def run_all(recipe, run_dir=None, *, overrides: Sequence[str] = (), device: str | None = "local",
            **bench_options):
    """Train, compress, export and bench, skipping what is current; returns the bench report
    (the ExportRecord with ``device=None``; the TrainRecord when the recipe exports nothing).
    ``bench_options``: :func:`bench`'s corruptions, severities, explain_images."""
    from edgecls.bench.run import parse_quality
    from edgecls.flow import run_all as _run_all

    parse_quality(**bench_options)  # a bad option is one line now, not after an hour of training
    with checked(recipe, overrides, device=device) as rec:  # so are the recipe, its data, weights and the device
        return _run_all(rec, run_for(rec, run_dir), device=device, **bench_options)


def callable_package(module_name: str, function: str) -> None:
    """Make the package ``module_name`` callable as this module's ``function``.

    ``import edgecls.train.trainer`` binds ``edgecls.train`` to the package (Python's import system sets
    the attribute), so the API function and the package must be one object: the package, callable.
    """
    module = sys.modules[module_name]
    target = globals()[function]

    class CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return target(*args, **kwargs)

    CallablePackage.__call__.__doc__ = target.__doc__
    module.__class__ = CallablePackage
