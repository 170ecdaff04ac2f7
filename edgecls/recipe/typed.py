"""YAML to frozen dataclasses, with errors that name file, line and key path.

The recipe schema and the device recipes (``devices/*.yaml``) are frozen
dataclasses. This module turns YAML (or a plain mapping) into them and checks
types, ranges and choices, declared per field with :func:`spec`. Classes made
with :func:`config` check the same constraints when built in Python, so
``TrainConfig(epochs=-5)`` fails as the YAML would. It knows nothing about recipes.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from edgecls.errors import RecipeError

_MISSING = dataclasses.MISSING

# A value that becomes a file or folder name (runs/<name>, export/<name>.tflite): no separators, no
# "." / ".." / hidden names, nothing a shell or a file system treats specially.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
# Every int fits the C types (int64) the libraries below use; fields give tighter bounds with le=.
INT_MAX = 2**63 - 1
# YAML aliases (*name) may stand for this many values in all; a "billion laughs" document stops here.
ALIAS_LIMIT = 10_000


class FieldError(RecipeError, ValueError):
    """A field of a config built in Python is wrong: ``key: message``.

    A ValueError too, as a bad constructor argument is in Python; a RecipeError, so
    the CLI prints it on one line.
    """


def spec(default: Any = _MISSING, *, help: str = "", ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, plain_name: bool = False,
         variant_of: str | None = None, variants: dict[str, type] | None = None,
         default_factory: Any = _MISSING) -> Any:
    """A dataclass field with its documentation and constraints.

    ``plain_name``: the string names a file or folder (see PLAIN_NAME).
    ``variant_of``/``variants``: the field's dataclass is chosen by the value of
    a sibling field (``data.options`` is typed by ``data.source``).
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "plain_name": plain_name,
            "variant_of": variant_of, "variants": variants}
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


class _AliasLimit:
    """Composer hook: counts the values aliases stand for, and refuses past ALIAS_LIMIT.

    Each node records its expanded size (itself and everything under it); an alias adds
    the size of its anchor. Counting happens while composing, before any value is built,
    so a 9**9 expansion is refused after a few dozen nodes, in microseconds.
    """

    _aliased = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent):
            size = getattr(node, "expanded", None)
            line = event.start_mark.line + 1
            if size is None:  # the anchor is still being composed: a recursive structure
                raise RecipeError(f"alias *{event.anchor} refers to a list or mapping that contains it; "
                                  "write the values out", source=self.name, line=line)
            self._aliased += size
            if self._aliased > ALIAS_LIMIT:
                raise RecipeError(f"YAML aliases expand to more than {ALIAS_LIMIT} values (alias *{event.anchor}); "
                                  "write the values out or use fewer aliases", source=self.name, line=line)
            return node
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
        node.expanded = 1 + sum(c.expanded for c in children)
        return node


class _ValueLoader(_AliasLimit, yaml.SafeLoader):
    """Plain safe YAML (a --set value) with the alias limit."""


class _LineLoader(_AliasLimit, yaml.SafeLoader):
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


def load_value(text: str, name: str) -> Any:
    """One YAML value (a ``--set`` value), with the alias limit; malformed YAML raises yaml.YAMLError."""
    loader = _ValueLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except RecipeError as err:  # the alias limit: a one-line value needs no line number
        raise RecipeError(err.message, source=name) from None
    finally:
        loader.dispose()


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

    def __init__(self, source: str | None, overrides: dict[str, str] | None = None):
        self.source = source
        self.overrides = overrides or {}

    def error(self, message: str, path: str, line: int | None) -> RecipeError:
        for key, text in self.overrides.items():
            if path == key or path.startswith((key + ".", key + "[")):
                return RecipeError(message, source=f"--set {text}", key=path)
        if self.source is None:  # built in Python: no file to name
            return FieldError(message, key=path)
        return RecipeError(message, source=self.source, line=line, key=path)


_PYTHON = Context(None)


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
        return _plain(value, path, ctx, line)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # built (and checked) in Python already
            return value
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
        # A member whose type the value has, but whose inside or value is wrong (nan for a float), says more.
        fits = [e for e in errors if e.key != path or not e.message.startswith(("expected ", "must be one of "))]
        if len(errors) == 1 or len(fits) == 1:
            raise (fits or errors)[0]
        raise ctx.error(f"expected {_type_name(tp)}, got {_short(value)}", path, line)
    if origin is Literal:
        choices = get_args(tp)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        hint = _suggest(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        raise ctx.error(f"must be one of {', '.join(repr(c) for c in choices)}, got {_short(value)}{hint}", path, line)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ctx.error(f"expected a list, got {_short(value)}", path, line)
        lines = getattr(value, "lines", [line] * len(value))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_each((args[0], v, f"{path}[{i}]", ctx, lines[i]) for i, v in enumerate(value)))
        if len(value) != len(args):
            raise ctx.error(f"expected a list of {len(args)} items, got {len(value)}", path, line)
        return tuple(_each((a, v, f"{path}[{i}]", ctx, lines[i]) for i, (a, v) in enumerate(zip(args, value))))
    if origin is dict:
        ktype, vtype = get_args(tp)
        if not isinstance(value, dict):
            raise ctx.error(f"expected a mapping, got {_short(value)}", path, line)
        lines = getattr(value, "lines", {})
        keys = _each((ktype, k, path, ctx, lines.get(k, line)) for k in value)
        return dict(zip(keys, _each((vtype, v, f"{path}.{k}", ctx, lines.get(k, line)) for k, v in value.items())))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ctx.error(f"expected true or false, got {_short(value)}", path, line)
    if tp is int:  # numbers.Integral: numpy integers from Python callers too
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if abs(value) > INT_MAX:
                raise ctx.error(f"{value} is too large (more than 64 bits)", path, line)
            return int(value)
        raise ctx.error(f"expected an integer, got {_short(value)}", path, line)
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            _check_finite(value, path, ctx, line)
            return float(value)
        raise ctx.error(f"expected a number, got {_short(value)}", path, line)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):  # a Path from a Python caller
            return os.fspath(value)
        raise ctx.error(f"expected a string, got {_short(value)}", path, line)
    raise TypeError(f"typed.convert: unsupported type {tp!r} at {path}")  # a schema bug, not a user error


def _each(calls) -> list:
    """:func:`convert` for each (tp, value, path, ctx, line); every item's mistakes in one RecipeError."""
    out, errors = [], []
    for args in calls:
        try:
            out.append(convert(*args))
        except RecipeError as err:
            errors.append(err)
    if errors:
        raise RecipeError.combine(errors)
    return out


def _plain(value: Any, path: str, ctx: Context, line: int | None) -> Any:
    """LineDict/LineList to plain dict/list (for free-form option mappings); no nan or inf inside."""
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}", ctx, line) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]", ctx, line) for i, v in enumerate(value)]
    if isinstance(value, float):
        _check_finite(value, path, ctx, line)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        raise ctx.error(f"{value} is too large (more than 64 bits)", path, line)
    return value


def _check_finite(value: Any, path: str, ctx: Context, line: int | None) -> None:
    """nan and inf train a NaN model without an error: refuse them where they are written."""
    if not math.isfinite(value):
        raise ctx.error(f"must be a finite number, got {value}", path, line)


def _short(value: Any, limit: int = 80) -> str:
    """repr for a message, cut: a message is one line, and a value may be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _check_field(value: Any, meta: dict, path: str, ctx: Context, line: int | None) -> None:
    """The per-field constraints of :func:`spec` (the type is checked by :func:`convert`)."""
    if meta.get("plain_name") and isinstance(value, str) and not PLAIN_NAME.fullmatch(value):
        raise ctx.error(f"must be a plain name (letters, digits, '_', '-', '.'; not starting with '.'; at most "
                        f"128 characters), as it names a file or folder; got {_short(value)}", path, line)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")]
    for key, ok, sym in bounds:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ctx.error(f"must be {sym} {bound}, got {value}", path, line)


def _convert_field(tp: Any, value: Any, meta: dict, path: str, ctx: Context, line: int | None) -> Any:
    """:func:`convert`, then the field's :func:`spec` constraints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        _check_field(value, meta, path, ctx, line)  # "must be <= 4294967295" before convert's 64-bit limit
    converted = convert(tp, value, path, ctx, line)
    _check_field(converted, meta, path, ctx, line)
    return converted


def build(cls: type, value: Any, path: str, ctx: Context, line: int | None) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys, types and ranges.

    Every independent mistake is reported (RecipeError.combine): each unknown key and each wrong field,
    nested sections' too. A section with a wrong field is not constructed, so its cross-field checks
    (``__post_init__``) never see a value that failed its own.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ctx.error(f"expected a mapping, got {_short(value)}", path or "(top level)", line)
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    lines = getattr(value, "lines", {})
    here = getattr(value, "line", line)
    errors: list[RecipeError] = []
    for key in value:
        if key not in fields:
            hint = _suggest(key, list(fields))
            errors.append(ctx.error(f"unknown key{hint or '; expected one of ' + ', '.join(fields)}",
                                    f"{path}.{key}" if path else str(key), lines.get(key, here)))
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in value:
            if f.default is _MISSING and f.default_factory is _MISSING:
                errors.append(ctx.error("required key is missing", sub, here))
            continue
        tp = hints[name]
        if f.metadata.get("variant_of"):
            selector = value.get(f.metadata["variant_of"], fields[f.metadata["variant_of"]].default)
            if isinstance(selector, str):  # a wrong selector (reported on its own key) leaves these untyped
                tp = f.metadata["variants"].get(selector, tp)
        try:
            kwargs[name] = _convert_field(tp, value[name], f.metadata, sub, ctx, lines.get(name, here))
        except RecipeError as err:
            errors.append(err)
    if errors:
        raise RecipeError.combine(errors)
    # Variant fields left out still need their variant's defaults.
    for name, f in fields.items():
        if name not in kwargs and f.metadata.get("variant_of"):
            selector = kwargs.get(f.metadata["variant_of"], fields[f.metadata["variant_of"]].default)
            variant = f.metadata["variants"].get(selector)
            if variant is not None:
                kwargs[name] = build(variant, {}, f"{path}.{name}" if path else name, ctx, here)
    try:
        obj = cls(**kwargs)
    except FieldError as err:  # __post_init__ cross-field checks, as "key: message"
        key, msg = err.key, err.message
        full = f"{path}.{key}" if path and key else (key or path or "(top level)")
        raise ctx.error(msg, full, lines.get(re.split(r"[.\[]", key or "")[0], here)) from None
    except ValueError as err:  # a plain dataclass's __post_init__: "key: message"
        key, _, msg = str(err).partition(": ")
        full = f"{path}.{key}" if path else key
        raise ctx.error(msg or str(err), full, lines.get(key.split(".")[0], here)) from None
    return obj


# --- configs that check themselves --------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types, once per class (string annotations are evaluated on first use)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def check_fields(obj: Any) -> None:
    """Check and normalize every field of a dataclass instance against its type and :func:`spec`.

    Raises FieldError naming each wrong field (one line each). Normalizing: lists become tuples, ints in float
    fields floats, a variant field left out (or given as a mapping) gets its variant's
    dataclass, as :func:`build` does for YAML.
    """
    cls = type(obj)
    hints = _hints(cls)
    errors: list[RecipeError] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value, tp = getattr(obj, f.name), hints[f.name]
        try:
            if f.metadata.get("variant_of"):
                selector = getattr(obj, f.metadata["variant_of"])
                variant = f.metadata["variants"].get(selector) if isinstance(selector, str) else None
                if variant is not None:
                    if value is None:
                        value = {}
                    elif not isinstance(value, (dict, variant)):
                        raise _PYTHON.error(f"expected {variant.__name__} for {f.metadata['variant_of']} "
                                            f"{selector!r}, got {_short(value)}", f.name, None)
                    tp = variant
            converted = _convert_field(tp, value, f.metadata, f.name, _PYTHON, None)
        except RecipeError as err:
            errors.append(err)
            continue
        if converted is not getattr(obj, f.name):
            object.__setattr__(obj, f.name, converted)
    if errors:
        raise RecipeError.combine(errors)


def config(cls: type) -> type:
    """``@dataclass(frozen=True, kw_only=True)`` whose constructor checks its fields' :func:`spec`.

    The class's own ``__post_init__`` (cross-field rules, raising ValueError("key: message"))
    runs after the field checks; its ValueError becomes a FieldError naming the key.
    """
    own = cls.__dict__.get("__post_init__")

    def __post_init__(self) -> None:
        check_fields(self)
        if own is None:
            return
        try:
            own(self)
        except FieldError:
            raise
        except ValueError as err:
            key, sep, msg = str(err).partition(": ")
            raise (FieldError(msg, key=key) if sep else FieldError(str(err))) from None

    __post_init__.__doc__ = own.__doc__ if own is not None else None
    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


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
