"""What a TFLite model computes in: op counts, and which ops stay float (is it fully integer?).

Read from the flatbuffer by the runtime's model summary, so `edgecls info` on a
device and the export report on the host say the same thing.
"""
from __future__ import annotations


def op_report(model_bytes: bytes) -> dict:
    """{"ops": {op: count}, "float_ops": [op, ...], "fully_integer": bool, "input_dtype", "output_dtype"}."""
    from edgecls.runtime.modelfile import read_model_summary

    summary = read_model_summary(model_bytes)
    return {
        "ops": dict(sorted(summary["ops"].items())),
        "float_ops": sorted(summary["float_ops"]),
        "fully_integer": not summary["float_ops"],
        "input_dtype": summary["inputs"][0]["dtype"],
        "output_dtype": summary["outputs"][0]["dtype"],
    }
