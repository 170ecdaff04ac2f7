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
    problems += _device_problems(device)
    if not problems and isinstance(device, (str, Path)):
        problems += [origin(recipe).error(m, "export") for m in _micro_problems(recipe, device)]
    if problems:
        raise RecipeError.combine(problems)


def load_checked(recipe, overrides=(), *, device=None) -> Recipe:
    """Load a recipe (a path or a bundled name) and check what it points at, before any work.

    The recipe's own mistakes and those of what it points at come in one RecipeError: when the
    recipe does not validate, the values that are readable in its mapping (data path, weights,
    backbone) and the device are checked all the same, so one run of ``edgecls validate`` shows all.
    """
    from edgecls.recipe.loader import load_recipe

    try:
        loaded = load_recipe(recipe, overrides)
    except RecipeError as err:
        where = getattr(err, "origin", None)
        more = [] if where is None else [where.error(m, k) for k, m in _raw_problems(where.raw, err.errors)]
        raise RecipeError.combine([err, *more, *_device_problems(device)]) from None
    preflight(loaded, device=device)
    return loaded


def _device_problems(device) -> list[RecipeError]:
    if not isinstance(device, (str, Path)):  # None, or a DeviceRecipe object: already loaded and checked
        return []
    from edgecls.devices.loader import load_device

    try:
        load_device(str(device))
    except RecipeError as err:
        return [err]
    return []


def _micro_problems(recipe: Recipe, device) -> list[str]:
    """A microcontroller board measures only target: micro variants: say so before training, not after."""
    from edgecls.devices.loader import load_device

    dev = load_device(str(device))
    if dev.connect != "micro" or any(v.target == "micro" for v in recipe.export):
        return []
    return [f"device '{dev.name}' is a microcontroller: bench checks export entries with target: micro, and "
            "this recipe has none; add one, e.g. {name: int8_micro, source: train, mode: int8, target: micro}"]


# What an export target needs installed, by module: found missing before training, not an hour later.
TARGET_PACKAGES = {"micro": (("tflite_micro", "micro"),),
                   "onnx": (("tf2onnx", "onnx"), ("onnx", "onnx"), ("onnxruntime", "onnx"))}


def _recipe_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """(key, message) for each problem in what the recipe refers to."""
    data, model = recipe.data, recipe.model
    options = typed.to_plain(data.options) if data.options is not None else {}
    return _problems(data.source, options, data.slices, model.weights, model.name, model.backbone) + \
        _target_problems(recipe)


def _target_problems(recipe: Recipe) -> list[tuple[str, str]]:
    import importlib.util

    problems = []
    for i, v in enumerate(recipe.export):
        missing = [(m, extra) for m, extra in TARGET_PACKAGES.get(v.target, ()) if importlib.util.find_spec(m) is None]
        if missing:
            problems.append((f"export[{i}].target", f"target: {v.target} needs {', '.join(m for m, _ in missing)}, "
                                                    f"which is not installed: pip install 'edgecls[{missing[0][1]}]'"))
    return problems


def _raw_problems(raw: dict, errors: list[RecipeError]) -> list[tuple[str, str]]:
    """:func:`_problems` on the values of a recipe mapping that did not validate; a value that has a
    mistake of its own (or is not a string) is left out: its mistake is reported already."""
    bad = [e.key or "" for e in errors]

    def value(section: str, key: str):
        node = raw.get(section)
        found = node.get(key) if isinstance(node, dict) else None
        ok = isinstance(found, (str, dict)) and not any(b == f"{section}.{key}" or b.startswith(f"{section}.{key}.")
                                                        for b in bad)
        return found if ok else None

    source, options = value("data", "source"), value("data", "options")
    data = raw.get("data")
    if not isinstance(options, dict) and isinstance(data, dict) and data.get("options") is not None:
        source = None  # options with a mistake of their own: the source cannot be checked without them
    slices, weights, name, backbone = (v if isinstance(v, str) else None for v in (
        value("data", "slices"), value("model", "weights"), value("model", "name"), value("model", "backbone")))
    return _problems(source if isinstance(source, str) else None, typed.to_plain(options or {}), slices, weights,
                     name, backbone)


def _problems(source: str | None, options: dict, slices: str | None, weights: str | None, model_name: str | None,
              backbone: str | None) -> list[tuple[str, str]]:
    """The checks themselves, on plain values (None: not given, or not checkable)."""
    from edgecls.data.sources import check_source
    from edgecls.models.transfer import check_weights

    problems = [(f"data.{key}", message) for key, message in check_source(source, options)] if source else []
    if slices is not None and not Path(slices).expanduser().is_file():
        problems.append(("data.slices", f"{slices}: no such file"))
    if weights is not None:
        problems += [("model.weights", message) for message in check_weights(weights, model_name)]
    if backbone is not None:
        from edgecls.train.start import backbone_file

        try:
            backbone_file(backbone)
        except EdgeclsError as err:  # its message names the key already: keep the rest
            problems.append(("model.backbone", str(err).removeprefix("model.backbone: ")))
    return problems
