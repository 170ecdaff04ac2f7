"""Callbacks that keep the run directory true while training runs."""
from __future__ import annotations

import csv
import io
import logging
import tempfile
import time
from pathlib import Path

from edgecls import fileio
from edgecls._tf import keras

log = logging.getLogger("edgecls.train")


class HistoryCSV(keras.callbacks.Callback):
    """``history.csv``, rewritten atomically each epoch.

    Rows for epochs at or after the current one are dropped first, so a run
    resumed after a kill never shows an epoch twice.
    """

    def __init__(self, path: Path, enabled: bool = True):
        super().__init__()
        self.path, self.enabled = Path(path), enabled

    def _rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))

    def on_epoch_end(self, epoch, logs=None):
        # Every worker reads the same values (reads can be collective ops under
        # MultiWorkerMirroredStrategy, and all workers must run the same ops); only the chief writes.
        logs = dict(logs or {})
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None:
            try:
                step = self.model.optimizer.iterations
                logs["lr"] = float(lr(step) if callable(lr) else keras.backend.get_value(lr))
            except Exception:  # a custom optimizer without a readable rate: leave the column out
                pass
        if not self.enabled:
            return
        rows = [r for r in self._rows() if int(r["epoch"]) < epoch + 1]
        rows.append({"epoch": epoch + 1, **{k: f"{float(v):.6g}" for k, v in logs.items()}})
        fields = ["epoch"] + sorted({k for r in rows for k in r if k != "epoch"})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
        fileio.write_text(self.path, buf.getvalue())


class EpochCheckpoint(keras.callbacks.Callback):
    """Weights after every epoch as ``checkpoints/epoch-NNN.weights.h5``; keeps the newest ``keep``.

    A non-chief worker saves too (all workers must run the same ops) but into a
    private temporary folder that is deleted.
    """

    def __init__(self, folder: Path, keep: int = 3, enabled: bool = True):
        super().__init__()
        self.folder, self.keep, self.enabled = Path(folder), keep, enabled

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled:
            with tempfile.TemporaryDirectory(prefix="edgecls-worker-") as tmp:
                self.model.save_weights(str(Path(tmp) / "w.weights.h5"))
            return
        target = self.folder / f"epoch-{epoch + 1:03d}.weights.h5"
        with fileio.atomic_path(target, suffix=".weights.h5") as tmp:
            self.model.save_weights(str(tmp))
        for old in sorted(self.folder.glob("epoch-*.weights.h5"))[:-self.keep]:
            old.unlink(missing_ok=True)


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch, for logs and non-interactive terminals (CI, nohup)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        parts = [f"{k} {v:.4f}" for k, v in (logs or {}).items()]
        log.info("epoch %d/%d (%.1f s): %s", epoch + 1, self.params.get("epochs", 0),
                 time.perf_counter() - self._start, ", ".join(parts))
