"""Data sources: each turns a recipe's ``data.source`` + options into :class:`Examples`.

Sources and their options (the recipe schema fills defaults; :func:`load_source`
fills them too, so it can be called directly):

``digits``    {classes} -- scikit-learn's 1,797 real 8x8 handwritten digits, (N, 8, 8, 1), optionally a subset.
``shapes``    {image_size, classes, count, seed} -- procedural RGB shapes (see shapes.py), with each
              image's object box and attributes (colour, size, background).
``folder``    {path, on_bad_file: "skip"|"fail", layout: "auto"|"classes"|"split"} -- one sub-folder per
              class; file paths. A pre-split tree (``train/``, ``val/`` or ``validation/``, ``test/``, each
              with class folders) is read as those splits (``layout: auto`` detects it: every top folder
              is a split name); each image's split is kept in ``Examples.parts``.
``csv``       {path, on_bad_file} -- a CSV listing, one image per row: ``path,label[,split]``. Paths are
              relative to the CSV's folder, labels are class names (sorted, like folders), split is
              train, val/validation or test. A first row ``path,label[,split]`` is a header (optional).
``tfrecord``  {path, image_key, label_key, text_key, class_names} -- encoded images in
              tf.train.Example records. ``path`` is a file, a directory (every
              non-hidden file in it) or a glob; GZIP-compressed files are detected.
              Per record: ``image_key`` (bytes, an encoded JPEG/PNG/...,
              default "image/encoded"), ``label_key`` (int64, default
              "image/class/label"), optional ``text_key`` (bytes, the class name,
              default "image/class/text"). Class names come from ``class_names`` if
              given, else from the text values, else "0".."K-1" (K = max label + 1).
              Undecodable images are skipped with a warning, named "<file>#<record>".
``keras``     {dataset: mnist|fashion_mnist|cifar10|cifar100, path} -- the Keras sets, train then
              test (``parts`` says which); with ``path``, read from the files the Keras loaders
              download, with no network.
``tfds``      {name, split, data_dir, image_key, label_key} -- TensorFlow Datasets
              (``pip install 'edgecls[tfds]'``). No ``split``: its train, validation and test
              splits, as ``parts``; a ``split`` (e.g. "train[:50%]"): only that, with no parts.

Every source's own split, where it has one, is the test split by default (``splits.test: official``,
see splits.make_split). :func:`check_source` finds what can be found without reading images.
"""
from __future__ import annotations

import csv
import glob
import gzip
import io
import logging
import math
import os
import pickle
import tarfile
import unicodedata
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from edgecls.data.images import check_image
from edgecls.errors import EdgeclsError, first_line
from edgecls.progress import bar

log = logging.getLogger("edgecls.data")

SOURCES: tuple[str, ...] = ("digits", "shapes", "folder", "csv", "tfrecord", "keras", "tfds")

PARTS: tuple[str, ...] = ("train", "validation", "test")  # the values of Examples.parts
# The names a pre-split tree's folders (and a CSV's split column) give each part.
# (Roboflow's exports say valid/; Keras tutorials and Ultralytics val/.)
PART_NAMES: dict[str, str] = {"train": "train", "val": "validation", "valid": "validation", "validation": "validation",
                              "test": "test"}
JUNK_FOLDERS = frozenset({"__MACOSX"})  # what unzipping an archive made on a Mac leaves beside the data

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"classes": None},
    "shapes": {"image_size": 64, "classes": ["circle", "square", "triangle", "star", "cross", "ring"],
               "count": 1200, "seed": 0},
    "folder": {"path": None, "on_bad_file": "skip", "layout": "auto"},
    "csv": {"path": None, "on_bad_file": "skip"},
    "tfrecord": {"path": None, "image_key": "image/encoded", "label_key": "image/class/label",
                 "text_key": "image/class/text", "class_names": None},
    "keras": {"dataset": "mnist", "path": None},
    "tfds": {"name": None, "split": None, "data_dir": None, "image_key": "image", "label_key": "label"},
}


class DataError(EdgeclsError):
    """A data problem a person can fix; the message is one line: what, where, what to do."""


def class_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a class name (a phrase to put after it), or None.

    Class names become lines of labels.txt and strings in TFLite metadata: a line
    break or another control character would split or garble them. The one rule,
    used where class names enter: recipe fields and the sources below.
    """
    if not name.strip():
        return "is empty; give every class a name"
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):  # controls, and the line/paragraph separators
            return f"contains the control character {ch!r}; rename it"
    return None


def _check_class_name(name: str, where: str) -> None:
    problem = class_name_problem(name)
    if problem:
        raise DataError(f"{where}: class name {name!r} {problem}")


@dataclass(frozen=True)
class Examples:
    """Images and labels of one data set, before any split.

    ``images`` is a uint8 (N, H, W, C) array, a list of image file paths, or a
    list of encoded image bytes; ``labels`` is int64 (N,).
    ``attributes`` (sources that know them, e.g. shapes): attribute -> str array,
    one value per image, for per-slice metrics. ``boxes``: float32 (N, 4) object
    boxes [x0, y0, x1, y1] as fractions of the image side, or None.
    ``parts``: str (N,), each image's part in the source's own split ("train",
    "validation" or "test"), or None when the source has no split of its own.
    """

    images: Union[np.ndarray, list[str], list[bytes]]
    labels: np.ndarray
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    attributes: Optional[Mapping[str, np.ndarray]] = None
    boxes: Optional[np.ndarray] = None
    parts: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        for name, values in (self.attributes or {}).items():
            if len(values) != len(self.labels):
                raise DataError(f"attribute {name!r} has {len(values)} values for {len(self.labels)} images")
        if self.boxes is not None and np.shape(self.boxes) != (len(self.labels), 4):
            raise DataError(f"boxes of shape {np.shape(self.boxes)} for {len(self.labels)} images; "
                            "expected (N, 4)")
        if self.parts is not None:
            if len(self.parts) != len(self.labels):
                raise DataError(f"{len(self.parts)} split parts for {len(self.labels)} images")
            unknown = sorted(set(np.asarray(self.parts).tolist()) - set(PARTS))
            if unknown:
                raise DataError(f"unknown split part(s) {unknown}; expected {', '.join(PARTS)}")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_source(source: str, options: dict, *, seed: int = 0) -> Examples:
    """Load one source. ``seed`` is unused by the file sources, which are read in sorted order."""
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of: {', '.join(SOURCES)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS[source]))
    if unknown:
        raise DataError(f"data source {source!r} has no option(s) {unknown}; "
                        f"its options are {sorted(DEFAULTS[source]) or 'none'}")
    opts = {**DEFAULTS[source], **options}
    loader: Callable[[dict], Examples] = _LOADERS[source]
    examples = loader(opts)
    if len(examples) == 0:
        raise DataError(f"data source {source!r} produced no examples; check its options {opts}")
    return examples


# --- digits / shapes ------------------------------------------------------------------------------

def _load_digits(opts: dict) -> Examples:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    keep = [int(c) for c in (opts.get("classes") or range(10))]
    # Labels are renumbered 0..k-1 in the order given, so a subset is a k-class task (transfer recipes).
    index = {digit: i for i, digit in enumerate(keep)}
    mask = np.isin(digits.target, keep)
    labels = np.array([index[int(t)] for t in digits.target[mask]], dtype=np.int64)
    return Examples(images[mask], labels, tuple(str(c) for c in keep))


def _load_shapes(opts: dict) -> Examples:
    from edgecls.data.shapes import generate_shapes

    classes = list(opts["classes"])
    try:
        images, labels, details = generate_shapes(image_size=int(opts["image_size"]), classes=classes,
                                                  count=int(opts["count"]), seed=int(opts["seed"]), details=True)
    except ValueError as exc:
        raise DataError(f"shapes source: {exc}") from exc
    # "shape" is the label itself: a slice of it would just be per-class accuracy.
    attributes = {key: details[key] for key in ("colour", "size", "background")}
    return Examples(images, labels, tuple(classes), attributes=attributes, boxes=details["boxes"])


# --- folder ---------------------------------------------------------------------------------------

def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively), sorted, hidden files and folders ignored."""
    found = []
    for root, dirs, files in os.walk(folder):  # nested symlinks are not followed: no cycles
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        found.extend(os.path.join(root, f) for f in sorted(files)
                     if not _is_hidden(f) and f.lower().endswith(IMAGE_EXTENSIONS))
    return found


def _check_all(items: list, names: list[str]) -> list[tuple[str, str]]:
    """(name, reason) for every item that does not decode; threads, since Pillow drops the GIL."""
    workers = min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(bar(pool.map(check_image, items), total=len(items), desc="checking images", unit="img"))
    return [(name, reason) for name, reason in zip(names, reasons) if reason is not None]


def _warn_skipped(skipped: list[tuple[str, str]], where: str) -> None:
    if skipped:
        first = ", ".join(f"{os.path.basename(p)} ({r})" for p, r in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        log.warning("skipped %d unreadable image(s) in %s: %s%s", len(skipped), where, first, more)


def _check_split_classes(classes: Mapping[str, set], where: str, after: str = "") -> None:
    """One DataError when the parts of a source's own split (display name -> class names) differ in classes:
    a model tested on a class it never trained on, or trained on one it is never tested on, is a data mistake."""
    for name in sorted(set().union(*classes.values())):
        lacking = [part for part, have in classes.items() if name not in have]
        if lacking:
            having = [part for part in classes if part not in lacking]
            raise DataError(f"{where}: class {name!r} is in {', '.join(having)} but not in {', '.join(lacking)}"
                            f"{after}; every split needs the same classes")


def _keep_readable(paths: list[str], labels: list[int], class_names: tuple[str, ...], parts: Optional[list[str]],
                   policy: str, where: str, root: str) -> Examples:
    """The Examples of these image files, less those that do not decode (``policy`` skip), or a DataError (fail)."""
    if policy not in ("skip", "fail"):
        raise DataError(f"{where}: on_bad_file must be 'skip' or 'fail', got {policy!r}")
    bad = _check_all(paths, paths)
    if bad and policy == "fail":
        path0, reason = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{where}: unreadable image {path0} ({reason}){more}; remove or replace it, "
                        "or set on_bad_file: skip")
    _warn_skipped(bad, root)
    bad_set = {p for p, _ in bad}
    keep = [i for i, p in enumerate(paths) if p not in bad_set]
    kept_labels = np.asarray([labels[i] for i in keep], dtype=np.int64)
    empty = [class_names[c] for c in range(len(class_names)) if not np.any(kept_labels == c)]
    if empty:
        raise DataError(f"{where}: class(es) {empty} in {root} have no readable images")
    kept_parts = None
    if parts is not None:
        kept_parts = np.asarray([parts[i] for i in keep], dtype=str)
        if bad:
            _check_split_classes({f"the {part} split": {class_names[c] for c in kept_labels[kept_parts == part]}
                                  for part in PARTS if np.any(kept_parts == part)},
                                 f"{where}: {root}", after=" once unreadable images are skipped")
    return Examples([paths[i] for i in keep], kept_labels, class_names, tuple(bad), parts=kept_parts)


FOLDER_LAYOUTS = ("auto", "classes", "split")


def _subfolders(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder)
                  if not _is_hidden(d) and d not in JUNK_FOLDERS and os.path.isdir(os.path.join(folder, d)))


def _split_folders(root: str, layout: str) -> dict[str, str]:
    """part -> its folder when ``root`` is a pre-split tree (as ``layout`` says), else {} (class folders).

    ``auto`` takes a tree for pre-split when every top folder has a split's name: Keras tutorials,
    Roboflow and Ultralytics write ``train/ val/ test/`` (or ``valid/``), and no one names all their
    classes so. Split names beside other folders are an error: reading them as classes would train a
    "test" class without a word.
    """
    dirs = _subfolders(root)
    named = [d for d in dirs if d.lower() in PART_NAMES]
    if layout == "classes" or (layout == "auto" and not named):
        return {}
    if not named:
        raise DataError(f"folder source: {root} has no train/, val/ (or validation/) or test/ folder; "
                        "set layout: classes for a folder with one sub-folder per class")
    others = [d for d in dirs if d not in named]
    if others:
        if layout == "auto":
            raise DataError(f"folder source: {root} holds split folders ({', '.join(d + '/' for d in named)}) "
                            f"beside other folders ({', '.join(d + '/' for d in others)}); move those into the "
                            "split folders, or set layout: classes if every folder is a class")
        raise DataError(f"folder source: {root} has {', '.join(d + '/' for d in others)} beside its split "
                        "folders; move them into train/, val/ or test/, or set layout: classes")
    found: dict[str, str] = {}
    for d in named:
        part = PART_NAMES[d.lower()]
        if part in found:
            raise DataError(f"folder source: {root} has both {os.path.basename(found[part])}/ and {d}/ "
                            f"for the {part} split; keep one")
        found[part] = os.path.join(root, d)
    if "train" not in found:
        raise DataError(f"folder source: {root} is split into {', '.join(d + '/' for d in named)} but has no "
                        "train/ folder; add one (or set layout: classes if these are class folders)")
    return {part: found[part] for part in PARTS if part in found}


def _class_files(folder: str) -> dict[str, list[str]]:
    """class name -> image files, for each class sub-folder of ``folder`` (none empty)."""
    names = _subfolders(folder)
    if not names:
        raise DataError(f"folder source: {folder} has no class sub-folders; put each class's "
                        "images in its own sub-folder")
    out = {}
    for name in names:
        _check_class_name(name, f"folder source: class folder in {folder}")
        files = _image_files(os.path.join(folder, name))
        if not files:
            raise DataError(f"folder source: class folder {os.path.join(folder, name)} has no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
        out[name] = files
    return out


def _scan_folder(opts: dict) -> tuple[str, list[str], list[int], tuple[str, ...], Optional[list[str]]]:
    """(root, image paths, labels, class names, parts or None) of a folder source; no image is opened."""
    path, layout = opts["path"], opts.get("layout", "auto")
    if layout not in FOLDER_LAYOUTS:
        raise DataError(f"folder source: layout must be one of {', '.join(FOLDER_LAYOUTS)}, got {layout!r}")
    if not path:
        raise DataError("folder source needs 'path': a folder with one sub-folder per class")
    root = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isdir(root):
        raise DataError(f"folder source: {root} is not a folder; point 'path' at a folder "
                        "with one sub-folder per class")
    splits = _split_folders(root, layout)
    by_part = {part: _class_files(folder) for part, folder in splits.items()} or {"": _class_files(root)}
    if splits:
        _check_split_classes({os.path.basename(splits[part]) + "/": set(by_class) for part, by_class in by_part.items()},
                             f"folder source: {root}")
    class_names = tuple(sorted(next(iter(by_part.values()))))
    index = {name: i for i, name in enumerate(class_names)}
    paths: list[str] = []
    labels: list[int] = []
    parts: list[str] = []
    for part, by_class in by_part.items():  # train, validation, test; each in class order
        for name, files in by_class.items():
            paths.extend(files)
            labels.extend([index[name]] * len(files))
            parts.extend([part] * len(files))
    return root, paths, labels, class_names, parts if splits else None


def _load_folder(opts: dict) -> Examples:
    root, paths, labels, class_names, parts = _scan_folder(opts)
    return _keep_readable(paths, labels, class_names, parts, opts["on_bad_file"], "folder source", root)


# --- csv ------------------------------------------------------------------------------------------

def _scan_csv(opts: dict) -> tuple[str, list[str], list[int], tuple[str, ...], Optional[list[str]]]:
    """(CSV path, image paths, labels, class names, parts or None) of a CSV listing; no image is opened.

    Rows are ``path,label[,split]``; blank lines are skipped; a first row ``path,label[,split]`` is a
    header. Either every row has a split or none does.
    """
    if not opts["path"]:
        raise DataError("csv source needs 'path': a CSV file of path,label[,split] rows")
    csv_path = os.path.abspath(os.path.expanduser(str(opts["path"])))
    if not os.path.isfile(csv_path):
        what = "is a folder" if os.path.isdir(csv_path) else "does not exist"
        raise DataError(f"csv source: {csv_path} {what}; point 'path' at a CSV file of path,label[,split] rows")
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:  # -sig: the BOM spreadsheets write
            reader = csv.reader(f)
            rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"csv source: cannot read {csv_path} ({first_line(exc)}); save it as UTF-8 CSV") from exc
    rows = [(n, row) for n, row in rows if any(row)]
    if rows and [c.lower() for c in rows[0][1]] in (["path", "label"], ["path", "label", "split"]):
        rows = rows[1:]
    if not rows:
        raise DataError(f"csv source: {csv_path} lists no images; give one path,label[,split] row per image")
    base, width = os.path.dirname(csv_path), len(rows[0][1])
    paths, names, parts, missing = [], [], [], []
    for n, row in rows:
        where = f"csv source: {csv_path}:{n}"
        if len(row) not in (2, 3):
            raise DataError(f"{where}: expected path,label[,split], got {len(row)} columns")
        if len(row) != width:
            raise DataError(f"{where}: {len(row)} columns, but line {rows[0][0]} has {width}; "
                            "give every row a split, or none")
        if not row[0]:
            raise DataError(f"{where}: the path is empty")
        _check_class_name(row[1], where)
        if width == 3:
            part = PART_NAMES.get(row[2].lower())
            if part is None:
                raise DataError(f"{where}: unknown split {row[2]!r}; use train, val (or validation) or test")
            parts.append(part)
        path = os.path.normpath(os.path.join(base, os.path.expanduser(row[0])))
        if not os.path.isfile(path):
            missing.append((n, row[0]))
        paths.append(path)
        names.append(row[1])
    if missing:
        n, file = missing[0]
        more = f" (and {len(missing) - 1} more rows name missing files)" if len(missing) > 1 else ""
        raise DataError(f"csv source: {csv_path}:{n}: {file} does not exist{more}; "
                        "fix the path (relative to the CSV's folder) or remove the row")
    if parts:
        _check_split_classes({f"the {part} rows": {c for c, p in zip(names, parts) if p == part}
                              for part in PARTS if part in parts}, f"csv source: {csv_path}")
    class_names = tuple(sorted(set(names)))
    index = {name: i for i, name in enumerate(class_names)}
    return csv_path, paths, [index[name] for name in names], class_names, parts or None


def _load_csv(opts: dict) -> Examples:
    csv_path, paths, labels, class_names, parts = _scan_csv(opts)
    return _keep_readable(paths, labels, class_names, parts, opts["on_bad_file"], "csv source", csv_path)


# --- tfrecord -------------------------------------------------------------------------------------

def _tfrecord_files(path: str) -> list[str]:
    path = os.path.expanduser(str(path))
    if any(ch in path for ch in "*?["):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f))
    elif os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not _is_hidden(f) and os.path.isfile(os.path.join(path, f)))
    elif os.path.isfile(path):
        files = [path]
    else:
        raise DataError(f"tfrecord source: {path} does not exist; give a file, a folder or a glob")
    if not files:
        raise DataError(f"tfrecord source: no files match {path}")
    return files


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _load_tfrecord(opts: dict) -> Examples:
    if not opts["path"]:
        raise DataError("tfrecord source needs 'path': a TFRecord file, folder or glob")
    from edgecls._tf import tf

    image_key, label_key, text_key = opts["image_key"], opts["label_key"], opts["text_key"]
    spec = {image_key: tf.io.FixedLenFeature([], tf.string),
            label_key: tf.io.FixedLenFeature([], tf.int64)}
    if text_key:
        spec[text_key] = tf.io.FixedLenFeature([], tf.string, default_value="")
    images: list[bytes] = []
    names: list[str] = []
    labels: list[int] = []
    texts: dict[int, tuple[str, str]] = {}
    for file in _tfrecord_files(opts["path"]):
        ds = tf.data.TFRecordDataset(file, compression_type="GZIP" if _is_gzip(file) else "")
        ds = ds.map(lambda r: tf.io.parse_single_example(r, spec))
        try:
            for i, rec in enumerate(ds.as_numpy_iterator()):
                images.append(bytes(rec[image_key]))
                names.append(f"{file}#{i}")
                label = int(rec[label_key])
                labels.append(label)
                text = rec.get(text_key, b"") if text_key else b""
                if text and label not in texts:  # the first name seen for a label, and where
                    texts[label] = (text.decode("utf-8", "replace"), f"{file}#{i}")
        except tf.errors.InvalidArgumentError as exc:
            raise DataError(f"tfrecord source: {file}: record lacks or mistypes a key "
                            f"(image_key={image_key!r} bytes, label_key={label_key!r} int64): "
                            f"{_first_line(exc)}") from exc
        except tf.errors.OpError as exc:
            raise DataError(f"tfrecord source: {file} is not a readable TFRecord file: "
                            f"{_first_line(exc)}") from exc
    if not labels:
        raise DataError(f"tfrecord source: no records in {opts['path']}")
    label_arr = np.asarray(labels, dtype=np.int64)
    if label_arr.min() < 0:
        raise DataError(f"tfrecord source: negative label {label_arr.min()} under {label_key!r}")
    k = int(label_arr.max()) + 1
    if opts["class_names"]:
        class_names = tuple(str(c) for c in opts["class_names"])
        for name in class_names:
            _check_class_name(name, "tfrecord source: class_names")
        if k > len(class_names):
            raise DataError(f"tfrecord source: label {k - 1} found but only {len(class_names)} "
                            "class_names given; list one name per class")
    else:
        for name, where in texts.values():
            _check_class_name(name, f"tfrecord source: {where} {text_key!r}")
        class_names = tuple(texts[i][0] if i in texts else str(i) for i in range(k))
    bad = _check_all(images, names)
    _warn_skipped(bad, str(opts["path"]))
    bad_set = {n for n, _ in bad}
    keep = [i for i, n in enumerate(names) if n not in bad_set]
    return Examples([images[i] for i in keep], label_arr[keep], class_names, tuple(bad))


def _first_line(exc: BaseException) -> str:
    """The useful line of an error: TensorFlow wraps the cause (e.g. "Feature: y ... is required")
    in lines of function and iterator names."""
    return first_line(exc, prefer=r"Feature: |Name: |corrupted record|truncated record", limit=1000)


# --- keras sets -----------------------------------------------------------------------------------

KERAS_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
    "cifar100": (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
        "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
        "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
        "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
        "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
        "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
        "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe",
        "whale", "willow_tree", "wolf", "woman", "worm"),
}

_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed or not."""
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"keras source: cannot read {path} ({exc}); download it again") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"keras source: {path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"keras source: {path} is truncated or corrupt "
                        f"({len(data) - header} data bytes, header says {expected})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


# Deflate expands data at most 1032-fold; a stored member is its compressed size. Bounds what a
# zip's own (unchecked) size field can claim.
_ZIP_MAX_RATIO = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}


def read_npz(path: str, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays ``keys`` of an .npz file, each header checked before numpy allocates its array.

    numpy allocates what a .npy header claims before reading the data, so a header
    saying 28 GiB would take 28 GiB; here a claim larger than the member's data is
    refused first. Pickled (object) arrays are refused too: a data file is data.
    """
    def bad(why: str) -> DataError:
        return DataError(f"keras source: {path}: {why}; download the file again")

    try:
        with zipfile.ZipFile(path) as zf:
            for key in keys:
                try:
                    info = zf.getinfo(f"{key}.npy")
                except KeyError:
                    raise bad(f"no array {key!r} in it") from None
                if info.compress_type not in _ZIP_MAX_RATIO:
                    raise bad(f"{key} is compressed by a method other than deflate")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise bad(f"{key} is a .npy of version {version[0]}.{version[1]}, expected 1.0 or 2.0")
                    header = f.tell()
                if dtype.hasobject:
                    raise bad(f"{key} holds Python objects, not numbers")
                claimed = math.prod(shape) * dtype.itemsize
                held = min(info.file_size, info.compress_size * _ZIP_MAX_RATIO[info.compress_type]) - header
                if claimed > held:
                    raise bad(f"{key}'s header claims shape {shape} ({claimed} bytes) but the file holds {held}")
        with np.load(path, allow_pickle=False) as f:
            return [f[key] for key in keys]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise bad(f"not a readable .npz file ({first_line(exc)})") from exc


def _find(folder: str, name: str) -> str | None:
    for candidate in (name, name[:-3] if name.endswith(".gz") else None):
        if candidate and os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    return None


def _train_test(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train then test, and which is which: the set's own split, for ``splits.test: official``."""
    parts = np.repeat(np.array(["train", "test"]), [len(y_train), len(y_test)])
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]), parts


def _mnist_files(folder: str, dataset: str) -> list[str]:
    """[mnist.npz], or the four IDX files (gzipped or not), in ``folder``; DataError naming what is missing."""
    npz = os.path.join(folder, "mnist.npz")  # what keras.datasets.mnist itself downloads
    if dataset == "mnist" and os.path.isfile(npz) and not _find(folder, _IDX_FILES[0]):
        return [npz]
    found = [_find(folder, name) for name in _IDX_FILES]
    for name, path in zip(_IDX_FILES, found):
        if path is None:
            raise DataError(f"keras source: {os.path.join(folder, name)} not found; put the four "
                            f"{dataset} IDX files ({', '.join(_IDX_FILES)}) in {folder}")
    return [path for path in found if path]


def _read_mnist_like(folder: str, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    files = _mnist_files(folder, dataset)
    if len(files) == 1:
        return _train_test(*read_npz(files[0], ("x_train", "y_train", "x_test", "y_test")))
    x_train, y_train, x_test, y_test = (read_idx(path) for path in files)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"keras source: {part} images {x.shape} and labels {y.shape} in {folder} "
                            "do not match; download the files again")
    return _train_test(x_train, y_train, x_test, y_test)


class _ArrayUnpickler(pickle.Unpickler):
    """Loads only dicts/lists/numpy arrays: CIFAR batches need nothing else, and a
    pickle from a downloaded file must not be able to run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module.split(".")[0] == "numpy" and name in {"_reconstruct", "ndarray", "dtype", "scalar",
                                                           "_frombuffer"}) \
                or (module, name) == ("_codecs", "encode"):  # protocol-2 pickles of bytes use it
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
        raise DataError(f"keras source: {where} is not a CIFAR batch file ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"keras source: {where} is not a CIFAR batch file (no dict inside)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_reader(folder: str, subdir: str, archive: str) -> Callable[[str], tuple[bytes, str]]:
    """name -> (bytes, where), from <folder>/<subdir>/, else <folder>/, else the <archive> tarball."""
    base = os.path.join(folder, subdir)
    if not os.path.isdir(base):
        base = folder
    tar_path = os.path.join(folder, archive)
    if not os.path.isfile(os.path.join(base, "test" if subdir.startswith("cifar-100") else "test_batch")) \
            and os.path.isfile(tar_path):
        def read_tar(name: str) -> tuple[bytes, str]:
            with tarfile.open(tar_path, "r:gz") as tar:
                try:
                    member = tar.extractfile(f"{subdir}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"keras source: {subdir}/{name} not found in {tar_path}")
                return member.read(), f"{tar_path}:{subdir}/{name}"
        return read_tar

    def read(name: str) -> tuple[bytes, str]:
        path = os.path.join(base, name)
        if not os.path.isfile(path):
            raise DataError(f"keras source: {path} not found; put the {subdir}/ folder "
                            f"(or {archive}) in {folder}")
        with open(path, "rb") as f:
            return f.read(), path
    return read


_CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
                "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz")}


def _cifar_problem(folder: str, dataset: str) -> str | None:
    """Why ``folder`` cannot hold the CIFAR set, judged by its test batch; None if it may."""
    subdir, archive = _CIFAR_FILES[dataset]
    test = "test_batch" if dataset == "cifar10" else "test"
    if any(os.path.isfile(p) for p in (os.path.join(folder, subdir, test), os.path.join(folder, test),
                                       os.path.join(folder, archive))):
        return None
    return f"keras source: {folder} has neither {subdir}/ nor {archive}; put one of them there"


def _read_cifar(folder: str, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    read = _cifar_reader(folder, *_CIFAR_FILES[dataset])
    if dataset == "cifar10":
        names, label_key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
    else:
        names, label_key = ["train", "test"], "fine_labels"
    xs, ys = [], []
    for name in names:
        data, where = read(name)
        batch = _unpickle(data, where)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"keras source: {where} lacks 'data' or '{label_key}'; "
                            "is it the python version of the set?")
        x = np.asarray(batch["data"], dtype=np.uint8)
        y = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
            raise DataError(f"keras source: {where} has data of shape {x.shape} for {len(y)} labels; "
                            "expected (N, 3072)")
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # stored channels-first
        ys.append(y)
    return _train_test(np.concatenate(xs[:-1]), np.concatenate(ys[:-1]), xs[-1], ys[-1])  # the last is test


def _keras_folder(opts: dict) -> str | None:
    """The folder of a keras source's files (checked to exist), or None: keras downloads them."""
    dataset, path = opts["dataset"], opts["path"]
    if dataset not in KERAS_CLASS_NAMES:
        raise DataError(f"keras source: unknown dataset {dataset!r}; choose one of "
                        f"{', '.join(KERAS_CLASS_NAMES)}")
    if not path:
        return None
    folder = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isdir(folder):
        raise DataError(f"keras source: {folder} is not a folder; give the folder holding "
                        f"the {dataset} files")
    return folder


def _load_keras(opts: dict) -> Examples:
    dataset, folder = opts["dataset"], _keras_folder(opts)
    if folder:
        reader = _read_cifar if dataset.startswith("cifar") else _read_mnist_like
        x, y, parts = reader(folder, dataset)
    else:
        from edgecls._tf import keras

        module = getattr(keras.datasets, dataset)
        kwargs = {"label_mode": "fine"} if dataset == "cifar100" else {}
        try:
            (x_train, y_train), (x_test, y_test) = module.load_data(**kwargs)
        except Exception as exc:  # noqa: BLE001 - network or cache failures
            raise DataError(f"keras source: could not get {dataset} ({_first_line(exc)}); "
                            "download it elsewhere and set 'path' to its folder") from exc
        x, y, parts = _train_test(x_train, y_train, x_test, y_test)
    x = np.asarray(x, dtype=np.uint8)
    if x.ndim == 3:
        x = x[..., None]
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    names = KERAS_CLASS_NAMES[dataset]
    if labels.min() < 0 or labels.max() >= len(names):
        raise DataError(f"keras source: labels outside 0..{len(names) - 1} in {dataset} data")
    return Examples(np.ascontiguousarray(x), labels, names, parts=parts)


# --- tfds -----------------------------------------------------------------------------------------

def _load_tfds(opts: dict) -> Examples:
    import importlib.util

    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise DataError("tfds source needs TensorFlow Datasets: pip install 'edgecls[tfds]'")
    from edgecls._tf import tf  # noqa: F401 - first, so TF_USE_LEGACY_KERAS is set before tfds imports TensorFlow
    import tensorflow_datasets as tfds

    if not opts["name"]:
        raise DataError("tfds source needs 'name', e.g. name: tf_flowers")
    image_key, label_key = opts["image_key"], opts["label_key"]
    try:
        # No split: every split the set has (a dict of them); keep its own train/validation/test.
        loaded, info = tfds.load(opts["name"], split=opts["split"], data_dir=opts["data_dir"],
                                 download=opts["data_dir"] is None, with_info=True)
    except Exception as exc:  # noqa: BLE001 - tfds raises many types for a missing set
        raise DataError(f"tfds source: cannot load {opts['name']!r} split {opts['split'] or 'all'!r} "
                        f"({_first_line(exc)})") from exc
    if isinstance(loaded, dict):
        splits = [(PART_NAMES[k], loaded[k]) for k in ("train", "validation", "test") if k in loaded]
        if not splits:
            raise DataError(f"tfds source: {opts['name']} has no train, validation or test split (it has "
                            f"{', '.join(sorted(loaded))}); name one with 'split'")
    else:
        splits = [("", loaded)]
    feature = info.features[label_key] if label_key in info.features else None
    if feature is None or not hasattr(feature, "names"):
        raise DataError(f"tfds source: {opts['name']} has no class label feature {label_key!r}; "
                        f"its features are {list(info.features)}")
    for class_name in feature.names:
        _check_class_name(class_name, f"tfds source: {opts['name']} {label_key!r}")
    images, labels, parts = [], [], []
    for part, ds in splits:
        for ex in tfds.as_numpy(ds):
            images.append(np.asarray(ex[image_key], dtype=np.uint8))
            labels.append(int(ex[label_key]))
            parts.append(part)
    if images and len({im.shape for im in images}) == 1:
        stacked: Union[np.ndarray, list[bytes]] = np.stack(images)
    else:  # sizes differ: keep each image losslessly as PNG bytes
        from PIL import Image

        stacked = []
        for im in images:
            buf = io.BytesIO()
            Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(buf, format="PNG")
            stacked.append(buf.getvalue())
    return Examples(stacked, np.asarray(labels, dtype=np.int64), tuple(feature.names),
                    parts=np.asarray(parts) if splits[0][0] else None)


_LOADERS: dict[str, Callable[[dict], Examples]] = {
    "digits": _load_digits,
    "shapes": _load_shapes,
    "folder": _load_folder,
    "csv": _load_csv,
    "tfrecord": _load_tfrecord,
    "keras": _load_keras,
    "tfds": _load_tfds,
}


# --- checks before work ---------------------------------------------------------------------------

def _check_keras(opts: dict) -> None:
    folder = _keras_folder(opts)
    if folder is None:
        return
    if opts["dataset"].startswith("cifar"):
        problem = _cifar_problem(folder, opts["dataset"])
        if problem:
            raise DataError(problem)
    else:
        _mnist_files(folder, opts["dataset"])


def _check_tfrecord(opts: dict) -> None:
    if not opts["path"]:
        raise DataError("tfrecord source needs 'path': a TFRecord file, folder or glob")
    _tfrecord_files(opts["path"])


_CHECKS: dict[str, Callable[[dict], Any]] = {
    "folder": _scan_folder, "csv": _scan_csv, "keras": _check_keras, "tfrecord": _check_tfrecord}


def check_source(source: str, options: dict) -> list[tuple[str, str]]:
    """Problems with a source found before any work: (key under ``data``, one-line message); [] if none.

    Cheap: files are listed and looked for but never decoded, and TensorFlow is not imported.
    Finds missing paths, pre-split folders whose classes differ, CSV rows naming missing files,
    keras folders without the set's files, tfds not installed. The loaders raise the same messages.
    """
    if source not in SOURCES:
        return [("source", f"unknown data source {source!r}; choose one of: {', '.join(SOURCES)}")]
    opts = {**DEFAULTS[source], **(options or {})}
    unknown = sorted(set(opts) - set(DEFAULTS[source]))
    if unknown:
        return [("options", f"data source {source!r} has no option(s) {unknown}; "
                            f"its options are {sorted(DEFAULTS[source]) or 'none'}")]
    problems = []
    if source == "tfds":
        import importlib.util

        if importlib.util.find_spec("tensorflow_datasets") is None:
            problems.append(("source", "tfds source needs TensorFlow Datasets: pip install 'edgecls[tfds]'"))
        if opts["data_dir"] and not os.path.isdir(os.path.expanduser(str(opts["data_dir"]))):
            problems.append(("options.data_dir", f"tfds source: {opts['data_dir']} is not a folder; give the "
                                                 "TFDS data directory, or leave data_dir out to download"))
    check = _CHECKS.get(source)
    if check is not None:
        try:
            check(opts)
        except DataError as err:
            problems.append(("options.path", str(err)))
    return problems
