"""Stratified splits: proportions, disjointness, coverage, repeatability, and the JSON file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgecls.data import DataError, Examples, load_split, save_split, stratified_split

SPLITS = ("train", "validation", "test")


def _labels():
    # Unbalanced classes, including tiny ones, in a scrambled order.
    counts = [100, 37, 12, 3, 2, 1]
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(0).permutation(labels), counts


def test_stratified_disjoint_covering_proportional():
    labels, counts = _labels()
    fractions = {"validation": 0.15, "test": 0.2}
    split = stratified_split(labels, seed=1, **fractions)
    assert set(split) == set(SPLITS)
    everything = np.concatenate([split[k] for k in SPLITS])
    assert np.array_equal(np.sort(everything), np.arange(len(labels)))  # disjoint and covering
    for k in SPLITS:
        assert split[k].dtype == np.int64 and np.all(np.diff(split[k]) > 0)  # sorted
    fractions["train"] = 1 - fractions["validation"] - fractions["test"]
    for cls, n in enumerate(counts):
        for k in SPLITS:
            got = int(np.sum(labels[split[k]] == cls))
            if n >= 3:
                assert abs(got - n * fractions[k]) <= 1, (cls, k, got)
                assert got >= 1
        assert np.sum(labels[split["train"]] == cls) >= 1  # every class can be learned


def test_stratified_repeatable_and_seeded():
    labels, _ = _labels()
    a = stratified_split(labels, validation=0.1, test=0.1, seed=7)
    b = stratified_split(labels, validation=0.1, test=0.1, seed=7)
    c = stratified_split(labels, validation=0.1, test=0.1, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in SPLITS)
    assert not np.array_equal(a["test"], c["test"])


def test_zero_fraction_and_bad_fractions():
    labels, _ = _labels()
    split = stratified_split(labels, validation=0.0, test=0.25, seed=0)
    assert len(split["validation"]) == 0 and len(split["train"]) + len(split["test"]) == len(labels)
    with pytest.raises(DataError, match="validation"):
        stratified_split(labels, validation=1.5, test=0.1, seed=0)
    with pytest.raises(DataError, match="less than 1"):
        stratified_split(labels, validation=0.5, test=0.5, seed=0)


def test_save_load_round_trip(tmp_path):
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], np.int64)
    paths = [f"/data/img{i}.png" for i in range(10)]
    ex = Examples(paths, labels, ("neg", "pos"))
    split = stratified_split(labels, validation=0.2, test=0.2, seed=3)
    out = tmp_path / "run" / "split.json"
    save_split(out, split, ex, seed=3)
    back = load_split(out)
    assert all(np.array_equal(back[k], split[k]) and back[k].dtype == np.int64 for k in SPLITS)
    doc = json.loads(out.read_text())
    assert doc["seed"] == 3 and doc["class_names"] == ["neg", "pos"]
    assert doc["counts"] == {k: len(split[k]) for k in SPLITS}
    assert doc["files"]["test"] == [paths[i] for i in split["test"]]
    assert [p.name for p in out.parent.iterdir()] == ["split.json"]  # no temp file left behind

    arrays = Examples(np.zeros((10, 2, 2, 1), np.uint8), labels, ("neg", "pos"))
    save_split(out, split, arrays)
    assert "files" not in json.loads(out.read_text()) and "seed" not in json.loads(out.read_text())


def test_load_split_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_split(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [1]}')
    with pytest.raises(DataError, match="not a valid split"):
        load_split(bad)
