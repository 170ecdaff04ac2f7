"""``edgecls explain``: saliency maps of a run's models for some images, side by side, and how much they agree.

Every column of a panel is one model, explained by one method so the maps compare:

- ``occlusion`` (default): each exported ``.tflite`` variant through the runtime's
  :func:`edgecls.runtime.explain.occlusion_map` and a runtime Classifier, and the reference, the float Keras
  model the variants came from (``train``), through the same occlusion code.
- ``gradcam``: Keras models only: ``train`` and each compression stage. In ``variants`` a name is ``train``,
  a stage, or an export variant meaning its Keras source.

The reference is always the first column (``train``); each column's map is compared with it by Spearman's
rank correlation and the IoU of the top-20 % regions (edgecls.metrics). Each model explains its own predicted
class, so a variant whose prediction flips shows it as disagreement.

Images are decoded and resized as the runtime does for the models' input (RGB, the recipe's size and resize
policy). Output per image in ``out_dir`` (default ``RUN/explain/``): ``<stem>.png`` (the panel) and
``<stem>.json``; plus ``index.json``: the mean agreement per column and the images that failed. An image that
does not decode is reported and skipped; the others are written. Models are read only through the safe loaders
(Run.load_model; the runtime's model reader).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecls import fileio
from edgecls.errors import StageError, UsageError
from edgecls.run import Run

log = logging.getLogger("edgecls.explain")

METHODS = ("occlusion", "gradcam")
REFERENCE = "train"  # the float Keras model every variant is compared with
CHUNK = 32  # images explained (and written) together: Grad-CAM batches, progress, outputs as they come
INDEX = "index"  # index.json: an image named index.* gets another stem


@dataclass
class Column:
    """One model in the panels: ``name`` as the user says it, what runs (``kind``), its Keras ``source``."""

    name: str
    kind: str  # "keras" | "tflite"
    source: str  # 'train' or a compression stage: the Keras model (itself, or what the variant was made from)
    mode: str | None = None  # the export mode of a tflite column
    explain: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)
    labels: Sequence[str] = ()
    settings: dict = field(default_factory=dict)  # layer (gradcam), patch and stride (occlusion)

    @property
    def title(self) -> str:
        if self.kind == "tflite":
            mode = f"{self.mode}, " if self.mode != self.name else ""
            return f"{self.name} ({mode}from {self.source})"
        return self.name if self.name == self.source else f"{self.name} ({self.source})"


def explain(run: Run | str | os.PathLike, inputs: Sequence[str | os.PathLike], *, variants: Sequence[str] = (),
            method: str = "occlusion", layer: str | None = None, out_dir: str | os.PathLike | None = None,
            patch: int | None = None, stride: int | None = None) -> dict:
    """Explain ``inputs`` (image files and folders) with the run's models; write panels and JSON; return the index.

    The index (also ``index.json``): method, reference, per-column mean ``rank_correlation``, ``top20_iou`` and
    ``top1_agreement`` with the reference, the ``outputs`` written and the inputs that ``failed``
    (``complete`` is False when any did). Raises for a bad method, variant, layer or missing model.
    """
    from edgecls.recipe import load_recipe
    from edgecls.runtime.cli import expand_inputs

    run = Run.open(run.root if isinstance(run, Run) else Path(run))
    recipe = load_recipe(run.recipe)
    paths = expand_inputs([os.fspath(p) for p in inputs])
    if not paths:
        raise UsageError("explain: name at least one image or folder of images")
    out = Path(out_dir) if out_dir is not None else run.explain
    with run.lock("explain"):
        explainer = Explainer(run, recipe, variants=variants, method=method, layer=layer, patch=patch,
                              stride=stride)
        return _explain_files(explainer, paths, out)


class Explainer:
    """The run's models for one method, loaded once: ``explainer(pixels) -> {column: (maps, probs)}``."""

    def __init__(self, run: Run, recipe: Any, *, variants: Sequence[str] = (), method: str = "occlusion",
                 layer: str | None = None, patch: int | None = None, stride: int | None = None):
        if method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
        if layer is not None and method != "gradcam":
            raise UsageError("--layer picks Grad-CAM's feature map: it goes with --method gradcam")
        self.run, self.recipe, self.method = run, recipe, method
        self.input_size = tuple(int(s) for s in recipe.data.image_size)
        self.resize = recipe.data.resize
        columns = (_gradcam_columns if method == "gradcam" else _occlusion_columns)(run, recipe, list(variants))
        labels = _labels(run)
        keras_cols: dict[str, Column] = {}  # source -> its first column: one model and map per Keras source
        for col in columns:
            if col.kind == "tflite":
                self._tflite(col, patch, stride)
            elif col.source in keras_cols:
                first = keras_cols[col.source]
                col.explain, col.labels, col.settings = first.explain, first.labels, first.settings
            else:
                model = run.load_model(recipe, col.source)
                self._keras(col, model, layer, patch, stride)
                col.labels = labels or tuple(str(i) for i in range(int(model.output_shape[-1])))
                keras_cols[col.source] = col
        self.columns = columns
        self.chunk = CHUNK if method == "gradcam" else max(1, CHUNK // 8)  # occlusion: seconds an image

    def _keras(self, col: Column, model: Any, layer: str | None, patch: int | None, stride: int | None) -> None:
        if self.method == "gradcam":
            from edgecls.explain.gradcam import GradCam

            cam = GradCam(model, layer=layer, pixels=self.recipe.data)
            col.settings = {"layer": cam.layer.name, "gradient_of": cam.score_kind}
            col.explain = lambda pixels: cam(pixels.astype(np.float32))
            return
        from edgecls._tf import tf
        from edgecls.export.convert import with_pixel_input

        d = self.recipe.data
        net = with_pixel_input(model, channels=d.channels, mean=d.normalize.mean, std=d.normalize.std)
        h, w = self.input_size
        call = tf.function(lambda x: net(x, training=False), input_signature=[tf.TensorSpec((None, h, w, 3))])
        col.explain = _occluder(lambda px: call(px.astype(np.float32)).numpy(), col, patch, stride)

    def _tflite(self, col: Column, patch: int | None, stride: int | None) -> None:
        from edgecls.runtime.classifier import Classifier
        from edgecls.runtime.cli import quiet_native_stderr

        with quiet_native_stderr():  # the interpreter's "Created TensorFlow Lite XNNPACK delegate" line
            clf = Classifier.from_file(self.run.variant(col.name))
        if tuple(clf.input_size) != self.input_size or clf.channels != 3:
            raise StageError(f"{self.run.variant(col.name)} takes {clf.input_size} x {clf.channels} input, not "
                             f"the recipe's {self.input_size} RGB: it is stale: run `edgecls export {self.run.root}`")
        col.labels = clf.labels
        col.explain = _occluder(clf.predict_pixels, col, patch, stride)

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """An image file as every column takes it: uint8 RGB at the input size (the runtime's decode and resize)."""
        from edgecls.runtime.image import load_image, resize_image

        return resize_image(load_image(path, channels=3), self.input_size, self.resize)

    def __call__(self, pixels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{column name: (maps (N, H, W) float32, probabilities (N, K))} for uint8 RGB pixels (N, H, W, 3)."""
        done: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # columns sharing a Keras source share its maps
        for col in self.columns:
            if id(col.explain) not in done:
                done[id(col.explain)] = col.explain(pixels)
        return {col.name: done[id(col.explain)] for col in self.columns}


def _occluder(predict: Callable[[np.ndarray], np.ndarray], col: Column, patch: int | None,
              stride: int | None) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Occlusion maps image by image (the runtime's code), with each image's probabilities."""
    from edgecls.runtime.explain import occlusion_map

    def run(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, probs = [], []
        for image in pixels:
            occ = occlusion_map(predict, image, patch=patch, stride=stride)
            col.settings.update(patch=occ.patch, stride=occ.stride)
            maps.append(np.asarray(occ.heatmap, np.float32))
            probs.append(np.asarray(predict(image[None]), np.float32)[0])
        return np.stack(maps), np.stack(probs)

    return run


# --- which models ------------------------------------------------------------------------------------------

def _split(names: Sequence[str]) -> list[str]:
    """--variants as given: repeated and comma-separated names, in order, each once."""
    out = [n.strip() for item in names for n in str(item).split(",") if n.strip()]
    return list(dict.fromkeys(out))


def _occlusion_columns(run: Run, recipe: Any, names: list[str]) -> list[Column]:
    exported = run.exported()
    if exported is None or not exported.variants:
        raise StageError(f"{run.export_json} not found: occlusion explains exported variants: run "
                         f"`edgecls export {run.root}` first (or use --method gradcam)")
    known = [v.name for v in exported.variants if v.target != "onnx"]  # occlusion runs TFLite models
    names = [n for n in _split(names) if n != REFERENCE] if names else known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"--variants: no exported variant named '{unknown[0]}'; variants: {', '.join(known)} "
                         f"(the reference '{REFERENCE}' is always shown)")
    cols = [Column(REFERENCE, "keras", REFERENCE)]
    _need_keras(run, recipe, cols[0], "occlusion")
    for name in names:
        v = exported.variant(name)
        if not run.variant(name).is_file():
            raise StageError(f"{run.variant(name)} not found: run `edgecls export {run.root}` first")
        cols.append(Column(name, "tflite", v.source, mode=v.mode))
    return cols


def _gradcam_columns(run: Run, recipe: Any, names: list[str]) -> list[Column]:
    stages = [s.name for s in recipe.compress]
    exported = run.exported()
    variant_source = {v.name: v.source for v in recipe.export}
    variant_source.update({v.name: v.source for v in exported.variants} if exported else {})
    if names:
        names = [REFERENCE] + [n for n in _split(names) if n != REFERENCE]
    else:  # train and every stage made so far
        names = [REFERENCE] + [s for s in stages if run.model_file(recipe, s).is_file()]
    cols = []
    for name in names:
        if name == REFERENCE or name in stages:
            col = Column(name, "keras", name)
        elif name in variant_source:
            col = Column(name, "keras", variant_source[name])
        else:
            raise UsageError(f"--variants: '{name}' is neither '{REFERENCE}', a compress stage "
                             f"({', '.join(stages) or 'none'}) nor an export variant "
                             f"({', '.join(variant_source) or 'none'})")
        cols.append(col)
    for col in cols[1:] + cols[:1]:  # a named variant's own source first, then the reference's
        _need_keras(run, recipe, col, "gradcam")
    return cols


def _need_keras(run: Run, recipe: Any, col: Column, method: str) -> None:
    path = run.model_file(recipe, col.source)
    if path.is_file():
        return
    if method == "gradcam":
        what = "the reference" if col.name == REFERENCE else f"variant {col.name}"
        via = "" if col.source == col.name else f" (its source '{col.source}')"
        raise StageError(f"--method gradcam needs the Keras model {path} of {what}{via}, and it is missing: "
                         "Grad-CAM reads a Keras model's gradients")
    raise StageError(f"occlusion compares every variant with the float Keras model they came from, {path}, "
                     f"and it is missing: run `edgecls train` for {run.root} first")


def _labels(run: Run) -> tuple[str, ...]:
    """Class names for the Keras columns: export/labels.txt when the run has it."""
    if not run.labels.is_file():
        return ()
    from edgecls.runtime.classifier import read_labels

    return read_labels(run.labels)


# --- files ---------------------------------------------------------------------------------------------------

def _explain_files(explainer: Explainer, paths: list[str], out: Path) -> dict:
    from edgecls.runtime.errors import ImageError
    from edgecls.runtime.explain import unique_stem

    out.mkdir(parents=True, exist_ok=True)
    cols = explainer.columns
    totals = {c.name: {"rank_correlation": [], "top20_iou": [], "top1": []} for c in cols}
    outputs, failed, stems = [], [], {INDEX}
    done = 0
    for start in range(0, len(paths), explainer.chunk):
        chunk, images = [], []
        for path in paths[start:start + explainer.chunk]:
            try:
                images.append(explainer.load(path))
                chunk.append(path)
            except ImageError as err:  # reported in the index (the CLI prints one line each); the rest go on
                failed.append({"image": path, "error": str(err)})
        if not images:
            continue
        pixels = np.stack(images)
        results = explainer(pixels)
        for i, path in enumerate(chunk):
            stem = unique_stem(path, stems)  # the runtime's: a/x.png, b/x.png -> x, x-2
            record = _record(explainer, path, i, results)
            record["panel"] = _panel(out / f"{stem}.png", pixels[i], cols, record, results, i)
            fileio.write_json(out / f"{stem}.json", record)
            outputs.append({"image": path, "json": f"{stem}.json", "panel": record["panel"]})
            for name, entry in record["variants"].items():
                totals[name]["rank_correlation"].append(entry["rank_correlation"])
                totals[name]["top20_iou"].append(entry["top20_iou"])
                totals[name]["top1"].append(entry["index"] == record["variants"][REFERENCE]["index"])
        done += len(chunk)
        log.info("explain: %d/%d images (%s, %d models)", done + len(failed), len(paths), explainer.method, len(cols))
    index = {
        "run": str(explainer.run.root), "method": explainer.method, "reference": REFERENCE,
        "input_size": list(explainer.input_size), "out_dir": str(out), "images": len(outputs),
        "complete": not failed, "failed": failed,
        "variants": {c.name: {"kind": c.kind, "source": c.source, "mode": c.mode, **c.settings,
                              **_means(totals[c.name])} for c in cols},
        "outputs": outputs,
    }
    if outputs:  # when every image failed, the earlier index (and its panels) stays as it was
        fileio.write_json(out / f"{INDEX}.json", index)
    return index


def _record(explainer: Explainer, path: str, i: int, results: dict) -> dict:
    from edgecls.metrics import rank_correlation, top_region_iou

    ref_map = results[REFERENCE][0][i]
    variants = {}
    for col in explainer.columns:
        heat, probs = results[col.name][0][i], results[col.name][1][i]
        top = int(np.argmax(probs))
        variants[col.name] = {
            "kind": col.kind, "source": col.source, "mode": col.mode,
            "label": str(col.labels[top]) if top < len(col.labels) else str(top), "index": top,
            "score": round(float(probs[top]), 6),
            "rank_correlation": round(rank_correlation(ref_map, heat), 6),
            "top20_iou": round(top_region_iou(ref_map, heat), 6),
            **col.settings,
        }
    return {"image": path, "method": explainer.method, "reference": REFERENCE,
            "input_size": list(explainer.input_size), "variants": variants}


def _panel(path: Path, image: np.ndarray, cols: list[Column], record: dict, results: dict, i: int) -> str | None:
    """Write the panel; None (and a warning, once) without matplotlib."""
    from edgecls.explain.panel import panel_png

    tiles = []
    for col in cols:
        entry = record["variants"][col.name]
        lines = [col.title, f"{entry['label']}: {entry['score']:.2f}"]
        if col.name != REFERENCE:
            lines.append(f"rho {entry['rank_correlation']:.2f}  IoU20 {entry['top20_iou']:.2f}")
        tiles.append(("\n".join(lines), results[col.name][0][i]))
    try:
        panel_png(path, image, tiles, title=f"{Path(record['image']).name}: {record['method']}")
    except ImportError:
        if not getattr(_panel, "warned", False):
            log.warning("explain: no panels: matplotlib is not installed (pip install edgecls[plot]); "
                        "the JSON records are written")
            _panel.warned = True  # type: ignore[attr-defined]
        return None
    return path.name


def _means(totals: dict) -> dict:
    def mean(values: list) -> float | None:
        return round(float(np.mean(values)), 6) if values else None

    return {"rank_correlation": mean(totals["rank_correlation"]), "top20_iou": mean(totals["top20_iou"]),
            "top1_agreement": mean([float(v) for v in totals["top1"]])}
