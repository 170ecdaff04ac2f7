"""edgecls: image classifiers from recipe to edge device.

The public API, a short list (like tensorflow-model-optimization's ``api/``)::

    import edgecls

    recipe = edgecls.Recipe.load("digits", overrides=["train.epochs=5"])
    trained = edgecls.train(recipe, "runs/quick")          # -> TrainRecord
    exported = edgecls.export("runs/quick")                # -> ExportRecord
    report = edgecls.bench("runs/quick", device="local")   # -> the bench report
    index = edgecls.explain("runs/quick", ["img.png"])     # -> saliency panels and their agreement
    layers = edgecls.quantdebug("runs/quick", "int8")      # -> int8 error per layer, layers to keep float
    for row in edgecls.status("runs/quick"):               # done / stale (why) / missing / failed
        print(row.kind, row.name, row.state, row.why)

Names load on first use, so ``import edgecls`` needs no TensorFlow; only
training, compression and export load it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # stages (each also a callable subpackage: see edgecls/api.py)
    "train": "edgecls.train", "compress": "edgecls.compress", "export": "edgecls.export",
    "bench": "edgecls.bench", "explain": "edgecls.explain", "run_all": "edgecls.api", "status": "edgecls.api",
    "quantdebug": "edgecls.api",
    # recipes and run directories
    "Recipe": "edgecls.recipe.schema", "Run": "edgecls.run",
    "TrainRecord": "edgecls.run", "StageRecord": "edgecls.run", "VariantRecord": "edgecls.run",
    "ExportRecord": "edgecls.run", "StatusRow": "edgecls.run",
    # models
    "list_models": "edgecls.models", "create_model": "edgecls.models",
    # the TensorFlow-free runtime
    "Classifier": "edgecls.runtime.classifier",
    # errors
    "EdgeclsError": "edgecls.errors",
}
_RENAMED = {"create_model": "create"}
_PACKAGES = {"train", "compress", "export", "bench", "explain"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecls' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in _PACKAGES else getattr(mod, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from edgecls.api import quantdebug, run_all, status
    from edgecls.errors import EdgeclsError
    from edgecls.models import create as create_model, list_models
    from edgecls.recipe.schema import Recipe
    from edgecls.run import ExportRecord, Run, StageRecord, StatusRow, TrainRecord, VariantRecord
    from edgecls.runtime.classifier import Classifier
