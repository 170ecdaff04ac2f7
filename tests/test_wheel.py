"""The wheel works on its own: built from this tree and installed (not editable) with the ``runtime`` extra
only, in a fresh venv without TensorFlow, it finds its bundled recipes and device recipes and benchmarks an
exported run on ``--device local``.

pip builds the wheel and installs its dependencies from its cache or PyPI (the one registry reachable here).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.bench.exported import exported_run
from tests.helpers import ROOT

BUNDLED = ROOT / "edgecls" / "bundled"
RECIPES = sorted(p.stem for p in (BUNDLED / "recipes").glob("*.yaml"))
DEVICES = sorted(p.stem for p in (BUNDLED / "devices").glob("*.yaml"))
# What `git status` ignores: building in the checkout itself would leave build/ and *.egg-info there.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache")


def run(argv: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # nothing of this tree
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("wheel") / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=NOT_SOURCE)
    dist = src.parent / "dist"
    res = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, src], cwd=src.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = dist.glob("edgecls-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and its ``runtime`` extra: bin/ of it."""
    root = tmp_path_factory.mktemp("wheel-venv")
    res = run([sys.executable, "-m", "venv", root], cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    res = run([root / "bin" / "python", "-m", "pip", "install", "--quiet", f"edgecls[runtime] @ {wheel.as_uri()}"],
              cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "bin"


@pytest.fixture
def cwd(tmp_path) -> Path:
    """An empty working folder: no ./recipes or ./devices of a user's, nothing of this checkout."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_the_wheel_holds_the_bundled_yaml_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"edgecls/bundled/{p.relative_to(BUNDLED).as_posix()}" for p in BUNDLED.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert {"edgecls/bundled/recipes/digits.yaml", "edgecls/bundled/devices/local.yaml",
            "edgecls/bundled/devices/README.md"} <= shipped
    assert shipped <= names, sorted(shipped - names)
    assert "edgecls/py.typed" in names
    assert not [n for n in names if n.split("/")[0] in ("recipes", "devices", "tests")], "stray top-level folders"


def test_installed_wheel_imports_without_tensorflow(venv, cwd):
    res = run([venv / "python", "-c", "import sys, edgecls; print(edgecls.__file__); "
               "print('tensorflow' in sys.modules)"], cwd)
    assert res.returncode == 0, res.stderr
    where, tf_loaded = res.stdout.split()
    assert Path(where).is_relative_to(venv.parent) and tf_loaded == "False", res.stdout  # the installed copy
    res = run([venv / "python", "-c", "import tensorflow"], cwd)
    assert res.returncode != 0 and "No module named 'tensorflow'" in res.stderr  # the runtime extra only
    res = run([venv / "edgecls", "--help"], cwd)
    assert res.returncode == 0 and " recipes " in res.stdout and " devices " in res.stdout, res.stdout + res.stderr


def test_installed_wheel_lists_and_validates_its_recipes(venv, cwd):
    res = run([venv / "edgecls", "recipes"], cwd)
    assert res.returncode == 0, res.stderr
    listed = [line.split()[0] for line in res.stdout.splitlines()]
    assert sorted(listed) == RECIPES and "INVALID" not in res.stdout, res.stdout
    res = run([venv / "edgecls", "validate", "digits"], cwd)
    assert res.returncode == 0 and res.stdout.startswith("ok: digits"), res.stdout + res.stderr


def test_installed_wheel_lists_its_devices_and_a_users_first(venv, cwd):
    res = run([venv / "edgecls", "devices"], cwd)
    assert res.returncode == 0, res.stderr
    rows = dict(line.split(None, 1) for line in res.stdout.splitlines())
    assert sorted(rows) == DEVICES and "INVALID" not in res.stdout, res.stdout
    assert rows["local"].startswith("This host")
    # a user's ./devices comes first and wins by name; a broken one shows its error in the listing
    (cwd / "devices").mkdir()
    (cwd / "devices" / "local.yaml").write_text("name: local\ndescription: my laptop\n")
    (cwd / "devices" / "board.yaml").write_text("name: board\ntreads: [1]\n")
    res = run([venv / "edgecls", "devices"], cwd)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    broken = cwd.resolve() / "devices" / "board.yaml"
    assert lines[0].split(None, 1) == ["board", f"INVALID: {broken}:2: treads: unknown key; did you mean 'threads'?"]
    assert lines[1].split(None, 1) == ["local", "my laptop"] and len(lines) == len(DEVICES) + 1


def test_installed_wheel_benches_an_exported_run_on_local(venv, cwd, tmp_path_factory):
    # trained and exported with the main venv; a copy, so that this bench/ is not the shared run's
    run_dir = Path(shutil.copytree(exported_run(tmp_path_factory), cwd / "run"))
    res = run([venv / "edgecls", "bench", run_dir, "--device", "local", "--threads", "1", "--runs", "3",
               "--warmup", "1"], cwd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    out = run_dir / "bench" / "local"
    report = json.loads((out / "report.json").read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"float32", "int8"} and report["complete"]
    for variant, row in rows.items():
        assert row["status"] == "ok" and row["accuracy"] > 0.5 and row["latency_ms"]["p50"] > 0, row
        assert variant in res.stdout
    # matplotlib is in edgecls[plot], not in the runtime extra: the plots are skipped, and the report says how
    assert "edgecls[plot]" in report["plots"]["skipped"]
    assert "Plots skipped" in (out / "report.md").read_text() and not (out / "pareto.png").exists()
