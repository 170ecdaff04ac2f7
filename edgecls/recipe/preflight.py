"""Checks before work: what a valid recipe can still get wrong, found in a second, not after an hour of training.

The loader checks keys, types and ranges. This checks what the recipe points at:
the data (paths, classes across splits), ``model.weights``, ``model.backbone``,
``data.slices`` and the device to benchmark on. Cheap checks only: no TensorFlow,
no download, no decoding. ``edgecls validate`` runs it, and so do api.train and
api.run_all before they start. Every problem is one line, ``file:line: key: message``
where the recipe came from a file, all in one RecipeError.
"""
from __future__ import annotations

from pathlib import Path

from edgecls.errors import EdgeclsError, RecipeError
from edgecls.recipe import typed
from edgecls.recipe.loader import origin
from edgecls.recipe.schema import Recipe


def preflight(recipe: Recipe, *, device=None) -> None:
    """Raise RecipeError listing every problem found before work; ``device``: a device name or path to check."""
    problems = [origin(recipe).error(message, key) for key, message in _recipe_problems(recipe)]
    if isinstance(device, (str, Path)):  # a DeviceRecipe object is already loaded and checked
        from edgecls.devices.loader import load_device

        try:
            load_device(str(device))
        except RecipeError as err:
            problems.append(err)
    if problems:
        raise RecipeError.combine(problems)


def _recipe_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """(key, message) for each problem in what the recipe refers to."""
    from edgecls.data.sources import check_source
    from edgecls.models.transfer import check_weights

    data, model = recipe.data, recipe.model
    options = typed.to_plain(data.options) if data.options is not None else {}
    problems = [(f"data.{key}", message) for key, message in check_source(data.source, options)]
    if data.slices is not None and not Path(data.slices).expanduser().is_file():
        problems.append(("data.slices", f"{data.slices}: no such file"))
    if model.weights is not None:
        problems += [("model.weights", message) for message in check_weights(model.weights, model.name)]
    if model.backbone is not None:
        from edgecls.train.start import backbone_file

        try:
            backbone_file(model.backbone)
        except EdgeclsError as err:  # its message names the key already: keep the rest
            message = str(err)
            problems.append(("model.backbone", message.removeprefix("model.backbone: ")))
    return problems
