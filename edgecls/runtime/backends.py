"""TFLite interpreter backends: which packages are installed, and one interpreter made from a model.

In order of preference:

=================  ======================================  =====================================
name               package                                 notes
=================  ======================================  =====================================
ai-edge-litert     ``pip install ai-edge-litert``          LiteRT, Google's successor of TFLite;
                                                           GPU through its CompiledModel API
tflite-runtime     ``pip install tflite-runtime``          the interpreter alone; what Raspberry
                                                           Pi OS users install (2.14, numpy<2)
tensorflow         ``pip install tensorflow``              ``tf.lite.Interpreter``; heavy
=================  ======================================  =====================================

Nothing here imports a backend at module import time; :func:`load_backend`
imports the first one that works (or the one asked for) and caches it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from edgecls.errors import first_line
from edgecls.runtime.errors import BackendMissing, DelegateError, UsageError, XnnpackRefused

BACKENDS = ("ai-edge-litert", "tflite-runtime", "tensorflow")
_ALIASES = {
    "ai-edge-litert": "ai-edge-litert", "ai_edge_litert": "ai-edge-litert", "litert": "ai-edge-litert",
    "tflite-runtime": "tflite-runtime", "tflite_runtime": "tflite-runtime", "tflite": "tflite-runtime",
    "tensorflow": "tensorflow", "tf": "tensorflow", "tf.lite": "tensorflow",
}
_TOP_MODULE = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime", "tensorflow": "tensorflow"}
_INSTALL = {
    "ai-edge-litert": "pip install ai-edge-litert",
    "tflite-runtime": "pip install tflite-runtime  (Raspberry Pi OS; wheels up to Python 3.11, needs numpy<2)",
    "tensorflow": "pip install tensorflow",
}

# Delegate names understood by `delegate=`; anything else is the path or file name of a delegate library.
DELEGATE_KEYWORDS = ("xnnpack", "none", "gpu", "edgetpu")
_EDGETPU_LIB = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}
_GPU_DELEGATE_LIBS = ("libtensorflowlite_gpu_delegate.so",)


@dataclass(frozen=True)
class Backend:
    """One imported interpreter package: its ``Interpreter``, ``load_delegate`` and ``OpResolverType``."""

    name: str
    version: str
    Interpreter: Any
    load_delegate: Callable[..., Any]
    OpResolverType: Any
    module: Any

    def make_interpreter(self, model: bytes, *, num_threads: int, delegate: str | None,
                         delegate_options: dict | None = None, where: str = "model") -> Any:
        """An interpreter for ``model`` with its tensors allocated (the default delegates applied)."""
        kwargs: dict[str, Any] = {"model_content": model, "num_threads": num_threads}
        kind = delegate_kind(delegate)
        if kind == "none":
            kwargs["experimental_op_resolver_type"] = self.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif kind in ("library", "edgetpu", "gpu"):
            kwargs["experimental_delegates"] = [self._load_delegate(delegate, kind, delegate_options)]
        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated in favour of LiteRT
            warnings.simplefilter("ignore")
            try:
                interp = self.Interpreter(**kwargs)
            except (ValueError, RuntimeError) as exc:
                if kwargs.get("experimental_delegates"):
                    raise DelegateError(f"{where}: the delegate {delegate!r} could not be applied: "
                                        f"{first_line(exc)}") from None
                raise _model_error(where, exc) from None
        try:
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            if kind == "xnnpack" and "XNNPACK" in str(exc):
                raise XnnpackRefused(f"{where}: XNNPACK cannot run this model: {first_line(exc)}") from None
            raise _model_error(where, exc) from None
        return interp

    def _load_delegate(self, delegate: str, kind: str, options: dict | None) -> Any:
        if kind == "edgetpu":
            lib = _EDGETPU_LIB.get(sys.platform, "libedgetpu.so.1")
            hint = "install the Edge TPU runtime (libedgetpu1-std) and plug in the Coral"
        elif kind == "gpu":
            return self._load_gpu_delegate(options)
        else:
            lib = os.fspath(delegate)
            hint = "give the full path of the delegate's .so, or install it where the loader finds it"
        reason = _check_delegate_library(lib)
        if reason:
            raise DelegateError(f"cannot load the delegate library {lib!r}: {reason}; {hint}")
        try:
            return self.load_delegate(lib, options or {})
        except Exception as exc:  # noqa: BLE001 - ValueError from the plugin, anything from ctypes
            raise DelegateError(f"cannot load the delegate library {lib!r}: {first_line(exc)}; {hint}") from None

    def _load_gpu_delegate(self, options: dict | None) -> Any:
        errors = []
        for lib in _GPU_DELEGATE_LIBS:
            reason = _check_delegate_library(lib)
            if reason:
                errors.append(f"{lib}: {reason}")
                continue
            try:
                return self.load_delegate(lib, options or {})
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{lib}: {first_line(exc)}")
        raise DelegateError(f"no GPU delegate for backend {self.name} ({'; '.join(errors)}); build or install "
                            "libtensorflowlite_gpu_delegate.so, or use backend ai-edge-litert, whose GPU "
                            "accelerator ships in the wheel")


def _check_delegate_library(lib: str) -> str | None:
    """Why ``lib`` is not a loadable TFLite external delegate, or None.

    Checked with ctypes before ``load_delegate``: the interpreters' Delegate
    objects raise from ``__del__`` when the library does not load, which
    prints a traceback a person should not see.
    """
    import ctypes

    try:
        handle = ctypes.CDLL(lib)
    except OSError as exc:
        return first_line(exc)
    missing = [s for s in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")
               if not hasattr(handle, s)]
    if missing:
        return f"not a TFLite external delegate (no {', '.join(missing)})"
    return None


def _model_error(where: str, exc: BaseException):
    from edgecls.runtime.errors import RuntimeModelError

    return RuntimeModelError(f"{where}: the interpreter cannot load this model: {first_line(exc)}")


def delegate_kind(delegate: Any) -> str:
    """'xnnpack' (the default), 'none', 'gpu', 'edgetpu' or 'library' (a delegate .so by name or path)."""
    if delegate is None:
        return "xnnpack"
    if isinstance(delegate, os.PathLike):
        return "library"
    if not isinstance(delegate, str) or not delegate.strip():
        raise UsageError(f"delegate must be one of {', '.join(DELEGATE_KEYWORDS)} or a library path, got {delegate!r}")
    low = delegate.strip().lower()
    if low in ("xnnpack", "cpu", "default"):
        return "xnnpack"
    if low in ("none", "reference", "builtin"):
        return "none"
    if low in ("gpu", "edgetpu"):
        return low
    return "library"


def canonical_name(name: str) -> str:
    try:
        return _ALIASES[name.strip().lower()]
    except (KeyError, AttributeError):
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None


def installed_backends() -> list[str]:
    """Backends whose package is installed (found on the path; not imported, so it is quick)."""
    found = []
    for name in BACKENDS:
        try:
            if importlib.util.find_spec(_TOP_MODULE[name]) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return found


def install_hint() -> str:
    return "install one of: " + " | ".join(_INSTALL[n] for n in BACKENDS)


_cache: dict[str, Backend] = {}
_lock = threading.Lock()


def load_backend(name: str | None = None) -> Backend:
    """The backend ``name`` (or the first one that imports, in the order of :data:`BACKENDS`)."""
    wanted = [canonical_name(name)] if name else list(BACKENDS)
    with _lock:
        failures = []
        for candidate in wanted:
            if candidate in _cache:
                return _cache[candidate]
            if importlib.util.find_spec(_TOP_MODULE[candidate]) is None:
                failures.append(f"{candidate}: not installed")
                continue
            try:
                backend = _IMPORTERS[candidate]()
            except Exception as exc:  # noqa: BLE001 - a broken install (ABI, numpy 2 vs 1) is one line, then the next
                failures.append(f"{candidate}: installed but fails to import ({first_line(exc)})")
                continue
            _cache[candidate] = backend
            return backend
    if name:
        raise BackendMissing(f"backend {wanted[0]} is unusable ({failures[0].split(': ', 1)[1]}): "
                             f"{_INSTALL[wanted[0]]}")
    raise BackendMissing(f"no TFLite interpreter package found ({'; '.join(failures)}); {install_hint()}")


def _litert() -> Backend:
    mod = importlib.import_module("ai_edge_litert.interpreter")
    version = getattr(importlib.import_module("ai_edge_litert"), "__version__", "?")
    return Backend("ai-edge-litert", version, mod.Interpreter, mod.load_delegate, mod.OpResolverType, mod)


def _tflite_runtime() -> Backend:
    mod = importlib.import_module("tflite_runtime.interpreter")
    version = getattr(importlib.import_module("tflite_runtime"), "__version__", "?")
    return Backend("tflite-runtime", version, mod.Interpreter, mod.load_delegate, mod.OpResolverType, mod)


def _tensorflow() -> Backend:
    # The heavy fallback: only reached when neither interpreter package is installed, or when asked for.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = importlib.import_module("tensorflow")
    lite = tf.lite
    return Backend("tensorflow", tf.__version__, lite.Interpreter, lite.experimental.load_delegate,
                   lite.experimental.OpResolverType, lite)


_IMPORTERS: dict[str, Callable[[], Backend]] = {
    "ai-edge-litert": _litert,
    "tflite-runtime": _tflite_runtime,
    "tensorflow": _tensorflow,
}
