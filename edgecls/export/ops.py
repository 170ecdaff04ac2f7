"""What a TFLite model computes in: op counts, and which ops stay float (is it fully integer?)."""
from __future__ import annotations

from collections import Counter

import numpy as np

_FLOATS = (np.float32, np.float16, np.float64)
_BOUNDARY = {"QUANTIZE", "DEQUANTIZE"}  # float in or out at the model's edges is allowed


def op_report(model_bytes: bytes) -> dict:
    """{"ops": {op: count}, "float_ops": [op, ...], "fully_integer": bool, "input_dtype", "output_dtype"}."""
    from edgecls.runtime.backends import load_backend

    interp = load_backend().Interpreter(model_content=model_bytes)
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops, float_ops = Counter(), Counter()
    for op in interp._get_ops_details():  # the only API that lists ops with their tensors
        name = op["op_name"]
        ops[name] += 1
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if name not in _BOUNDARY and any(dtypes.get(i) in _FLOATS for i in tensors):
            float_ops[name] += 1
    return {
        "ops": dict(sorted(ops.items())),
        "float_ops": sorted(float_ops),
        "fully_integer": not float_ops,
        "input_dtype": np.dtype(interp.get_input_details()[0]["dtype"]).name,
        "output_dtype": np.dtype(interp.get_output_details()[0]["dtype"]).name,
    }
