"""The run directory: the contract between stages (see DESIGN.md).

Every stage reads its inputs from here and writes its outputs here; no stage
calls another stage's code to get its input. This class only names paths.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def for_recipe(cls, name: str, base: str | Path = "runs") -> "RunDir":
        return cls(Path(base) / name)

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def split(self) -> Path:
        """Indices of the train/validation/test split, so every stage tests on the same images."""
        return self.root / "split.json"

    # train/
    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def model(self) -> Path:
        return self.train / "model.keras"

    @property
    def checkpoints(self) -> Path:
        return self.train / "checkpoints"

    @property
    def backup(self) -> Path:
        """BackupAndRestore's state: what --resume continues from."""
        return self.checkpoints / "backup"

    @property
    def history(self) -> Path:
        return self.train / "history.csv"

    @property
    def train_metrics(self) -> Path:
        return self.train / "metrics.json"

    @property
    def tensorboard(self) -> Path:
        return self.train / "tensorboard"

    @property
    def compress(self) -> Path:
        return self.root / "compress"

    @property
    def export(self) -> Path:
        return self.root / "export"

    def bench(self, device: str) -> Path:
        return self.root / "bench" / device
