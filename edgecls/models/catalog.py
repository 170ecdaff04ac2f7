"""What ``edgecls models`` lists: every registered model with its size, cost and pretrained weights.

Parameters and MACs come from ``TABLE`` (each model at its default input,
10 classes), so listing loads no TensorFlow and answers at once. Another
class count changes only the final Dense ("logits"): its input features are
in the table too. Another input size is built (TensorFlow), and
``verify=True`` builds every listed model and checks the table.
``python -m edgecls.models.catalog`` rebuilds every model and rewrites the table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecls.models.registry import ModelError, ModelInfo, _is_int, list_models

TABLE_CLASSES = 10

# --- table: written by `python -m edgecls.models.catalog`; tests/models/test_catalog.py keeps it true ---
TABLE: dict[str, dict[str, Any]] = {
    'alexnet': {'input': [224, 224, 3], 'params': 16380234, 'macs': 746674176, 'features': 1024},
    'densenet121': {'input': [224, 224, 3], 'params': 7047754, 'macs': 2833147904, 'features': 1024},
    'densenet_small': {'input': [64, 64, 3], 'params': 259226, 'macs': 52667728, 'features': 136},
    'efficientnet_b0': {'input': [224, 224, 3], 'params': 4062374, 'macs': 384547552, 'features': 1280},
    'efficientnet_b1': {'input': [240, 240, 3], 'params': 6588042, 'macs': 685535632, 'features': 1280},
    'efficientnet_b2': {'input': [260, 260, 3], 'params': 7782652, 'macs': 992167952, 'features': 1408},
    'efficientnet_b3': {'input': [300, 300, 3], 'params': 10798898, 'macs': 1825620752, 'features': 1536},
    'efficientnet_lite0': {'input': [224, 224, 3], 'params': 3425834, 'macs': 383920352, 'features': 1280},
    'efficientnet_lite1': {'input': [240, 240, 3], 'params': 4202154, 'macs': 598918032, 'features': 1280},
    'efficientnet_lite2': {'input': [260, 260, 3], 'params': 4881978, 'macs': 858469072, 'features': 1280},
    'inception_small': {'input': [64, 64, 3], 'params': 612970, 'macs': 46063680, 'features': 416},
    'lenet5': {'input': [32, 32, 3], 'params': 136886, 'macs': 1209000, 'features': 84},
    'mobilenet_v1': {'input': [224, 224, 3], 'params': 3239114, 'macs': 567726592, 'features': 1024},
    'mobilenet_v2': {'input': [224, 224, 3], 'params': 2270794, 'macs': 299507072, 'features': 1280},
    'mobilenet_v3_large': {'input': [224, 224, 3], 'params': 4270074, 'macs': 216837880, 'features': 1280},
    'mobilenet_v3_small': {'input': [224, 224, 3], 'params': 1557162, 'macs': 56298072, 'features': 1024},
    'resnet18': {'input': [224, 224, 3], 'params': 11192202, 'macs': 1813566464, 'features': 512},
    'resnet18_v2': {'input': [224, 224, 3], 'params': 11190538, 'macs': 1813566464, 'features': 512},
    'resnet50': {'input': [224, 224, 3], 'params': 23608202, 'macs': 3855945728, 'features': 2048},
    'resnet50_v2': {'input': [224, 224, 3], 'params': 23585290, 'macs': 3480227840, 'features': 2048},
    'resnet8': {'input': [32, 32, 3], 'params': 78666, 'macs': 12501632, 'features': 64},
    'resnet8_v2': {'input': [32, 32, 3], 'params': 78554, 'macs': 12501632, 'features': 64},
    'small_cnn': {'input': [32, 32, 3], 'params': 95210, 'macs': 10323200, 'features': 128},
    'vgg16': {'input': [224, 224, 3], 'params': 14719818, 'macs': 15346635776, 'features': 512},
    'vgg_small': {'input': [32, 32, 3], 'params': 1178666, 'macs': 52791808, 'features': 256},
    'vit_tiny': {'input': [224, 224, 3], 'params': 5490250, 'macs': 1246712448, 'features': 192},
}
# --- end of table ---


def model_rows(pattern: str = "*", *, input_size: int | None = None, classes: int = 10,
               verify: bool = False) -> list[dict]:
    """One row per registered model matching the fnmatch ``pattern``, sorted by name.

    Keys: name, family, params, macs, input ([h, w, c]), qat, qat_note,
    pretrained (the keras.applications model whose ImageNet weights load, ""
    for none), description, built (the figures come from building the net).
    """
    if not _is_int(classes) or classes < 2:
        raise ModelError(f"classes must be an integer >= 2, got {classes!r}")
    if input_size is not None and (not _is_int(input_size) or input_size < 1):
        raise ModelError(f"input size must be an integer >= 1, got {input_size!r}")
    infos = list_models(pattern)
    if not infos:
        raise ModelError(f"no model matches '{pattern}'")
    rows, wrong = [], []
    for info in infos:
        shape = (input_size, input_size, info.default_input[2]) if input_size else info.default_input
        figures = _from_table(info, shape, classes)
        built = verify or figures is None
        if built:
            measured = _build(info.name, classes, shape)
            if verify and figures is not None and measured != figures:
                wrong.append(f"{info.name} params {figures[0]:,} and MACs {figures[1]:,} in the table, "
                             f"{measured[0]:,} and {measured[1]:,} built")
            figures = measured
        rows.append(_row(info, shape, figures, built))
    if wrong:
        raise ModelError(f"the model table is out of date (python -m edgecls.models.catalog rewrites it): "
                         f"{'; '.join(wrong)}")
    return rows


def _from_table(info: ModelInfo, shape: tuple[int, int, int], classes: int) -> tuple[int, int] | None:
    """(params, MACs) from the table, or None when it has no entry for this model and input."""
    entry = TABLE.get(info.name)
    if entry is None or tuple(entry["input"]) != tuple(shape):
        return None
    extra = classes - TABLE_CLASSES  # the logits Dense: features x classes weights (+ bias) and MACs
    return entry["params"] + extra * (entry["features"] + 1), entry["macs"] + extra * entry["features"]


def _build(name: str, classes: int, shape: tuple[int, int, int]) -> tuple[int, int]:
    from edgecls.models.macs import model_macs
    from edgecls.models.registry import create

    model = create(name, classes, shape)
    return int(model.count_params()), int(model_macs(model))


def _row(info: ModelInfo, shape: tuple[int, int, int], figures: tuple[int, int], built: bool) -> dict:
    return {"name": info.name, "family": info.family, "params": figures[0], "macs": figures[1],
            "input": list(shape), "qat": info.qat, "qat_note": info.qat_note, "pretrained": info.imagenet,
            "description": info.description, "built": built}


def measure(name: str) -> dict[str, Any]:
    """A table entry, by building ``name`` at its default input with ``TABLE_CLASSES`` classes."""
    from edgecls.models.macs import model_macs
    from edgecls.models.registry import create, get_info

    shape = get_info(name).default_input
    model = create(name, TABLE_CLASSES, shape)
    logits = model.get_layer("logits")
    if len(logits.input_shape) != 2 or not logits.use_bias:
        raise ModelError(f"{name}: its logits are not a Dense on pooled features: the table cannot scale its classes")
    return {"input": list(shape), "params": int(model.count_params()), "macs": int(model_macs(model)),
            "features": int(logits.input_shape[-1])}


def _write_table() -> None:
    """Rebuild every registered model and rewrite TABLE in this file."""
    path = Path(__file__)
    text = path.read_text()
    start = text.index("TABLE: dict[str, dict[str, Any]] = {\n")
    end = text.index("}\n# --- end of table ---")
    lines = [f"    {info.name!r}: {measure(info.name)!r}," for info in list_models()]
    path.write_text(text[:start] + "TABLE: dict[str, dict[str, Any]] = {\n" + "\n".join(lines) + "\n" + text[end:])


if __name__ == "__main__":  # pragma: no cover
    _write_table()
