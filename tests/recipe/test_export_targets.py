"""Export entries for microcontrollers, selective int8 and ONNX: every mistake is one line at file:line:key,
before any work (`edgecls validate`, and the same check `train` and `run` make first)."""
from __future__ import annotations

import importlib.util

import pytest

from edgecls import cli

HEAD = """\
name: t
data: {source: digits, image_size: 8, channels: 1}
model: {name: small_cnn}
"""


def _validate(write_recipe, capsys, body: str, *extra: str) -> tuple[int, list[str]]:
    path = write_recipe(HEAD + body)
    code = cli.main(["validate", str(path), *extra])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("entry, expected", [
    ("{name: a, mode: float32, target: micro}",
     ":5: export[0].target: micro needs mode int8 (TFLite Micro runs integer models); mode is float32"),
    ("{name: a, mode: int8, target: onnx}", ":5: export[0].target: onnx exports the float model; it needs mode float32"),
    ("{name: a, mode: float16, float_layers: [conv*]}",
     ":5: export[0].float_layers: keeping layers in float inside an int8 model needs mode int8 (mode is float16)"),
    ("{name: a, mode: int8, float_layers: autox}", ":5: export[0].float_layers: expected 'auto' or a list"),
    ("{name: a, mode: int8, float_layers: ['']}", ":5: export[0].float_layers: an empty pattern"),
    ("{name: a, mode: int8, target: esp32}", ":5: export[0].target: must be one of 'tflite', 'micro', 'onnx'"),
])
def test_bad_export_entries_are_one_line_at_their_key(write_recipe, capsys, entry, expected):
    code, err = _validate(write_recipe, capsys, f"export:\n  - {entry}\n")
    assert code == 2 and len(err) == 1, err
    assert expected in err[0], err


def test_micro_variants_whose_c_names_clash_are_refused(write_recipe, capsys):
    code, err = _validate(write_recipe, capsys, "export:\n  - {name: int8-micro, mode: int8, target: micro}\n"
                                                "  - {name: int8_micro, mode: int8, target: micro}\n")
    assert code == 2 and len(err) == 1 and "get the same C names (g_int8_micro_model)" in err[0], err


def test_onnx_from_a_qat_stage_is_refused(write_recipe, capsys):
    code, err = _validate(write_recipe, capsys, "compress:\n  - {name: qat, kind: quantize}\n"
                                                "export:\n  - {name: o, source: qat, mode: float32, target: onnx}\n")
    assert code == 2 and len(err) == 1 and "target: onnx cannot export the QAT stage 'qat'" in err[0], err


def test_a_micro_board_without_a_micro_variant_is_said_before_training(write_recipe, capsys):
    code, err = _validate(write_recipe, capsys, "export:\n  - {name: f, mode: float32}\n",
                          "--device", "arduino-nano-33-ble")
    assert code == 2 and len(err) == 1, err
    assert "device 'arduino-nano-33-ble' is a microcontroller" in err[0] and "target: micro" in err[0]


def test_a_target_whose_package_is_missing_is_said_before_training(write_recipe, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tflite_micro" else real(name, *a))
    code, err = _validate(write_recipe, capsys, "export:\n  - {name: m, mode: int8, target: micro}\n")
    assert code == 2 and len(err) == 1, err
    assert "export[0].target: target: micro needs tflite_micro" in err[0] and "edgecls[micro]" in err[0]
