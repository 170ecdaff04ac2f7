"""``edgecls bench`` on a microcontroller board (``connect: micro``): which ``target: micro`` variants fit.

The run is a copy of the shared exported digits run whose export.json gains micro variants by hand: copies
of its real int8 .tflite with TFLite Micro figures (arena, accuracy, agreement) as export writes them.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest

from edgecls.bench.report import is_ok, summarize
from edgecls.bench.run import _variants, run_bench
from edgecls.devices import DeviceRecipe
from edgecls.errors import StageError
from edgecls.run import Run
from tests.bench.exported import copy_run
from tests.helpers import run_cli

ARENA_FITS, ARENA_WIDE = 6000, 40_000  # bytes; the board below has 16 KiB of RAM


def add_micro_variants(run_dir, variants: dict[str, int | None]) -> dict:
    """Copy export/int8.tflite to export/<name>.tflite for each name, recorded with target: micro and the arena."""
    doc = json.loads((run_dir / "export" / "export.json").read_text())
    int8 = next(v for v in doc["variants"] if v["name"] == "int8")
    for name, arena in variants.items():
        shutil.copy2(run_dir / int8["path"], run_dir / "export" / f"{name}.tflite")
        micro = {"arena_bytes": arena, "tflm_version": "0.dev20261023182759", "tflm_accuracy": 0.8875,
                 "agreement": 0.99, "images": 360}
        doc["variants"].append({**int8, "name": name, "path": f"export/{name}.tflite", "target": "micro",
                                "arena_bytes": arena, "micro_agreement": 0.99, "micro": micro})
    (run_dir / "export" / "export.json").write_text(json.dumps(doc))
    return doc


def board(tmp_path, **budgets) -> str:
    text = "name: board\ndescription: a test board\nconnect: micro\n" + "".join(f"{k}: {v}\n" for k, v in
                                                                                 budgets.items())
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def micro_run(run_dir, tmp_path_factory):
    run = copy_run(run_dir, tmp_path_factory.mktemp("micro") / "run")
    add_micro_variants(run, {"int8_micro": ARENA_FITS, "int8_wide": ARENA_WIDE})
    return run


def test_fitting_and_over_budget_rows(micro_run, tmp_path):
    size = (micro_run / "export" / "int8_micro.tflite").stat().st_size
    report = run_bench(micro_run, board(tmp_path, flash_kb=256, ram_kb=16), out_dir=tmp_path / "out")
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"int8_micro", "int8_wide"}  # float32 and int8 are not micro variants
    fits, wide = rows["int8_micro"], rows["int8_wide"]
    assert fits["fits"] is True and is_ok(fits) and fits["status"].startswith("ok: fits")
    assert "latency needs the board" in fits["status"]
    assert fits["size_bytes"] == size and fits["arena_bytes"] == ARENA_FITS
    assert fits["flash_budget_bytes"] == 256 * 1024 and fits["ram_budget_bytes"] == 16 * 1024
    assert fits["accuracy"] == 0.8875 and fits["micro_agreement"] == 0.99 and fits["accuracy_on"] == "host (tflite-micro)"
    assert fits["latency_ms"] == {"p50": None, "p90": None, "p99": None, "mean": None} and not fits["pareto"]
    # over the RAM budget: a failed row naming the budget and by how much, not a crash
    over = (ARENA_WIDE - 16 * 1024) / 1024
    assert wide["fits"] is False and not is_ok(wide)
    assert wide["status"].startswith(f"failed: budget: arena {ARENA_WIDE / 1024:.1f} KiB exceeds the RAM budget "
                                     f"16 KiB by {over:.1f} KiB"), wide["status"]
    assert report["complete"] is False and report["rows_failed"] == 1 and report["connect"] == "micro"
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"report.json", "report.csv", "report.md"}
    assert "no accuracy-latency plot" in report["plots"]["skipped"]
    table = list(csv.DictReader((out / "report.csv").open()))
    assert {r["variant"]: r["fits"] for r in table} == {"int8_micro": "True", "int8_wide": "False"}
    md = (out / "report.md").read_text()
    assert "INCOMPLETE: 1 of 2" in md and "| fits |" in md and "int8_wide: failed: budget: arena" in md
    saved = json.loads((out / "report.json").read_text())
    # export.json too: the arena in it decides the verdict (a re-export with another tflite-micro changes it)
    assert saved["made_from"]["files"].keys() == {"export/test.npz", "export/export.json", "export/int8_micro.tflite",
                                                 "export/int8_wide.tflite"}


def test_flash_budget_and_reserves(micro_run, tmp_path):
    size = (micro_run / "export" / "int8_micro.tflite").stat().st_size
    flash_kb = size // 1024 + 2  # the model fits the flash, but not once 3 KiB are reserved for the application
    report = run_bench(micro_run, board(tmp_path, flash_kb=flash_kb, ram_kb=64, flash_reserved_kb=3,
                                        ram_reserved_kb=48), out_dir=tmp_path / "out")
    rows = {r["variant"]: r for r in report["rows"]}
    assert rows["int8_micro"]["fits"] is False
    assert (f"budget: model {size / 1024:.1f} KiB exceeds the flash budget {flash_kb - 3} KiB ({flash_kb} less 3 "
            "reserved) by") in rows["int8_micro"]["status"]
    assert rows["int8_micro"]["ram_budget_bytes"] == 16 * 1024  # 64 less 48 reserved: the small arena fits that
    assert "RAM" not in rows["int8_micro"]["status"] and "RAM budget 16 KiB (64 less 48" in rows["int8_wide"]["status"]


def test_everything_fits_on_the_real_board(micro_run, tmp_path):
    report = run_bench(micro_run, "arduino-nano-33-ble", out_dir=tmp_path / "out")
    assert report["complete"] and summarize(report["rows"])["rows_failed"] == 0
    assert report["device_info"]["ram_kb"] == 256 and all(r["fits"] for r in report["rows"])
    assert "All 2 variants fit." in (tmp_path / "out" / "report.md").read_text()


def test_a_replaced_model_is_refused_as_stale(micro_run, tmp_path):
    run = copy_run(micro_run, tmp_path / "run")
    (run / "export" / "int8_micro.tflite").write_bytes(b"not the model export measured")
    with pytest.raises(StageError, match="export variant 'int8_micro' is stale"):
        run_bench(run, board(tmp_path, flash_kb=256, ram_kb=16))


def test_a_variant_without_an_arena_fails_its_row(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    add_micro_variants(run, {"int8_micro": None})
    row, = run_bench(run, board(tmp_path, flash_kb=256, ram_kb=16))["rows"]
    assert row["fits"] is None and "records no TFLite Micro arena" in row["status"] and not is_ok(row)


def test_other_devices_skip_onnx_and_keep_micro_variants(micro_run, tmp_path, caplog):
    run = copy_run(micro_run, tmp_path / "run")
    doc = json.loads((run / "export" / "export.json").read_text())
    onnx = {**doc["variants"][0], "name": "onnx", "path": "export/onnx.onnx", "target": "onnx"}
    (run / "export" / "export.json").write_text(json.dumps({**doc, "variants": [*doc["variants"], onnx]}))
    with caplog.at_level(logging.INFO, logger="edgecls.bench"):
        chosen = _variants(Run.open(run), DeviceRecipe(name="here"))
    assert [v.name for v in chosen] == ["float32", "int8", "int8_micro", "int8_wide"]
    assert [r.getMessage() for r in caplog.records] == ["bench: skipping onnx (target: onnx, not a .tflite model)"]
    with pytest.raises(StageError, match="every exported variant .* is an ONNX model"):
        _variants(Run.open(run), DeviceRecipe(name="here", variants=("onnx",)))


def test_cli_micro_board_without_micro_variants(run_dir, tmp_path):
    res = run_cli("bench", str(run_dir), "--device", "stm32-nucleo-l4r5zi", "--out", str(tmp_path / "out"))
    assert res.returncode == 1, res.stderr
    line = res.stderr.strip()
    assert line.startswith("error: device 'stm32-nucleo-l4r5zi' is a microcontroller and ") and "\n" not in line
    assert "has no export variant with target: micro" in line and not (tmp_path / "out").exists()


def test_cli_table_has_the_fits_column(micro_run, tmp_path):
    res = run_cli("bench", str(micro_run), "--device", board(tmp_path, flash_kb=256, ram_kb=16),
                  "--out", str(tmp_path / "out"))
    assert res.returncode == 1, res.stderr  # a row failed: exit 1 after the table
    head, *rows = res.stdout.splitlines()[:3]
    assert head.split()[:8] == ["variant", "size", "KiB", "flash", "KiB", "arena", "KiB", "RAM"]
    assert rows[0].split()[0] == "int8_micro" and " yes " in rows[0] and " NO " in rows[1]
    assert "no plot: a micro board has no latency" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "error: 1 of 2 rows failed; the status column says why"


def test_a_real_micro_export_then_bench(run_dir, tmp_path):
    # The contract with export: its TFLite Micro figures (tflite-micro's interpreter) are what the rows show.
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed: pip install 'edgecls[micro]'")
    run = Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("bench")))
    with (run / "recipe.yaml").open("a") as fh:
        fh.write("- {name: int8_micro, source: train, mode: int8, input_type: int8, output_type: int8, "
                 "target: micro}\n")
    res = run_cli("export", str(run), "--variant", "int8_micro")
    assert res.returncode == 0, res.stderr[-3000:]
    record = next(v for v in json.loads((run / "export" / "export.json").read_text())["variants"]
                  if v["name"] == "int8_micro")
    res = run_cli("bench", str(run), "--device", "stm32-nucleo-l4r5zi")
    assert res.returncode == 0, res.stderr[-3000:]
    row, = json.loads((run / "bench" / "stm32-nucleo-l4r5zi" / "report.json").read_text())["rows"]
    assert row["fits"] is True and row["arena_bytes"] == record["arena_bytes"] > 0
    assert row["size_bytes"] == record["size_bytes"] and row["accuracy"] == round(record["micro"]["tflm_accuracy"], 6)
    assert row["micro_agreement"] == round(record["micro_agreement"], 6) and row["images"] == record["micro"]["images"]
