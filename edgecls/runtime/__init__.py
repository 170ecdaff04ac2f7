"""The edgecls runtime: classify images with a .tflite model, with no TensorFlow.

Needs numpy, one interpreter package (ai-edge-litert, else tflite-runtime, else
TensorFlow's ``tf.lite``) and Pillow to decode image files. Importing this
package is instant: the names below load their module on first use.

    from edgecls.runtime import Classifier
    clf = Classifier.from_file("model.tflite", num_threads=2)
    for p in clf.classify("cat.jpg", top_k=3):
        print(p.label, p.index, p.score)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Classifier": "classifier", "Prediction": "classifier", "read_labels": "classifier",
    "Runner": "runner", "TensorInfo": "runner", "default_threads": "runner",
    "BACKENDS": "backends", "installed_backends": "backends", "load_backend": "backends",
    "Timing": "timing", "measure": "timing", "time_calls": "timing", "peak_rss_mb": "timing",
    "load_image": "image", "resize_image": "image", "check_image": "image",
    "read_model": "flatcheck", "verify_tflite": "flatcheck",
    "build_zipapp": "pack",
    "RuntimeModelError": "errors", "LabelsMissing": "errors", "ImageError": "errors", "BackendMissing": "errors",
    "DelegateError": "errors", "DependencyMissing": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecls.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edgecls.runtime.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from edgecls.runtime.backends import BACKENDS, installed_backends, load_backend
    from edgecls.runtime.classifier import Classifier, Prediction, read_labels
    from edgecls.runtime.errors import (BackendMissing, DelegateError, DependencyMissing, ImageError, LabelsMissing,
                                        RuntimeModelError)
    from edgecls.runtime.flatcheck import read_model, verify_tflite
    from edgecls.runtime.image import check_image, load_image, resize_image
    from edgecls.runtime.pack import build_zipapp
    from edgecls.runtime.runner import Runner, TensorInfo, default_threads
    from edgecls.runtime.timing import Timing, measure, peak_rss_mb, time_calls
