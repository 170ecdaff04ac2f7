"""YAML to frozen dataclasses, with errors that name file, line and key path.

The recipe schema and the device recipes (``devices/*.yaml``) are plain frozen
dataclasses. This module turns YAML into them and checks types, ranges and
choices, declared per field with :func:`spec`. It knows nothing about recipes.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from edgecls.errors import RecipeError

_MISSING = dataclasses.MISSING


def spec(default: Any = _MISSING, *, help: str = "", ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, variant_of: str | None = None,
         variants: dict[str, type] | None = None, default_factory: Any = _MISSING) -> Any:
    """A dataclass field with its documentation and constraints.

    ``variant_of``/``variants``: the field's dataclass is chosen by the value of
    a sibling field (``data.options`` is typed by ``data.source``).
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "variant_of": variant_of, "variants": variants}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --- YAML with line numbers ---------------------------------------------------

class LineDict(dict):
    """A mapping that remembers the line of each key (1-based) and its own."""

    line: int = 0
    lines: dict


class LineList(list):
    line: int = 0
    lines: list


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):  # noqa: D401 - yaml hook
        out = LineDict()
        out.line, out.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in out:
                raise RecipeError(f"duplicate key '{key}'", source=self.name, line=key_node.start_mark.line + 1)
            out[key] = self.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node, deep=False):
        out = LineList(self.construct_object(child, deep=True) for child in node.value)
        out.line, out.lines = node.start_mark.line + 1, [c.start_mark.line + 1 for c in node.value]
        return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)


def read_yaml(path: str | Path) -> LineDict:
    """Parse a YAML file into LineDicts; malformed YAML becomes a RecipeError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"cannot read: {err}", source=str(path)) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str) -> LineDict:
    loader = _LineLoader(text)
    loader.name = name
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise RecipeError(f"malformed YAML: {err.problem or err.context}", source=name,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise RecipeError(f"malformed YAML: {err}", source=name) from None
    finally:
        loader.dispose()
    if data is None:
        data = LineDict()
        data.line, data.lines = 1, {}
    if not isinstance(data, dict):
        raise RecipeError("the top level must be a mapping of sections", source=name, line=1)
    return data


# --- conversion -----------------------------------------------------------------

class Context:
    """Where values came from, for error messages: a file, and paths set on the command line."""

    def __init__(self, source: str, overrides: dict[str, str] | None = None):
        self.source = source
        self.overrides = overrides or {}

    def error(self, message: str, path: str, line: int | None) -> RecipeError:
        for key, text in self.overrides.items():
            if path == key or path.startswith(key + "."):
                return RecipeError(message, source=f"--set {text}", key=path)
        return RecipeError(message, source=self.source, line=line, key=path)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def convert(tp: Any, value: Any, path: str, ctx: Context, line: int | None) -> Any:
    """Convert ``value`` to type ``tp`` or raise a RecipeError naming ``path``."""
    if tp is Any:
        return _plain(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, ctx, line)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, path, ctx, line)
            except RecipeError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ctx.error(f"expected {_type_name(tp)}, got {value!r}", path, line)
    if origin is Literal:
        choices = get_args(tp)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        hint = _suggest(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        raise ctx.error(f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}{hint}", path, line)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list):
            raise ctx.error(f"expected a list, got {value!r}", path, line)
        lines = getattr(value, "lines", [line] * len(value))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, f"{path}[{i}]", ctx, lines[i]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ctx.error(f"expected a list of {len(args)} items, got {len(value)}", path, line)
        return tuple(convert(a, v, f"{path}[{i}]", ctx, lines[i]) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        ktype, vtype = get_args(tp)
        if not isinstance(value, dict):
            raise ctx.error(f"expected a mapping, got {value!r}", path, line)
        lines = getattr(value, "lines", {})
        return {convert(ktype, k, path, ctx, lines.get(k, line)): convert(vtype, v, f"{path}.{k}", ctx, lines.get(k, line))
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ctx.error(f"expected true or false, got {value!r}", path, line)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ctx.error(f"expected an integer, got {value!r}", path, line)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ctx.error(f"expected a number, got {value!r}", path, line)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ctx.error(f"expected a string, got {value!r}", path, line)
    raise TypeError(f"typed.convert: unsupported type {tp!r} at {path}")  # a schema bug, not a user error


def _plain(value: Any) -> Any:
    """LineDict/LineList to plain dict/list (for free-form option mappings)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_range(value: Any, meta: dict, path: str, ctx: Context, line: int | None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")]
    for key, ok, sym in bounds:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ctx.error(f"must be {sym} {bound}, got {value}", path, line)


def build(cls: type, value: Any, path: str, ctx: Context, line: int | None) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ctx.error(f"expected a mapping, got {value!r}", path or "(top level)", line)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    lines = getattr(value, "lines", {})
    here = getattr(value, "line", line)
    for key in value:
        if key not in fields:
            hint = _suggest(key, list(fields))
            raise ctx.error(f"unknown key{hint or '; expected one of ' + ', '.join(fields)}",
                            f"{path}.{key}" if path else str(key), lines.get(key, here))
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in value:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ctx.error("required key is missing", sub, here)
            continue
        tp = hints[name]
        if f.metadata.get("variant_of"):
            selector = value.get(f.metadata["variant_of"], fields[f.metadata["variant_of"]].default)
            tp = f.metadata["variants"].get(selector, tp)
        converted = convert(tp, value[name], sub, ctx, lines.get(name, here))
        _check_range(converted, f.metadata, sub, ctx, lines.get(name, here))
        kwargs[name] = converted
    # Variant fields left out still need their variant's defaults.
    for name, f in fields.items():
        if name not in kwargs and f.metadata.get("variant_of"):
            selector = kwargs.get(f.metadata["variant_of"], fields[f.metadata["variant_of"]].default)
            variant = f.metadata["variants"].get(selector)
            if variant is not None:
                kwargs[name] = build(variant, {}, f"{path}.{name}" if path else name, ctx, here)
    try:
        obj = cls(**kwargs)
    except ValueError as err:  # __post_init__ cross-field checks: "key: message"
        key, _, msg = str(err).partition(": ")
        full = f"{path}.{key}" if path else key
        raise ctx.error(msg or str(err), full, lines.get(key.split(".")[0], here)) from None
    return obj


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) rows for documentation and ``--help`` texts."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, key + ".")
            continue
        default = "required" if f.default is _MISSING and f.default_factory is _MISSING else (
            repr(f.default) if f.default is not _MISSING else repr(f.default_factory()))
        rows.append((key, _type_name(tp), default, f.metadata.get("help", "")))
    return rows
