"""Does the exported model still say what its Keras source says? Run the real interpreter and compare."""
from __future__ import annotations

import numpy as np

from edgecls import metrics


def tflite_probs(model_bytes: bytes, pixels: np.ndarray, *, batch: int = 64, num_threads: int = 2) -> np.ndarray:
    """Probabilities of a raw-pixel TFLite model (edgecls export) for uint8 RGB images (N, H, W, 3).

    Quantizes the input and dequantizes the output with the tensors' own
    parameters, as the device runtime does; batches by resizing the input.
    """
    from edgecls.runtime.backends import load_backend

    interp = load_backend().make_interpreter(model_bytes, num_threads=num_threads, delegate=None)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for start in range(0, len(pixels), batch):
        x = pixels[start:start + batch].astype(np.float32)
        if len(x) != interp.get_input_details()[0]["shape"][0]:
            interp.resize_tensor_input(inp["index"], [len(x), *inp["shape"][1:]])
            interp.allocate_tensors()
        interp.set_tensor(inp["index"], quantize(x, inp))
        interp.invoke()
        outs.append(dequantize(interp.get_tensor(out["index"]), out))
    return np.concatenate(outs)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


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
