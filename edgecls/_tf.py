"""The one place TensorFlow, tf_keras and tfmot are imported.

tfmot wraps Keras 2 models only, so the whole toolkit builds models with
``tf_keras``; ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported so that ``tf.keras`` is the same Keras 2 everywhere.

Import from here (``from edgecls._tf import tf, keras``), never TensorFlow
directly, and only inside the functions that need it: ``edgecls --help`` and
the runtime must start without TensorFlow.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow 2.21's C++ side logs harmless errors (e.g. an unknown NodeDef attribute in
# tf.data) on every run; real failures still raise Python exceptions. EDGECLS_TF_LOGS=1 shows all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if os.environ.get("EDGECLS_TF_LOGS") == "1" else "3")

import logging  # noqa: E402


# C++ chatter written straight to fd 2 (CUDA stubs on import, the converter's settings dump) is
# printed before absl logging is configured, so TF_CPP_MIN_LOG_LEVEL does not reach it: hide the fd.
from edgecls.runtime.cli import quiet_native_stderr  # noqa: E402  (the runtime's, shared; no TensorFlow)

with quiet_native_stderr():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402
    tf.config.list_physical_devices()  # device discovery logs its CUDA probe here, once

# TensorFlow's Python logger reports checkpoint internals at INFO; users see our lines instead.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
logging.getLogger("absl").setLevel(logging.WARNING)

MIN_TF = (2, 16)


def _version(v: str) -> tuple[int, int]:
    major, minor = v.split(".")[:2]
    return int(major), int(minor)


if _version(tf.__version__) < MIN_TF:  # pragma: no cover - guarded by pyproject pins
    raise ImportError(f"edgecls needs tensorflow>={'.'.join(map(str, MIN_TF))}, found {tf.__version__}")


def tfmot():
    """tensorflow_model_optimization, imported on first use (it is slow to import)."""
    import tensorflow_model_optimization as _tfmot

    return _tfmot


__all__ = ["tf", "keras", "tfmot", "quiet_native_stderr"]
