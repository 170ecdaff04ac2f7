"""The whole path in one call: train -> compress -> export -> bench, skipping what is current.

Each stage is the same public function its own command calls (edgecls.api),
reading and writing the run directory, so `edgecls run` resumes where it
stopped and redoes what a changed input made stale.
"""
from __future__ import annotations

import contextlib
import logging

from edgecls import api
from edgecls.recipe.schema import Recipe
from edgecls.run import Run

log = logging.getLogger("edgecls")


def run_all(recipe: Recipe, run: Run, *, device: str | None = "local", **bench_options):
    """Run every stage the recipe has; returns the bench report (the ExportRecord without a device)."""
    from edgecls.train.strategy import writes_run

    # One writer for the whole path, with no gap between stages for another to enter (multi-worker: the chief).
    with run.lock("run") if writes_run(recipe.train) else contextlib.nullcontext():
        log.info("== train")
        record = api.train(recipe, run, resume=True)  # a finished run is kept, an interrupted one continues
        if recipe.compress:
            log.info("== compress")
            api.compress(run)
        if not recipe.export:
            return record
        log.info("== export")
        exported = api.export(run)
        if not device:
            return exported
        log.info("== bench on %s", device)
        return api.bench(run, device, **bench_options)
