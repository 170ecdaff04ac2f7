"""The run directory: every path of it, the one writer's lock, and the typed records its stages write.

This is the contract between stages (DESIGN.md). A stage takes a :class:`Run`,
reads the records earlier stages wrote and returns its own; no stage imports
another stage's code, and no other module joins run-directory paths by hand.

Every record names what it was made from (:class:`MadeFrom`: a SHA-256 of
the recipe sections it used and of its input files). A record whose inputs
changed since is *stale*: :meth:`Run.status` and the stages say why, and the
stages redo it instead of calling it done.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from edgecls import fileio
from edgecls.errors import EdgeclsError, StageError

def check_name(name: str, what: str) -> str:
    """A stage, variant or device name that is safe as one file name in the run (no '/', not '..').

    Recipes check their names with the same rule when they load; this guards names that come from elsewhere.
    """
    from edgecls.recipe.typed import PLAIN_NAME

    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise StageError(f"{what} {name!r}: names may hold only letters, digits, '_', '.' and '-' "
                         "(they become file names in the run directory)")
    return name


class RunLocked(EdgeclsError):
    """Another process is writing this run directory."""


# --- hashing ------------------------------------------------------------------------------------------------

_HASHES: dict[tuple, str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """The file's SHA-256, remembered per (path, inode, size, mtime): status checks one model for every
    stage and variant made from it, and an atomic write (a new inode) is always read again."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def sha256_json(obj: Any) -> str:
    """The hash of a recipe section: its canonical JSON (sorted keys), so key order does not matter."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


@dataclass(frozen=True)
class MadeFrom:
    """What a record was made from: recipe sections (name -> hash) and input files (run-relative path -> hash)."""

    recipe: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"recipe": dict(self.recipe), "files": dict(self.files)}

    @classmethod
    def from_json(cls, data: Any) -> "MadeFrom | None":
        if not isinstance(data, dict):
            return None
        return cls(dict(data.get("recipe") or {}), dict(data.get("files") or {}))


# --- records ------------------------------------------------------------------------------------------------
# Each record is what one stage writes for one artifact. Its fixed fields are its JSON keys; `metrics`
# (a metrics.classification_report and stage-specific figures) is flattened into the same JSON object,
# so a reader of metrics.json or export.json finds `accuracy` at the top as before.

@dataclass(kw_only=True)
class _Record:
    """JSON for a record dataclass: its fields are the keys, ``metrics`` is spread among them.

    Every record names the hash of the file it describes and what that file was made from.
    """

    WHERE = "record"
    output_sha256: str | None = None
    made_from: MadeFrom | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "metrics":
                out.update(value)
            elif f.name == "made_from":
                out["made_from"] = value.to_json() if value else None
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Any, where: str | None = None):
        where = where or cls.WHERE
        if not isinstance(data, Mapping):
            raise StageError(f"{where}: expected a JSON object, got {type(data).__name__}; "
                             "the file is damaged: run the stage again with --force")
        fields = dataclasses.fields(cls)
        kwargs: dict[str, Any] = {"metrics": {k: v for k, v in data.items() if k not in {f.name for f in fields}}}
        missing = []
        for f in fields:
            if f.name == "metrics":
                continue
            if f.name in data:
                kwargs[f.name] = MadeFrom.from_json(data[f.name]) if f.name == "made_from" else data[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(f.name)
        if missing:
            raise StageError(f"{where}: missing {', '.join(missing)}; the file is damaged or was written by an "
                             "older edgecls: run the stage again with --force")
        return cls(**kwargs)


@dataclass
class TrainRecord(_Record):
    """train/metrics.json: the trained model's test metrics, what made it, and the model file's hash."""

    WHERE = "train/metrics.json"
    metrics: dict
    train_seconds: float = 0.0
    replicas: int = 1
    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])


@dataclass
class StageRecord(_Record):
    """One entry of compress/metrics.json: a compression stage's model and its test metrics."""

    WHERE = "compress/metrics.json"
    name: str
    kind: str
    source: str
    path: str
    metrics: dict
    epochs: int = 0
    learning_rate: float = 0.0
    layers_wrapped: list = field(default_factory=list)
    layers_left: list = field(default_factory=list)
    seconds: float = 0.0
    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])


@dataclass
class VariantRecord(_Record):
    """One entry of export/export.json: a TFLite variant, its size, accuracy and parity with its source."""

    WHERE = "export/export.json"
    name: str
    source: str
    mode: str
    path: str
    size_bytes: int
    gzip_bytes: int
    accuracy: float
    source_accuracy: float
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    fully_integer: bool
    input_dtype: str
    output_dtype: str
    metrics: dict = field(default_factory=dict)
    per_channel: bool = True
    float_ops: list = field(default_factory=list)
    ops: dict = field(default_factory=dict)
    seconds: float = 0.0
    # calibrate: temperature -> {"method", "temperature", "fitted_on", "fitted_to", "images", "ece_before",
    # "ece_before_of", "ece_after"} (edgecls.export.stage.calibration_record); None for calibrate: none.
    calibration: Optional[dict] = None
    target: str = "tflite"  # tflite | micro (also .cc/.h, TFLite Micro figures) | onnx (path is the .onnx)
    # target: micro. The tensor arena TFLite Micro's own interpreter needed for this model, and its top-1
    # agreement with LiteRT on the test split; `micro` has the rest (edgecls.export.micro.micro_record).
    arena_bytes: Optional[int] = None
    micro_agreement: Optional[float] = None
    micro: Optional[dict] = None
    # float_layers: which layers stayed float and what that cost (edgecls.export.quantdebug.selective_int8).
    float_layers: Optional[dict] = None
    onnx: Optional[dict] = None  # target: onnx: onnxruntime's parity with the Keras source (edgecls.export.onnx)


@dataclass
class ExportRecord:
    """export/export.json: the input every variant takes, the labels file and the variants."""

    recipe: str
    variants: list[VariantRecord]
    labels: str = "labels.txt"
    test_split: str = "test.npz"
    input: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"recipe": self.recipe, "labels": self.labels, "test_split": self.test_split, "input": self.input,
                "variants": [v.to_json() for v in self.variants]}

    @classmethod
    def from_json(cls, data, where="export/export.json") -> "ExportRecord":
        if not isinstance(data, Mapping) or not isinstance(data.get("variants"), list):
            raise StageError(f"{where}: not an export report (no 'variants' list); the file is damaged: "
                             "run `edgecls export RUN --force`")
        return cls(recipe=str(data.get("recipe", "")), labels=str(data.get("labels", "labels.txt")),
                   test_split=str(data.get("test_split", "test.npz")), input=dict(data.get("input") or {}),
                   variants=[VariantRecord.from_json(v, f"{where}: variant {i + 1}")
                             for i, v in enumerate(data["variants"])])

    def variant(self, name: str) -> VariantRecord | None:
        return next((v for v in self.variants if v.name == name), None)


@dataclass
class BenchRow:
    """One row of bench/<device>/report.json: a variant at one thread count and delegate on one device."""

    variant: str
    mode: str | None
    delegate: str
    device: str
    threads: int
    size_bytes: int | None
    accuracy_on: str  # device | host
    status: str  # "ok", or "failed: <step>: <reason>"
    accuracy: float | None = None
    top5_accuracy: float | None = None
    macro_f1: float | None = None
    ece: float | None = None
    mean_average_precision: float | None = None
    mean_corruption_accuracy: float | None = None  # bench --corruptions: mean over corruptions and severities
    corruption_drop: float | None = None  # clean accuracy minus mean_corruption_accuracy
    worst_slice_gap: float | None = None  # whole-split accuracy minus the worst slice's (data.slices / source)
    latency_ms: dict = field(default_factory=dict)  # p50, p90, p99, mean
    init_ms: float | None = None
    peak_rss_mb: float | None = None
    latency_source: str | None = None
    backend: str | None = None
    pareto: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StatusRow:
    """One line of `edgecls status`: an artifact and whether it is done, stale (why), missing or failed."""

    kind: str  # train | stage | variant | bench
    name: str
    state: str  # done | stale | missing | failed
    why: str = ""
    path: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# --- the run directory ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One run directory and every path in it (see DESIGN.md for the tree)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Run":
        """An existing run directory (one `edgecls train` made); StageError when it is not one."""
        run = cls(Path(path))
        if not run.recipe.is_file():
            raise StageError(f"{run.recipe} not found: is {run.root} a run directory (edgecls train makes it)?")
        return run

    @classmethod
    def for_recipe(cls, name: str, base: str | os.PathLike = "runs") -> "Run":
        return cls(Path(base) / check_name(name, "recipe name"))

    # top level
    @property
    def recipe(self) -> Path:
        """The resolved recipe (after --set overrides): what every stage reads."""
        return self.root / "recipe.yaml"

    @property
    def split(self) -> Path:
        """Indices of the train/validation/test split, so every stage tests on the same images."""
        return self.root / "split.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

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

    def has_backup(self) -> bool:
        """An interrupted training left its state here (what --resume continues from)."""
        return self.backup.is_dir() and any(p.is_file() for p in self.backup.rglob("*"))

    @property
    def history(self) -> Path:
        return self.train / "history.csv"

    @property
    def train_metrics(self) -> Path:
        return self.train / "metrics.json"

    @property
    def tensorboard(self) -> Path:
        return self.train / "tensorboard"

    # compress/
    @property
    def compress(self) -> Path:
        return self.root / "compress"

    @property
    def compress_metrics(self) -> Path:
        return self.compress / "metrics.json"

    def stage_model(self, name: str, kind: str) -> Path:
        """A compression stage's model: .h5 for QAT (tf_keras's .keras format cannot reload tfmot's
        quantize layers), .keras for the others."""
        return self.compress / f"{check_name(name, 'compress stage')}{'.h5' if kind == 'quantize' else '.keras'}"

    def model_file(self, recipe, source: str) -> Path:
        """The Keras model a stage or variant reads: 'train' or the name of a compression stage."""
        if source == "train":
            return self.model
        for stage in recipe.compress:
            if stage.name == source:
                return self.stage_model(stage.name, stage.kind)
        raise StageError(f"no compress stage named '{source}' in {self.recipe}")

    def load_model(self, recipe, source: str):
        """The Keras model of ``source`` ('train' or a stage), loaded without running code from the file."""
        path = self.model_file(recipe, source)
        if not path.is_file():
            cmd = "edgecls train" if source == "train" else f"edgecls compress {self.root}"
            raise StageError(f"{path} not found: run `{cmd}` first")
        from edgecls.models.loading import load_keras_model

        # Checked before Keras reads it (no Lambda or other code runs); a QAT stage's .h5 needs tfmot's scope.
        what = "the trained model" if source == "train" else f"compress stage '{source}'"
        return load_keras_model(path, what=what, quantized=path.suffix == ".h5")

    # export/
    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def export_json(self) -> Path:
        return self.export / "export.json"

    @property
    def labels(self) -> Path:
        return self.export / "labels.txt"

    @property
    def test_split(self) -> Path:
        """The test split as the device sees it (uint8 RGB pixels, labels, class names): bench needs no data source."""
        return self.export / "test.npz"

    def variant(self, name: str) -> Path:
        return self.export / f"{check_name(name, 'export variant')}.tflite"

    def micro_sources(self, name: str) -> tuple[Path, Path]:
        """target: micro: the C++ source (model array, op resolver, constants) and its header."""
        stem = self.export / check_name(name, "export variant")
        return stem.with_name(stem.name + ".cc"), stem.with_name(stem.name + ".h")

    def onnx(self, name: str) -> Path:
        return self.export / f"{check_name(name, 'export variant')}.onnx"

    def variant_path(self, variant) -> Path:
        """The file an export entry (recipe.schema.ExportVariant) makes: its .onnx for target onnx, else .tflite."""
        return self.onnx(variant.name) if variant.target == "onnx" else self.variant(variant.name)

    def quantdebug(self, name: str) -> tuple[Path, Path]:
        """`edgecls quantdebug`: the per-layer error record and its plot."""
        stem = self.export / f"{check_name(name, 'export variant')}.quantdebug"
        return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".png")

    @staticmethod
    def calibration_indices(recipe, n_train: int, samples: int):
        """Which training images calibrate an int8/int16x8 variant: the same ones however many variants are
        exported together, and the ones `edgecls quantdebug` debugs with."""
        import numpy as np

        n = min(int(samples), int(n_train))
        return np.sort(np.random.default_rng(recipe.seed).choice(int(n_train), n, replace=False))

    # bench/
    @property
    def explain(self) -> Path:
        """Where `edgecls explain` writes its panels and records by default."""
        return self.root / "explain"

    def bench(self, device: str) -> Path:
        return self.root / "bench" / check_name(device, "device")

    def bench_report(self, device: str) -> Path:
        return self.bench(device) / "report.json"

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    # --- provenance -------------------------------------------------------------------------------------------

    def made_from(self, sections: Mapping[str, Any], files: Iterable[Path]) -> MadeFrom:
        """The provenance of a record about to be written: hashes of these recipe sections and files."""
        return MadeFrom({k: sha256_json(v) for k, v in sections.items()},
                        {self.rel(p): sha256_file(p) for p in files})

    def stale_because(self, record, sections: Mapping[str, Any] | None = None,
                      output: Path | None = None, *, missing_ok: bool = False) -> str | None:
        """Why ``record`` no longer describes its artifact, or None when it is current.

        Compares the hashes it recorded with the recipe sections (``None``: not checked) and files as
        they are now, and the artifact itself (``output``) with the hash written beside it.
        ``missing_ok``: an input file that is not here is not checked (bench on a copy of export/ only).
        """
        made = record if isinstance(record, MadeFrom) or record is None else getattr(record, "made_from", None)
        if made is None:
            return "it records no provenance (made by an older edgecls)"
        for key, digest in made.recipe.items() if sections is not None else ():
            if key not in sections:
                return f"the recipe no longer has its {key} section"
            if sha256_json(sections[key]) != digest:
                return f"the recipe's {key} changed since"
        for rel, digest in made.files.items():
            path = self.root / rel
            if not path.is_file():
                if missing_ok:
                    continue
                return f"{rel} is gone"
            if sha256_file(path) != digest:
                return f"{rel} changed since"
        if output is not None:
            if not output.is_file():
                return f"{self.rel(output)} is missing"
            want = getattr(record, "output_sha256", None)
            if want and sha256_file(output) != want:
                return f"{self.rel(output)} was replaced since"
        # target: micro also wrote C sources: they are outputs too (a deleted or edited .cc is not current).
        for rel, digest in ((getattr(record, "micro", None) or {}).get("sources") or {}).items():
            path = self.root / rel
            if not path.is_file():
                if missing_ok:
                    continue
                return f"{rel} is missing"
            if sha256_file(path) != digest:
                return f"{rel} was replaced since"
        return None

    # --- records ----------------------------------------------------------------------------------------------

    def _read(self, path: Path, what: str):
        if not path.is_file():
            return None
        try:
            return fileio.read_json(path)
        except (ValueError, UnicodeDecodeError) as err:
            raise StageError(f"{path}: not valid JSON ({err}); the file is damaged: run {what} again "
                             "with --force") from None

    def training(self) -> TrainRecord | None:
        data = self._read(self.train_metrics, "`edgecls train`")
        return None if data is None else TrainRecord.from_json(data, str(self.train_metrics))

    def stages(self) -> dict[str, StageRecord]:
        data = self._read(self.compress_metrics, "`edgecls compress`")
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise StageError(f"{self.compress_metrics}: expected a JSON object; run `edgecls compress --force`")
        return {name: StageRecord.from_json({"name": name, **entry} if isinstance(entry, dict) else entry,
                                            f"{self.compress_metrics}: stage {name}")
                for name, entry in data.items()}

    def save_stages(self, records: Mapping[str, StageRecord]) -> None:
        """compress/metrics.json: {stage name: its record} (the name is the key, not repeated inside)."""
        fileio.write_json(self.compress_metrics, {n: {k: v for k, v in r.to_json().items() if k != "name"}
                                                  for n, r in records.items()})

    def exported(self) -> ExportRecord | None:
        data = self._read(self.export_json, "`edgecls export`")
        return None if data is None else ExportRecord.from_json(data, str(self.export_json))

    def bench_reports(self) -> dict[str, dict]:
        out = {}
        for path in sorted((self.root / "bench").glob("*/report.json")):
            try:
                out[path.parent.name] = self._read(path, "`edgecls bench`")
            except StageError:  # status shows it as failed ("damaged") and goes on with the others
                out[path.parent.name] = None
        return out

    # --- sections each stage depends on (one place, used when writing and when checking) ----------------------

    @staticmethod
    def train_sections(recipe) -> dict:
        from edgecls.recipe.typed import to_plain

        return {"data": _training_data(recipe), "model": to_plain(recipe.model), "train": to_plain(recipe.train),
                "seed": recipe.seed}

    @staticmethod
    def stage_sections(recipe, stage) -> dict:
        from edgecls.recipe.typed import to_plain

        return {f"compress.{stage.name}": to_plain(stage), "data": _training_data(recipe)}

    @staticmethod
    def variant_sections(recipe, variant) -> dict:
        from edgecls.recipe.typed import to_plain

        return {f"export.{variant.name}": to_plain(variant), "data": to_plain(recipe.data)}

    # --- status -----------------------------------------------------------------------------------------------

    def status(self, recipe=None) -> list[StatusRow]:
        """Every stage, variant and bench report of the run: done, stale (why), missing or failed."""
        if recipe is None:
            from edgecls.recipe import load_recipe

            recipe = load_recipe(Run.open(self.root).recipe)
        models = {"train": self._train_status(recipe)}  # what each stage and variant reads, by name

        def row(kind: str, name: str, rec, sections: dict, path: Path, source: str) -> StatusRow:
            if rec is None or not path.is_file():
                return StatusRow(kind, name, "missing", "", self.rel(path))
            up = models[source]
            # A model made from a stale compression stage is stale too, whatever its own hashes say: that stage
            # is redone, and its file changes. (train is not redone by later stages: its file hash is what counts.)
            why = (f"its source '{source}' is {up.state}" if source != "train" and up.state != "done" else
                   self.stale_because(rec, sections, path))
            return StatusRow(kind, name, "stale" if why else "done", why or "", self.rel(path))

        stages = self.stages()
        for i, stage in enumerate(recipe.compress):
            models[stage.name] = row("stage", stage.name, stages.get(stage.name), self.stage_sections(recipe, stage),
                                     self.stage_model(stage.name, stage.kind), recipe.stage_source(i))
        rows = list(models.values())
        exported = self.exported()
        for v in recipe.export:
            rows.append(row("variant", v.name, exported.variant(v.name) if exported else None,
                            self.variant_sections(recipe, v), self.variant_path(v), v.source))
        stale_files = {r.path: r for r in rows if r.kind == "variant" and r.state != "done"}
        for device, report in self.bench_reports().items():
            rows.append(self._bench_status(device, report, stale_files))
        return rows

    def _train_status(self, recipe) -> StatusRow:
        rel = self.rel(self.model)
        rec = self.training()
        if rec is None or not self.model.is_file():
            interrupted = self.has_backup()
            return StatusRow("train", "train", "failed" if interrupted else "missing",
                             "interrupted: `edgecls train --resume` continues it" if interrupted else "", rel)
        why = self.stale_because(rec, self.train_sections(recipe), self.model)
        return StatusRow("train", "train", "stale" if why else "done", why or "", rel)

    def _bench_status(self, device: str, report: Any, stale_variants: Mapping[str, StatusRow]) -> StatusRow:
        rel = self.rel(self.bench_report(device))
        if not isinstance(report, dict) or not isinstance(report.get("rows"), list):
            return StatusRow("bench", device, "failed", "report.json is damaged", rel)
        made = MadeFrom.from_json(report.get("made_from"))
        why = self.stale_because(made)
        for path in (made.files if made else ()):  # measured files that no longer hold for their model
            if not why and path in stale_variants:
                v = stale_variants[path]
                why = f"variant {v.name} is {v.state}" + (f" ({v.why})" if v.why else "")
        if not why and report.get("connect") == "micro":
            why = _budget_changed(report)
        if why:
            return StatusRow("bench", device, "stale", why, rel)
        if not report.get("complete", False):
            failed = sum(1 for r in report["rows"] if not str(r.get("status", "")).startswith("ok"))
            return StatusRow("bench", device, "failed", f"{failed} of {len(report['rows'])} rows failed", rel)
        return StatusRow("bench", device, "done", "", rel)

    # --- the one writer -----------------------------------------------------------------------------------------

    def lock(self, command: str = "") -> "RunLock":
        """Hold the run for writing: ``with run.lock("train"): ...``; a second writer fails at once."""
        return RunLock(self, command)


def _budget_changed(report: dict) -> str | None:
    """A microcontroller's verdicts hold for the flash and RAM budgets they were judged against: a board
    recipe edited since makes them stale. A board that no longer loads by its name is not checked."""
    from edgecls.bench.micro import budgets
    from edgecls.devices.loader import load_device

    try:
        dev = load_device(str(report.get("device")))
    except EdgeclsError:
        return None
    if dev.connect == "micro" and budgets(dev) != report.get("device_info"):
        return f"the budgets of device '{dev.name}' changed since"
    return None


class RunLock:
    """An exclusive flock on ``RUN/.lock``, held while a stage writes the run.

    The kernel drops a flock when its process dies, so a crashed holder never
    leaves the run locked; the file's text (pid, command, time) only names the
    holder in the error a second writer sees.
    """

    _held: dict[str, list] = {}  # run path -> [fd, depth]: a stage inside `run_all` holds the lock already

    def __init__(self, run: Run, command: str = ""):
        self.run, self.command = run, command
        self._key = ""

    def __enter__(self) -> "RunLock":
        import fcntl

        self.run.root.mkdir(parents=True, exist_ok=True)
        self._key = str(self.run.root.resolve())
        held = RunLock._held.get(self._key)
        if held is not None:  # this process holds it: nested stages share the one flock
            held[1] += 1
            return self
        fd = os.open(self.run.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = _read_holder(self.run.lock_file)
            raise RunLocked(f"{self.run.root} is being written by {holder}; wait for it to finish, "
                            "or use another --run-dir") from None
        os.ftruncate(fd, 0)
        when = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "command": self.command or " ".join(sys.argv[:3]),
                                 "since": when}).encode())
        RunLock._held[self._key] = [fd, 1]
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        held = RunLock._held.get(self._key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del RunLock._held[self._key]
            os.ftruncate(held[0], 0)
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"process {info['pid']} ({info.get('command') or 'edgecls'}, since {info.get('since', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _training_data(recipe) -> dict:
    """The data section as training and compression read it: ``slices`` only groups the test split for bench,
    so a new slice file must not make the trained model stale (export and bench do see it)."""
    from edgecls.recipe.typed import to_plain

    data = to_plain(recipe.data)
    data.pop("slices", None)
    return data
