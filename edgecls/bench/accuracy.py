"""Accuracy of the exported variants on the run's test split.

The host writes the test split once as an ``.npz`` (uint8 pixels at the
model's size, labels, class names: :func:`write_test_npz`); the device's
runtime evaluates each variant on it with all its cores
(``edgecls-runtime.pyz eval``, :mod:`edgecls.runtime.evaluate`), so the
figures are those of the device's interpreter. For adb devices (no Python on
a phone) the same evaluation runs on this host (:func:`host_runner`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecls.devices.schema import DeviceRecipe
from edgecls.errors import StageError
from edgecls.rundir import RunDir

log = logging.getLogger("edgecls.bench")

ROW_KEYS = ("accuracy", "top5_accuracy", "macro_f1", "ece")


@dataclass(frozen=True)
class TestSplit:
    path: Path
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(len(self.labels))


def write_test_npz(run: RunDir, folder: str | Path) -> TestSplit:
    """The run's test split as ``folder/test.npz``: pixels (N, H, W, 3) uint8, labels, class_names."""
    from edgecls.data.run_data import load_run_data
    from edgecls.recipe import load_recipe

    if not run.recipe.exists():
        raise StageError(f"{run.recipe} not found: is {run.root} a run directory (edgecls train made it)?")
    recipe = load_recipe(run.recipe)
    data = load_run_data(recipe, run)
    pixels = np.ascontiguousarray(data.pixels("test", channels=3), dtype=np.uint8)
    labels = np.asarray(data.labels("test"), dtype=np.int64)
    names = tuple(str(n) for n in data.class_names)
    path = Path(folder) / "test.npz"
    np.savez(path, pixels=pixels, labels=labels, class_names=np.array(names, dtype=str))
    return TestSplit(path, labels, names)


def row_fields(report: dict | None) -> dict:
    """accuracy, top5_accuracy, macro_f1, ece of an evaluation (None where absent)."""
    report = report or {}
    return {k: (round(float(report[k]), 6) if report.get(k) is not None else None) for k in ROW_KEYS}


def summary(report: dict) -> dict:
    """What report.json keeps of an evaluation: the metrics, per-class figures, the confusion matrix, how."""
    keep = ("accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "ece", "num_examples",
            "per_class", "confusion_matrix", "backend", "backend_version", "delegate", "workers", "batch",
            "seconds", "images_per_second", "cpu_count")
    return {k: report[k] for k in keep if k in report}


def host_runner(device: DeviceRecipe):
    """A runner on this host for devices that cannot evaluate themselves (adb): the same runtime, here."""
    from edgecls.devices.local import LocalRunner

    return LocalRunner(DeviceRecipe(name=f"{device.name}-host", description="accuracy on this host",
                                    connect="local", eval_threads=None, timeout=device.timeout))
