"""Quantization debugger, selective int8 (float_layers) and `edgecls quantdebug` on a tiny real model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import DIGITS_DATA, run_cli

DIGITS = """\
name: qd-digits
description: tiny digits for quantdebug tests
seed: 0
""" + DIGITS_DATA + """model:
  name: small_cnn
  options: {width: 0.25, depth: 2, dropout: 0.0}
train:
  epochs: 1
  batch_size: 64
export:
  - {name: float32, source: train, mode: float32}
  - {name: int8, source: train, mode: int8, input_type: uint8, output_type: uint8, representative_samples: 64}
"""


@pytest.fixture(scope="module")
def tiny():
    """A small_cnn behind the raw-pixel wrapper, and raw-pixel calibration images (digits-like noise)."""
    from edgecls.export.convert import with_pixel_input
    from edgecls.models.registry import create

    model = create("small_cnn", 10, (8, 8, 1), width=0.25, depth=2, dropout=0.0)
    pixels = with_pixel_input(model, channels=1, mean=[0.5], std=[0.5])
    rng = np.random.default_rng(0)
    reps = rng.integers(0, 256, (48, 8, 8, 3)).astype(np.float32)
    return pixels, reps


@pytest.fixture(scope="module")
def rows(tiny):
    from edgecls.export.quantdebug import debug_layers

    return debug_layers(*tiny)


def test_debug_layers_ranks_every_op_by_rmse_over_scale(rows):
    values = [r["rmse_over_scale"] for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) >= 8
    for r in rows:
        assert {"layer", "tensor", "op", "rmse_over_scale", "error_mean", "error_std", "scale", "index"} <= set(r)
        assert r["scale"] > 0 and r["rmse_over_scale"] >= 0
    by_layer = {r["layer"]: r for r in rows}
    # Tensor names map back to the source model's Keras layers; conv + relu are one op (the conv named last).
    assert by_layer["block2_conv"]["op"] == "CONV_2D" and by_layer["block2_conv"]["selectable"]
    assert by_layer["block2_conv"]["layers"] == ["block2_relu", "block2_conv"]
    assert by_layer["logits"]["op"] == "FULLY_CONNECTED"
    # The pixel wrapper's layers are measured but not float_layers candidates.
    assert not by_layer["normalize"]["selectable"]


def test_convert_keeps_exactly_the_float_layers_float_and_runs(tiny, rows):
    from edgecls.export.convert import convert, float_nodes
    from edgecls.export.ops import op_report
    from edgecls.export.parity import tflite_probs

    model, reps = tiny
    node = next(r["tensor"] for r in rows if r["layer"] == "block2_conv")
    blob = convert(model, "int8", representative=reps, input_type="uint8", output_type="uint8", float_layers=[node])
    assert float_nodes(blob) == [("CONV_2D", node)]
    ops = op_report(blob)
    assert ops["float_ops"] == ["CONV_2D"] and not ops["fully_integer"]
    assert ops["input_dtype"] == "uint8" and ops["output_dtype"] == "uint8"
    plain = convert(model, "int8", representative=reps, input_type="uint8", output_type="uint8")
    assert op_report(plain)["fully_integer"] and len(blob) > len(plain)  # the float conv's weights are float32
    images = reps[:16].astype(np.uint8)
    probs = tflite_probs(blob, images)
    reference = model.predict(images.astype(np.float32), verbose=0)
    assert probs.shape == (16, 10) and np.abs(probs - reference).max() < 0.05


def test_attention_kept_float_in_a_tiny_vit():
    """Many ops per layer, and float outputs renamed by the quantizer ("Einsum1" -> "Einsum11"): the int8
    check still allows exactly the kept layer's ops, and the model runs with uint8 edges."""
    from edgecls.export.convert import float_nodes, with_pixel_input
    from edgecls.export.parity import tflite_probs
    from edgecls.export.quantdebug import selective_int8
    from edgecls.models.registry import create

    model = with_pixel_input(create("vit_tiny", 4, (8, 8, 1), width=0.25, depth=1, patch_size=2, heads=1),
                             channels=1, mean=[0.5], std=[0.5])
    reps = np.random.default_rng(1).integers(0, 256, (24, 8, 8, 3)).astype(np.float32)
    blob, rec = selective_int8(model, reps, ("block1_attn",), input_type="uint8", output_type="uint8",
                               evaluate=lambda b: 1.0, float_accuracy=1.0)
    floats = float_nodes(blob)
    assert rec["layers"] == ["block1_attn"] and len(floats) == len(rec["nodes"]) > 5
    assert {"BATCH_MATMUL", "SOFTMAX"} <= {op for op, _ in floats}
    assert all("/block1_attn/" in name for _, name in floats)
    assert tflite_probs(blob, reps[:4].astype(np.uint8)).shape == (4, 4)


def test_convert_float_layers_errors(tiny):
    from edgecls.export.convert import ExportError, convert

    model, reps = tiny
    with pytest.raises(ExportError, match="float_layers: no node named 'nope'.*nodes: "):
        convert(model, "int8", representative=reps, float_layers=["nope"])
    with pytest.raises(ExportError, match="needs mode int8"):
        convert(model, "float32", float_layers=["x"])


def test_pattern_matching_nothing_is_one_line_naming_it(tiny):
    from edgecls.export.convert import ExportError
    from edgecls.export.quantdebug import selective_int8

    with pytest.raises(ExportError) as info:
        selective_int8(*tiny, ("block2_*", "dense_*"), evaluate=lambda b: 1.0, float_accuracy=1.0)
    msg = str(info.value)
    assert "\n" not in msg and "'dense_*' matches no layer" in msg and "block1_conv" in msg


def test_selective_patterns_and_auto_search(tiny):
    from edgecls.export.convert import float_nodes
    from edgecls.export.quantdebug import format_table, selective_int8

    blob, rec = selective_int8(*tiny, ("block2_conv",), evaluate=lambda b: 0.5, float_accuracy=0.6)
    assert rec["layers"] == ["block2_conv"] and [op for op, _ in float_nodes(blob)] == ["CONV_2D"]

    # evaluate = the number of float ops / 10: the search must add layers until it reaches 0.2 (k = 2).
    def evaluate(b):
        return len(float_nodes(b)) / 10

    blob, rec = selective_int8(*tiny, "auto", evaluate=evaluate, float_accuracy=0.2, max_accuracy_drop=0.0,
                               max_float_layers=8)
    assert [t["k"] for t in rec["tried"]] == [0, 1, 2] and rec["target_met"]
    assert len(rec["layers"]) == 2 == len(float_nodes(blob)) and rec["accuracy"] == pytest.approx(0.2)
    assert rec["size_bytes"] == len(blob) > rec["int8_size_bytes"]
    assert "kept float: " in format_table(rec)
    # What auto keeps is what float_layers: [those layer names] keeps.
    _, again = selective_int8(*tiny, tuple(rec["layers"]), evaluate=evaluate, float_accuracy=0.2)
    assert again["nodes"] == rec["nodes"]

    # Unreachable target: at most max_float_layers tried, the best kept, target_met false.
    _, rec = selective_int8(*tiny, "auto", evaluate=evaluate, float_accuracy=0.9, max_accuracy_drop=0.0,
                            max_float_layers=1)
    assert [t["k"] for t in rec["tried"]] == [0, 1] and not rec["target_met"] and len(rec["layers"]) == 1


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qd")
    (tmp / "qd.yaml").write_text(DIGITS)
    res = run_cli("train", str(tmp / "qd.yaml"), "--run-dir", str(tmp / "run"))
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp / "run"


def test_quantdebug_writes_json_png_and_suggests(digits_run):
    from edgecls.api import quantdebug
    from edgecls.export.quantdebug import format_table
    from edgecls.run import Run

    rec = quantdebug(digits_run, "int8")
    json_path, png_path = Run.open(digits_run).quantdebug("int8")
    saved = json.loads(json_path.read_text())
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved["images"] == 64 and saved["suggested"] == rec["suggested"]
    assert [r["layer"] for r in saved["layers"]] == [r["layer"] for r in rec["layers"]]
    assert all(s in {r["layer"] for r in saved["layers"] if r["selectable"]} for s in saved["suggested"])
    text = format_table(saved)
    assert "rmse/scale" in text and "suggested:" in text and "block1_conv" in text


def test_quantdebug_on_a_float_variant_is_an_error(digits_run):
    from edgecls.api import quantdebug
    from edgecls.export.quantdebug import QuantDebugError

    with pytest.raises(QuantDebugError, match="'float32' is float32, not int8.*int8 variants: int8"):
        quantdebug(digits_run, "float32")
    with pytest.raises(QuantDebugError, match="no export variant named 'nope'"):
        quantdebug(digits_run, "nope")
