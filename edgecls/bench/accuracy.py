"""Accuracy of the exported variants on the run's test split.

Export writes the test split once as ``export/test.npz`` (uint8 pixels at
the model's size, labels, class names: :func:`read_test_split` reads it); the device's
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

from edgecls.devices.base import EVALUATION_ANSWER
from edgecls.devices.schema import DeviceRecipe
from edgecls.errors import StageError, first_line
from edgecls.run import Run

log = logging.getLogger("edgecls.bench")

ROW_KEYS = ("accuracy", "top5_accuracy", "macro_f1", "ece", "mean_average_precision", "mean_corruption_accuracy",
            "corruption_drop", "worst_slice_gap")


@dataclass(frozen=True)
class TestSplit:
    path: Path
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(len(self.labels))


def read_test_split(run: Run) -> TestSplit:
    """The run's test split as export wrote it (``export/test.npz``: pixels (N, H, W, 3) uint8, labels,
    class_names): bench reads no data source, so it runs where only the runtime is installed."""
    path = run.test_split
    if not path.is_file():
        raise StageError(f"{path} not found: run `edgecls export {run.root}` (it writes the test split for bench)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            labels = np.asarray(npz["labels"], dtype=np.int64)
            names = tuple(str(n) for n in npz["class_names"])
    except (OSError, ValueError, KeyError) as err:
        raise StageError(f"{path}: not a readable test split ({first_line(err)}); run `edgecls export "
                         f"{run.root} --force`") from None
    return TestSplit(path, labels, names)


def row_fields(report: dict | None) -> dict:
    """accuracy, top5_accuracy, macro_f1, ece of an evaluation (None where absent).

    ``report`` is a runner's answer, already checked (``DeviceRunner.evaluate``): finite numbers or None."""
    report = report or {}
    return {k: (round(float(report[k]), 6) if report.get(k) is not None else None) for k in ROW_KEYS}


def summary(report: dict) -> dict:
    """What report.json keeps of an evaluation: the keys a device's answer may hold and was checked for
    (:data:`edgecls.devices.base.EVALUATION_ANSWER`: metrics, per-class figures, the confusion matrix, how)."""
    return {k: report[k] for k in EVALUATION_ANSWER if k in report}


def host_runner(device: DeviceRecipe):
    """A runner on this host for devices that cannot evaluate themselves (adb): the same runtime, here."""
    from edgecls.devices.local import LocalRunner

    return LocalRunner(DeviceRecipe(name=f"{device.name}-host", description="accuracy on this host",
                                    connect="local", eval_threads=None, timeout=device.timeout))
