"""data.slices: export puts the CSV's subgroups into export/test.npz and bench reports accuracy per slice.

A copy of the shared exported digits run (tests/bench/exported.py) gets a slice CSV (index, then a
column); changing data.slices re-exports the variants (not the trained model), and bench writes
slices.md and slices.png. A CSV naming an image the source does not have is one line, and the earlier
export stays as it was.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgecls.bench import run_bench
from edgecls.data.splits import load_split
from edgecls.devices import DeviceRecipe
from tests.bench.exported import exported_run
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def sliced(tmp_path_factory):
    run_dir = exported_run(tmp_path_factory)
    root = tmp_path_factory.mktemp("sliced")
    run = root / "run"
    run.mkdir()
    for name in ("recipe.yaml", "split.json"):
        shutil.copy2(run_dir / name, run / name)
    for name in ("train", "export"):
        shutil.copytree(run_dir / name, run / name)
    csv = root / "groups.csv"
    csv.write_text("index,parity\n" + "".join(f"{i},{'even' if i % 2 == 0 else 'odd'}\n" for i in range(1797)))
    text = (run / "recipe.yaml").read_text()
    assert "  slices: null\n" in text  # the resolved recipe names every field
    (run / "recipe.yaml").write_text(text.replace("  slices: null\n", f"  slices: {csv}\n", 1))
    res = run_cli("export", str(run))
    assert res.returncode == 0, res.stderr[-2000:]
    return run, root


def test_export_writes_the_slices_and_keeps_the_model(sliced):
    run, _ = sliced
    with np.load(run / "export" / "test.npz", allow_pickle=False) as npz:
        parity = npz["slice_parity"]
    test_index = load_split(run / "split.json")["test"]
    assert list(parity) == ["even" if i % 2 == 0 else "odd" for i in test_index]
    rows = {r.split()[1]: r.split()[2] for r in run_cli("status", str(run)).stdout.splitlines() if r.strip()}
    assert rows["train"] == "done"  # a slice file groups the test split; it does not touch training


def test_bench_reports_every_slice(sliced, tmp_path):
    run, _ = sliced
    report = run_bench(run, DeviceRecipe(name="sl", connect="local", threads=(1,), runs=3, warmup=1),
                       out_dir=tmp_path, explain_images=0)
    ev = report["evaluations"][0]
    slices = ev["slices"]["attributes"]["parity"]
    assert set(slices) == {"even", "odd"} and sum(s["n"] for s in slices.values()) == report["test_images"]
    worst = ev["slices"]["worst"]
    assert worst["accuracy"] == min(s["accuracy"] for s in slices.values())
    assert report["rows"][0]["worst_slice_gap"] == pytest.approx(ev["accuracy"] - worst["accuracy"], abs=1e-6)
    md = (tmp_path / "slices.md").read_text()
    assert "| parity | even |" in md and "| parity | odd |" in md
    assert (tmp_path / "slices.png").read_bytes()[:4] == b"\x89PNG"


def test_a_csv_naming_an_unknown_image_is_one_line_and_keeps_the_export(sliced):
    run, root = sliced
    before = {p.name: p.read_bytes() for p in (run / "export").iterdir()}
    (root / "groups.csv").write_text("index,parity\n0,even\n99999,odd\n")
    res = run_cli("export", str(run), "--force")
    assert res.returncode == 1 and "groups.csv" in res.stderr and "99999" in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "groups.csv:3: index 99999" in errors[0], res.stderr  # progress lines aside
    assert {p.name: p.read_bytes() for p in (run / "export").iterdir()} == before


def test_a_csv_edited_in_place_reaches_test_npz(sliced, tmp_path):
    """Same path, new groups: every variant stays current, but test.npz gets the new slices (and a new hash)."""
    run, root = sliced
    csv = root / "groups.csv"
    old_csv, old_npz = csv.read_text(), (run / "export" / "test.npz").read_bytes()
    try:
        csv.write_text("index,parity\n" + "".join(f"{i},{'low' if i < 900 else 'high'}\n" for i in range(1797)))
        res = run_cli("export", str(run))
        assert res.returncode == 0 and "its slices are updated" in res.stderr, res.stderr[-2000:]
        with np.load(run / "export" / "test.npz", allow_pickle=False) as npz:
            assert set(npz["slice_parity"]) == {"low", "high"}
    finally:
        csv.write_text(old_csv)
        (run / "export" / "test.npz").write_bytes(old_npz)
