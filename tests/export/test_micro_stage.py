"""The export stage's new targets end to end, through the real CLI: a TFLite Micro variant (C sources, arena
measured by TFLite Micro's interpreter, agreement with LiteRT), selective int8 (float_layers), `edgecls info`
on a micro model, `edgecls quantdebug`, and the bad inputs each gets one line for."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import DIGITS_DATA, run_cli

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install 'edgecls[micro]')")
pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install 'edgecls[onnx]')")

RECIPE = """\
name: digits-micro
seed: 0
""" + DIGITS_DATA + """model: {name: small_cnn}
train:
  epochs: 3
  batch_size: 32
  optimizer: {name: adam, learning_rate: 0.003}
export:
  - {name: float32, source: train, mode: float32}
  - {name: int8_micro, source: train, mode: int8, target: micro}
  - {name: int8_float_logits, source: train, mode: int8, float_layers: [logits]}
  - {name: onnx, source: train, mode: float32, target: onnx}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("micro-stage")
    (base / "r.yaml").write_text(RECIPE)
    res = run_cli("train", str(base / "r.yaml"), "--run-dir", str(base / "run"))
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("export", str(base / "run"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "micro: arena" in res.stdout and "float layers:" in res.stdout, res.stdout
    return base / "run"


def _variants(run: Path) -> dict:
    return {v["name"]: v for v in json.loads((run / "export" / "export.json").read_text())["variants"]}


def test_micro_variant_has_sources_arena_and_agreement(run):
    v = _variants(run)["int8_micro"]
    assert v["target"] == "micro" and v["fully_integer"]
    assert 1_000 < v["arena_bytes"] < 200_000
    assert v["micro_agreement"] >= 0.97  # TFLite Micro and LiteRT run the same int8 kernels' arithmetic
    assert v["micro"]["images"] == len(json.loads((run / "split.json").read_text())["test"])
    cc, h = (run / "export" / "int8_micro.cc"), (run / "export" / "int8_micro.h")
    size = (run / "export" / "int8_micro.tflite").stat().st_size
    assert cc.is_file() and h.is_file()
    text = cc.read_text() + h.read_text()
    assert str(size) in text and str(v["arena_bytes"]) in text
    for op in v["ops"]:  # the resolver lists exactly the model's ops
        assert op in json.dumps(v["micro"]) or op.lower().replace("_", "") in text.lower().replace("_", "")


def test_info_shows_tflite_micro_support_and_arena(run):
    res = run_cli("info", str(run / "export" / "int8_micro.tflite"))
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "TFLite Micro" in ln)
    assert "every op has a kernel" in line
    assert int(re.search(r"arena ([\d,]+) bytes", line).group(1).replace(",", "")) == \
        _variants(run)["int8_micro"]["arena_bytes"]


def test_float_layers_keep_the_named_layer_float_and_say_what_it_cost(run):
    v = _variants(run)["int8_float_logits"]
    fl = v["float_layers"]
    assert fl["layers"] and all("logits" in layer for layer in fl["layers"])
    assert "FULLY_CONNECTED" in v["float_ops"] and not v["fully_integer"]
    cost = fl["cost"]
    assert cost["size_bytes"] == v["size_bytes"] and cost["int8_size_bytes"] > 0
    assert cost["p50_ms_host"] > 0 and cost["int8_p50_ms_host"] > 0


def test_quantdebug_ranks_layers_and_writes_json_and_png(run):
    res = run_cli("quantdebug", str(run), "--variant", "int8_micro", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(res.stdout)
    assert (run / "export" / "int8_micro.quantdebug.json").is_file()
    assert (run / "export" / "int8_micro.quantdebug.png").read_bytes()[:4] == b"\x89PNG"
    rmse = [r["rmse_over_scale"] for r in record["layers"]]
    assert len(rmse) >= 4 and rmse == sorted(rmse, reverse=True)  # every quantized layer, the worst first
    assert all(x >= 0 for x in rmse) and rmse[-1] < 2.0  # rounding alone gives 0.29
    assert set(record["suggested"]) <= {r["layer"] for r in record["layers"]}


def test_quantdebug_on_a_float_variant_is_one_line(run):
    res = run_cli("quantdebug", str(run), "--variant", "float32")
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1 and "int8" in res.stderr, res.stderr


def test_a_float_layers_pattern_that_matches_nothing_is_one_line_and_keeps_the_export(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "export" / "export.json").read_bytes()
    recipe = (copy / "recipe.yaml").read_text()
    (copy / "recipe.yaml").write_text(recipe.replace("float_layers:\n    - logits", "float_layers:\n    - nomatch*")
                                      .replace("[logits]", "[nomatch*]"))
    assert (copy / "recipe.yaml").read_text() != recipe
    res = run_cli("export", str(copy), "--variant", "int8_float_logits")
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nomatch*" in errors[0] and "Traceback" not in res.stderr, res.stderr
    assert (copy / "export" / "export.json").read_bytes() == before


def test_onnx_variant_is_checked_in_onnxruntime_and_current_in_status(run):
    v = _variants(run)["onnx"]
    assert v["target"] == "onnx" and v["path"] == "export/onnx.onnx" and (run / v["path"]).is_file()
    assert v["onnx"]["max_abs_diff"] < 1e-4 and v["top1_agreement"] == 1.0
    f32 = _variants(run)["float32"]
    assert v["accuracy"] == pytest.approx(f32["accuracy"], abs=0.01)
    res = run_cli("status", str(run), "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["onnx"]["state"] == "done" and rows["int8_micro"]["state"] == "done"


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def _status(run: Path, cwd: Path | None = None) -> dict:
    res = run_cli("status", str(run), "--json", cwd=cwd)
    return {(r["kind"], r["name"]): r for r in map(json.loads, res.stdout.splitlines())}


def test_c_sources_are_outputs_a_deleted_or_edited_one_is_stale(run, tmp_path):
    copy = _copy(run, tmp_path / "run")
    (copy / "export" / "int8_micro.h").write_text("// edited by hand\n")
    row = _status(copy)[("variant", "int8_micro")]
    assert row["state"] == "stale" and "export/int8_micro.h was replaced since" in row["why"], row
    (copy / "export" / "int8_micro.cc").unlink()
    res = run_cli("export", str(copy))  # redone, not called done
    assert res.returncode == 0, res.stderr[-2000:]
    assert (copy / "export" / "int8_micro.cc").is_file() and "edited" not in (copy / "export" / "int8_micro.h").read_text()
    assert _status(copy)[("variant", "int8_micro")]["state"] == "done"


def test_a_micro_board_report_goes_stale_when_its_budget_changes(run, tmp_path):
    copy = _copy(run, tmp_path / "run")
    board = tmp_path / "devices" / "tiny-board.yaml"
    board.parent.mkdir()
    board.write_text("name: tiny-board\nconnect: micro\nflash_kb: 1024\nram_kb: 256\n")
    res = run_cli("bench", str(copy), "--device", "tiny-board", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _status(copy, tmp_path)[("bench", "tiny-board")]["state"] == "done"
    board.write_text("name: tiny-board\nconnect: micro\nflash_kb: 1024\nram_kb: 4\n")  # the arena no longer fits
    row = _status(copy, tmp_path)[("bench", "tiny-board")]
    assert row["state"] == "stale" and "budgets of device 'tiny-board' changed" in row["why"], row
    res = run_cli("bench", str(copy), "--device", "tiny-board", cwd=tmp_path)
    assert res.returncode != 0 and "exceeds the RAM budget" in res.stdout + res.stderr


def test_quantdebug_records_what_it_was_made_from_and_refuses_a_stale_source(run, tmp_path):
    copy = _copy(run, tmp_path / "run")
    res = run_cli("quantdebug", str(copy), "--variant", "int8_micro", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    made = json.loads(res.stdout)["made_from"]
    assert "train/model.keras" in made["files"] and "split.json" in made["files"]
    with open(copy / "train" / "model.keras", "ab") as fh:  # the trained model changed under its record
        fh.write(b"\0")
    res = run_cli("quantdebug", str(copy), "--variant", "int8_micro")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode != 0 and len(errors) == 1 and "source 'train'" in errors[0] and "stale" in errors[0], \
        res.stderr
