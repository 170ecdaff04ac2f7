"""The whole path in one call: train -> compress -> export -> bench, skipping what is already done.

Each stage is the same plain function its own command calls, reading and
writing the run directory, so `edgecls run` resumes where it stopped.
"""
from __future__ import annotations

import logging

from edgecls.recipe.schema import Recipe
from edgecls.rundir import RunDir

log = logging.getLogger("edgecls")


def run_all(recipe: Recipe, run: RunDir, *, device: str | None = "local") -> dict:
    """Run every stage the recipe has; returns the bench report (or the export report without a device)."""
    from edgecls.train.trainer import train

    log.info("== train")
    train(recipe, run, resume=True)  # a finished run is kept, an interrupted one continues
    if recipe.compress:
        from edgecls.compress.stages import compress

        log.info("== compress")
        compress(run)
    if not recipe.export:
        return {}
    from edgecls.export.stage import export

    log.info("== export")
    report = export(run)
    if device:
        from edgecls.bench.run import bench_run

        log.info("== bench on %s", device)
        report = bench_run(run, device)
    return report
