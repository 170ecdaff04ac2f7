"""Recipe files: YAML -> validated Recipe, ``--set`` overrides, the resolved copy in a run.

Errors name the file, the line and the key path, and suggest the close key:
``recipes/x.yaml:12: train.optimiser: unknown key; did you mean 'optimizer'?``
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from edgecls import bundled, fileio
from edgecls.errors import RecipeError
from edgecls.recipe import typed
from edgecls.recipe.schema import Recipe

# Bundled recipes are package data (edgecls/bundled/recipes); a user's ./recipes comes first.
BUNDLED_DIR = bundled.folder("recipes")


def recipe_dirs() -> list[Path]:
    dirs = [Path.cwd() / "recipes", BUNDLED_DIR]
    out = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def resolve_path(name_or_path: str) -> Path:
    """A recipe file path, or the name of a bundled recipe (``digits`` -> recipes/digits.yaml).

    A name that is neither is a RecipeError suggesting the closest recipe name.
    """
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path
    for d in recipe_dirs():
        for suffix in (".yaml", ".yml"):
            if (d / f"{name_or_path}{suffix}").exists():
                return d / f"{name_or_path}{suffix}"
    names = sorted({p.stem for d in recipe_dirs() for p in d.glob("*.y*ml")})
    hint = typed._suggest(name_or_path, names)
    raise RecipeError(f"no such file, and no recipe named '{name_or_path}'{hint or ''} (edgecls recipes lists them)",
                      source=name_or_path)


def parse_override(text: str) -> tuple[list[str], object]:
    """``train.epochs=3`` -> (['train', 'epochs'], 3); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError("expected KEY=VALUE, e.g. train.epochs=3", source=f"--set {text}")
    try:
        value = typed.load_value(raw, f"--set {text}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # a plain string such as a path with a colon
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> tuple[dict, dict[str, str]]:
    """Set each ``a.b.c=value`` in a copy of the raw mapping; returns it and the paths set."""
    raw = copy.deepcopy(raw)
    origins = {}
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = typed.LineDict()
                child.line, child.lines = 0, {}
            elif not isinstance(child, dict):
                raise RecipeError(f"'{'.'.join(keys[:depth + 1])}' is not a section", source=f"--set {text}")
            node = child
        node[keys[-1]] = value
        origins[".".join(keys)] = text
    return raw, origins


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError for anything wrong."""
    path = resolve_path(str(path))
    return _validate(typed.read_yaml(path), overrides, str(path))


def recipe_from_dict(mapping: Mapping, overrides: Sequence[str] = ()) -> Recipe:
    """Validate a plain mapping as a recipe file's contents; errors name the source ``<dict>``."""
    if not isinstance(mapping, Mapping):
        raise RecipeError(f"a recipe is a mapping of sections, got {type(mapping).__name__}", source="<dict>")
    return _validate(dict(mapping), overrides, "<dict>")


def _validate(raw: dict, overrides: Sequence[str], source: str) -> Recipe:
    """The one path from raw mapping to Recipe: overrides, types and ranges, the model registry."""
    if isinstance(overrides, str):  # one "a.b=c" given where a list belongs: not a list of characters
        overrides = [overrides]
    raw, origins = apply_overrides(raw, list(overrides))
    ctx = typed.Context(source, origins)
    errors = []
    try:
        recipe = typed.build(Recipe, raw, "", ctx, getattr(raw, "line", None))  # a plain dict has no lines
    except RecipeError as err:
        errors.append(err)
    errors += _check_model(raw, ctx)  # independent of the other sections: reported with their mistakes
    if errors:
        combined = RecipeError.combine(errors)
        combined.origin = Origin(ctx, raw)  # so preflight.load_checked can check what the mapping points at too
        raise combined
    object.__setattr__(recipe, "_origin", Origin(ctx, raw))  # not a field: equality and the saved copy ignore it
    return recipe


def _check_model(raw: dict, ctx: typed.Context) -> list[RecipeError]:
    """The model name and its option names, against the registry (no TensorFlow needed).

    Reads the raw mapping, so it runs even when other keys are wrong; values of the wrong type are
    left to the type checks, which report them.
    """
    from edgecls.models import registry

    model_raw = raw.get("model")
    name = model_raw.get("name") if isinstance(model_raw, dict) else None
    if not isinstance(name, str):  # a backbone run: its architecture is checked when training loads it
        return []
    lines = getattr(model_raw, "lines", {})
    infos = {m.name: m for m in registry.list_models()}
    if name not in infos:
        hint = typed._suggest(name, list(infos))
        return [ctx.error(f"unknown model '{name}'{hint or ''} (edgecls models lists them)",
                          "model.name", lines.get("name"))]
    info = infos[name]
    options = model_raw.get("options")
    opt_lines = getattr(options, "lines", {})
    return [ctx.error(f"unknown option of {info.name}{typed._suggest(key, list(info.options)) or ''}; "
                      f"accepted: {', '.join(info.options) or 'none'}",
                      f"model.options.{key}", opt_lines.get(key, lines.get("options")))
            for key in (options if isinstance(options, dict) else ()) if key not in info.options]


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a loaded recipe's values came from (its file's lines, the ``--set`` overrides), so that a
    later check (edgecls.recipe.preflight) names ``file:line: key`` as the loader does."""

    ctx: typed.Context
    raw: dict

    def error(self, message: str, key: str) -> RecipeError:
        if self.ctx.source is None:
            return RecipeError(message, key=key)
        node, line = self.raw, getattr(self.raw, "line", None)
        for part in key.split("."):  # the deepest line known on the key's path
            if not isinstance(node, dict) or part not in node:
                break
            line, node = getattr(node, "lines", {}).get(part, line), node[part]
        return self.ctx.error(message, key, line)


def origin(recipe: Recipe) -> Origin:
    """The recipe's Origin; a Recipe built in Python has none, and its errors name only the key."""
    found = getattr(recipe, "_origin", None)
    return found if found is not None else Origin(typed.Context(None), {})


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(typed.to_plain(recipe), sort_keys=False, default_flow_style=None)


def save_recipe(recipe: Recipe, path: str | Path) -> Path:
    return fileio.write_text(path, recipe_to_yaml(recipe))


def diff_recipes(a: Recipe, b: Recipe) -> list[str]:
    """Dotted keys whose values differ (to refuse resuming a run under another recipe)."""
    out: list[str] = []

    def walk(x, y, prefix):
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y), key=str):
                walk(x.get(key), y.get(key), f"{prefix}{key}.")
        elif x != y:
            out.append(prefix.rstrip("."))

    walk(typed.to_plain(a), typed.to_plain(b), "")
    return out


def list_recipes() -> list[tuple[str, Path, str]]:
    """(name, path, description) of bundled recipes; broken ones show their error as description."""
    rows = []
    seen = set()
    for d in recipe_dirs():
        for path in sorted(d.glob("*.y*ml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                desc = load_recipe(path).description
            except RecipeError as err:  # the first mistake: a listing keeps one line per recipe
                more = f" (and {len(err.errors) - 1} more)" if len(err.errors) > 1 else ""
                desc = f"INVALID: {err.errors[0]}{more}"
            rows.append((path.stem, path, desc))
    return rows
