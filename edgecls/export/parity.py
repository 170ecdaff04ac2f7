"""Does the exported model still say what its Keras source says? Run the real interpreter and compare."""
from __future__ import annotations

import numpy as np

from edgecls import metrics


def tflite_probs(model_bytes: bytes, pixels: np.ndarray, *, batch: int = 64, num_threads: int = 2) -> np.ndarray:
    """Probabilities of a raw-pixel TFLite model (edgecls export) for uint8 RGB images (N, H, W, 3).

    Runs the code users ship: the runtime's :class:`~edgecls.runtime.classifier.Classifier`
    (its input preparation and quantization, its interpreter, its output
    dequantization), so the parity figures are those of the deployed model.
    The model takes pixels as they are (its normalization is in the graph) and
    its first output is probabilities, whatever its metadata says.
    """
    from edgecls.runtime.classifier import Classifier

    with Classifier.from_bytes(model_bytes, name="<exported model>", num_threads=num_threads, require_labels=False,
                               mean=(0.0,), std=(1.0,), output_kind="probabilities") as clf:
        return clf.predict_pixels(pixels, batch)


def compare(reference: np.ndarray, probs: np.ndarray, labels: np.ndarray, class_names) -> dict:
    """Parity of a variant against its Keras source, plus the variant's own test metrics."""
    diff = np.abs(reference - probs)
    report = metrics.classification_report(labels, probs, class_names)
    return {
        "accuracy": report["accuracy"],
        "source_accuracy": metrics.accuracy(labels, reference.argmax(1)),
        "top1_agreement": float((reference.argmax(1) == probs.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "metrics": report,
    }
