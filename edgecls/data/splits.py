"""Stratified train/validation/test splits, saved as JSON so every stage uses the same ones."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Optional, Union

import numpy as np

from edgecls.data.sources import PARTS, DataError, Examples

SPLITS = PARTS  # the parts of a split are the parts a source's own split names


def _class_counts(n: int, validation: float, test: float) -> tuple[int, int]:
    """(n_validation, n_test) for one class of ``n`` items.

    Rounded per class; a class with >= 3 items gets at least one item in each
    split whose fraction is non-zero, and train always keeps at least one.
    """
    n_val, n_test = round(n * validation), round(n * test)
    if n >= 3:
        n_val = max(n_val, 1) if validation > 0 else 0
        n_test = max(n_test, 1) if test > 0 else 0
    while n_val + n_test > n - 1 and n_val + n_test > 0:  # give train back at least one
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def stratified_split(labels: np.ndarray, *, validation: float, test: float, seed: int,
                     train_per_class: Optional[int] = None) -> dict[str, np.ndarray]:
    """Split indices 0..N-1 per class by the given fractions.

    Returns {"train", "validation", "test"}: sorted, disjoint int64 index
    arrays covering every index. The same labels and seed give the same split.
    ``train_per_class`` (few-shot) keeps only that many training images per
    class and leaves the rest out of every part, so validation and test are
    the same images as without it: a few-shot model and a full one are
    scored on the same test set.
    """
    if train_per_class is not None and train_per_class < 1:
        raise DataError(f"split: train_per_class must be >= 1, got {train_per_class}")
    for name, value in (("validation", validation), ("test", test)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"split: {name} fraction must be in [0, 1), got {value}")
    if validation + test >= 1.0:
        raise DataError(f"split: validation + test = {validation + test:g} leaves nothing to train on; "
                        "make them sum to less than 1")
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in SPLITS}
    for cls in np.unique(labels):  # sorted, so the rng is consumed in a fixed order
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val, n_test = _class_counts(len(idx), validation, test)
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:][:train_per_class])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64)
            for k, v in parts.items()}


DEFAULT_TEST = 0.2  # the test fraction of a source with no split of its own (splits.test: official)


def make_split(examples: Examples, *, validation: float, test: Union[float, str], seed: int,
               train_per_class: Optional[int] = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The split a recipe's ``splits`` asks for, and how it was made (for split.json).

    ``test="official"``: the source's own test part (``examples.parts``) is the test split, its own
    validation part (if any) the validation split, and what is missing is carved per class from its
    train part (``validation``: a fraction of it; test: DEFAULT_TEST). A source with no split of its
    own gets :func:`stratified_split` with test DEFAULT_TEST: the very split of a fraction 0.2.
    A fraction re-splits every image of the source, its own split ignored.
    Returns (split, {"test_split": ..., "validation_split": ...}), each "official" or "fraction F".
    """
    parts = None if examples.parts is None else np.asarray(examples.parts)
    labels = np.asarray(examples.labels)
    if test != "official" or parts is None:
        fraction = DEFAULT_TEST if test == "official" else float(test)
        split = stratified_split(labels, validation=validation, test=fraction, seed=seed,
                                 train_per_class=train_per_class)
        return split, {"test_split": f"fraction {fraction:g}", "validation_split": f"fraction {validation:g}"}
    own = {k: np.flatnonzero(parts == k) for k in SPLITS}
    pool = own["train"]
    if not len(pool):
        raise DataError("split: the source's own split has no train part; add training images, "
                        "or set splits.test to a fraction to re-split everything")
    carve = {k: 0.0 if len(own[k]) else fraction for k, fraction in (("validation", validation), ("test", DEFAULT_TEST))}
    cut = stratified_split(labels[pool], validation=carve["validation"], test=carve["test"], seed=seed,
                           train_per_class=train_per_class)
    split = {"train": pool[cut["train"]]}
    for k in ("validation", "test"):  # the source's own part, or the one carved from its train part
        split[k] = np.sort(np.concatenate([own[k], pool[cut[k]]])).astype(np.int64)
    how = {f"{k}_split": "official" if len(own[k]) else f"fraction {carve[k]:g}" for k in ("test", "validation")}
    return split, how


def save_split(path: str | os.PathLike, split: dict[str, np.ndarray], examples: Examples,
               *, seed: Optional[int] = None, how: Optional[dict[str, str]] = None) -> None:
    """Write the split as JSON, atomically (temp file in the same folder, then rename).

    Holds how it was made (``how``, from :func:`make_split`: "test_split" and
    "validation_split", each "official" or "fraction F"), the indices, per-split
    counts (total and per class), the class names and, when the images are
    files, the test files' paths.
    """
    labels = np.asarray(examples.labels)
    doc: dict = dict(how or {})
    if seed is not None:
        doc["seed"] = int(seed)
    doc["num_examples"] = len(examples)
    doc["counts"] = {k: int(len(split[k])) for k in SPLITS}
    doc["class_counts"] = {k: np.bincount(labels[np.asarray(split[k], dtype=np.int64)],
                                          minlength=examples.num_classes).tolist() for k in SPLITS}
    doc["class_names"] = list(examples.class_names)
    for k in SPLITS:
        doc[k] = [int(i) for i in split[k]]
    if len(examples) and isinstance(examples.images, list) and isinstance(examples.images[0], str):
        doc["files"] = {"test": [examples.images[int(i)] for i in split["test"]]}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".split-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_split(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a split written by :func:`save_split`: {"train", "validation", "test"} int64 arrays."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return {k: np.asarray(doc[k], dtype=np.int64).reshape(-1) for k in SPLITS}
    except FileNotFoundError as exc:
        raise DataError(f"split file {path} not found; run the train stage first") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"split file {path} is not a valid split ({exc}); delete it and re-run "
                        "the train stage") from exc
