"""Model registry: ``@register`` a builder, ``create`` it by name, ``list_models`` by pattern.

Importing this module (or listing models) loads no TensorFlow: family modules
import ``edgecls._tf`` inside their builder functions, so ``edgecls models``
stays fast (the timm pattern).
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from edgecls.errors import EdgeclsError

# Family modules imported on first use; each registers its models at import time.
_FAMILY_MODULES = (
    "edgecls.models.lenet",
    "edgecls.models.small_cnn",
    "edgecls.models.alexnet",
    "edgecls.models.vgg",
    "edgecls.models.inception",
    "edgecls.models.resnet",
    "edgecls.models.densenet",
    "edgecls.models.mobilenet",
    "edgecls.models.efficientnet",
    "edgecls.models.vit",
)


class ModelError(EdgeclsError, ValueError):
    """A model name, option or shape a user asked for is not valid."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    description: str
    default_input: tuple[int, int, int]
    options: tuple[str, ...]  # keyword options the builder accepts
    qat: bool = True  # tfmot's default 8-bit quantize_model() wraps it with default options
    qat_note: str = ""  # why not, and what to change, when qat is False
    imagenet: str = ""  # the keras.applications model whose ImageNet weights load into it ("" = none)


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: Callable[..., Any]


_REGISTRY: dict[str, _Entry] = {}
_loaded = False


def register(
    name: str,
    *,
    family: str,
    description: str,
    default_input: tuple[int, int, int] = (32, 32, 3),
    qat: bool = True,
    qat_note: str = "",
    imagenet: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(num_classes, input_shape, **options) -> keras.Model`` under ``name``.

    The accepted options are the builder's keyword-only parameters. ``imagenet``
    names the keras.applications model with the same layers (and layer names),
    whose ImageNet weights ``model.weights: imagenet`` loads.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        options = tuple(
            p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        )
        info = ModelInfo(name, family, description, tuple(default_input), options, qat, qat_note, imagenet)
        _REGISTRY[name] = _Entry(info, fn)
        return fn

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _FAMILY_MODULES:
            importlib.import_module(module)


def _entry(name: str) -> _Entry:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ModelError(f"unknown model {name!r}{hint} (edgecls models lists them)")
    return _REGISTRY[name]


def list_models(pattern: str = "*") -> list[ModelInfo]:
    """Registered models whose name matches the fnmatch ``pattern``, sorted by name."""
    _ensure_loaded()
    return [_REGISTRY[n].info for n in sorted(_REGISTRY) if fnmatch.fnmatchcase(n, pattern)]


def get_info(name: str) -> ModelInfo:
    return _entry(name).info


def _validate_common(num_classes: int, input_shape: tuple, options: dict[str, Any]) -> tuple[int, int, int]:
    if not _is_int(num_classes) or num_classes < 2:
        raise ModelError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise ModelError(f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}")
    # Options shared by several families are checked here so every family names the field alike.
    for key in ("width", "depth"):
        if key in options:
            v = options[key]
            if not _is_real(v) or not math.isfinite(v) or v <= 0:
                raise ModelError(f"{key} must be a number > 0, got {v!r}")
    for key in ("dropout", "drop_connect"):
        if key in options:
            v = options[key]
            if not _is_real(v) or not 0.0 <= v < 1.0:
                raise ModelError(f"{key} must be in range [0, 1), got {v!r}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ModelError(f"{name} must be true or false, got {value!r}")


def check_int(name: str, value: Any, *, minimum: int = 1, choices: tuple[int, ...] = ()) -> None:
    """Integer options of one family (depth counts, strides, patch sizes), checked before TensorFlow loads."""
    if choices:
        if not _is_int(value) or value not in choices:
            raise ModelError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    elif not _is_int(value) or value < minimum:
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _is_int(value: Any) -> bool:
    # numpy integers count (shapes often come from arrays); bools do not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def create(name: str, num_classes: int, input_shape: tuple[int, int, int], **options: Any) -> Any:
    """Build model ``name`` as an (untrained) tf_keras functional model ending in float32 ``probs``."""
    entry = _entry(name)
    unknown = sorted(set(options) - set(entry.info.options))
    if unknown:
        accepted = ", ".join(entry.info.options) or "none"
        raise ModelError(f"model {name!r} has no option {unknown[0]!r}; accepted options: {accepted}")
    shape = _validate_common(num_classes, input_shape, options)
    return entry.builder(int(num_classes), shape, **options)


def count_params(name: str, num_classes: int = 10, input_shape: tuple[int, int, int] | None = None) -> int:
    """Total parameters (trainable and not) of ``name`` with default options; builds the model."""
    shape = input_shape if input_shape is not None else _entry(name).info.default_input
    return int(create(name, num_classes, shape).count_params())
