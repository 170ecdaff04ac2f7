"""benchmarks/models.py, the zoo table: rows on disk after every model, a failing net recorded, --resume."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def args(tmp_path: Path, *more: str) -> list[str]:
    return ["--only", "lenet5,resnet8", "--epochs", "1", "--count", "120", "--runs", "3",
            "--json", str(tmp_path / "m.json"), "--png", str(tmp_path / "m.png"), *more]


def test_table_json_plot_and_a_failing_net(bench, tmp_path, monkeypatch, capsys):
    real_train = bench.train

    def train(name, options, data, *, epochs):
        if name == "resnet8":
            raise ValueError("no memory left\nsecond line")
        return real_train(name, options, data, epochs=epochs)

    monkeypatch.setattr(bench, "train", train)
    assert bench.main(args(tmp_path)) == 1  # a failed row makes the run fail, after the others are written
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    lenet, resnet = rows
    assert lenet["model"] == "lenet5" and lenet["params"] > 10_000 and lenet["macs"] > lenet["params"]
    assert 0.0 <= lenet["int8_acc"] <= 1.0 and lenet["int8_ms"] > 0 and lenet["int8_kb"] > 10
    assert resnet["error"] == "ValueError: no memory left"
    out = capsys.readouterr().out
    assert "| lenet5 | " in out and "| resnet8 | failed: ValueError: no memory left |" in out
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --resume keeps lenet5's row (same schedule) and trains only resnet8, which fails no more.
    calls = []

    def train_counted(name, options, data, *, epochs):
        calls.append(name)
        return real_train(name, options, data, epochs=epochs)

    monkeypatch.setattr(bench, "train", train_counted)
    assert bench.main(args(tmp_path, "--resume")) == 0
    assert calls == ["resnet8"]
    rows2 = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert rows2[0] == lenet and "error" not in rows2[1]

    # Another schedule is not the same measurement: nothing is kept.
    calls.clear()
    assert bench.main(args(tmp_path, "--resume", "--runs", "4")) == 0
    assert calls == ["lenet5", "resnet8"]
