"""Magnitude pruning through tfmot: schedules, M:N structure, the XNNPACK policy, layers skipped by name."""
from __future__ import annotations

import logging

from edgecls._tf import tfmot
from edgecls.compress.weights import LeaveAsIs, wrap_layers
from edgecls.errors import StageError
from edgecls.recipe.schema import PruneOptions

log = logging.getLogger("edgecls.compress")


def _step(value: float, total: int) -> int:
    """A recipe step: below 1 (or exactly 1 for an end) it is a fraction of the stage."""
    return int(round(value * total)) if value <= 1.0 else int(value)


def schedule(opts: PruneOptions, total_steps: int):
    sp = tfmot().sparsity.keras
    begin = int(round(opts.begin * total_steps)) if opts.begin < 1 else int(opts.begin)
    if opts.schedule == "constant":
        return sp.ConstantSparsity(opts.target_sparsity, begin_step=begin, frequency=opts.frequency)
    end = max(_step(opts.end, total_steps), begin + 1)
    return sp.PolynomialDecay(initial_sparsity=opts.initial_sparsity, final_sparsity=opts.target_sparsity,
                              begin_step=begin, end_step=end, frequency=opts.frequency)


def apply(model, opts: PruneOptions, *, total_steps: int):
    """Wrap the prunable layers; returns (model, {"wrapped": [...], "left": {layer: reason}})."""
    sp = tfmot().sparsity.keras
    policy = sp.PruneForLatencyOnXNNPack() if opts.policy == "xnnpack" else None
    if policy is not None:
        try:
            policy.ensure_model_supports_pruning(model)
        except ValueError as err:
            raise StageError(f"prune policy xnnpack: {err}") from None
    m_by_n = tuple(int(x) for x in opts.structure.split(":")) if opts.structure else None
    sched = schedule(opts, total_steps)

    def wrap(layer):
        if policy is not None and not policy.allow_pruning(layer):
            raise LeaveAsIs("not pruned by the xnnpack policy (only 1x1 convolutions are)")
        return sp.prune_low_magnitude(layer, pruning_schedule=sched, sparsity_m_by_n=m_by_n)

    pruned, info = wrap_layers(model, wrap, skip=opts.skip, verb="prune")
    for name, why in info["left"].items():
        log.info("prune: %s left dense (%s)", name, why)
    if not info["wrapped"]:
        raise StageError("prune: no layer could be pruned (all skipped or unsupported)")
    return pruned, info


def callbacks(info: dict) -> list:
    return [tfmot().sparsity.keras.UpdatePruningStep()]


def strip(model):
    return tfmot().sparsity.keras.strip_pruning(model)
