"""Every common data layout (class folders, pre-split trees, CSV listings), official test splits,
and the checks a source gets before any work: on tiny images the tests write."""
from __future__ import annotations

import copy
import csv
import gzip
import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecls.data import DataError, Examples, check_source, load_source, make_split, stratified_split
from edgecls.data.run_data import load_run_data
from edgecls.errors import RecipeError
from edgecls.recipe.schema import Recipe
from edgecls.run import Run

ROOT = Path(__file__).resolve().parents[2]


def _img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(path)
    return path


def _tree(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """root/<part>/<class>/<i>.png for {part: {class: n}} (part "" = class folders at the top)."""
    for part, classes in counts.items():
        for name, n in classes.items():
            for i in range(n):
                _img(root / part / name / f"{i}.png", 10 * i)
    return root


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _recipe(data: dict) -> Recipe:
    return Recipe.from_dict({"name": "t", "data": {"image_size": 8, "channels": 1, **data},
                             "model": {"name": "small_cnn"}})


# --- folders ----------------------------------------------------------------------------------------

def test_class_folders_have_no_parts_and_split_as_before(tmp_path):
    root = _tree(tmp_path / "img", {"": {"cat": 12, "dog": 9}})
    ex = load_source("folder", {"path": str(root)})
    assert ex.class_names == ("cat", "dog") and ex.parts is None and len(ex) == 21
    split, how = make_split(ex, validation=0.1, test="official", seed=3)
    old = stratified_split(ex.labels, validation=0.1, test=0.2, seed=3)  # what every recipe got before
    assert all(np.array_equal(split[k], old[k]) for k in old)
    assert how == {"test_split": "fraction 0.2", "validation_split": "fraction 0.1"}


@pytest.mark.parametrize("val_name", ["val", "validation"])
def test_pre_split_tree_is_read_as_its_splits(tmp_path, val_name):
    counts = {"train": {"cat": 5, "dog": 4}, val_name: {"cat": 2, "dog": 1}, "test": {"cat": 3, "dog": 2}}
    root = _tree(tmp_path / "img", counts)
    ex = load_source("folder", {"path": str(root)})
    assert ex.class_names == ("cat", "dog") and len(ex) == 17  # not three classes named test/train/val
    parts = list(ex.parts)
    assert parts == ["train"] * 9 + ["validation"] * 3 + ["test"] * 5
    test_files = [p for p, part in zip(ex.images, parts) if part == "test"]
    assert all("/test/" in p for p in test_files)
    assert list(ex.labels[ex.parts == "test"]) == [0, 0, 0, 1, 1]
    split, how = make_split(ex, validation=0.1, test="official", seed=0)
    assert how == {"test_split": "official", "validation_split": "official"}
    for k in ("train", "validation", "test"):
        assert np.array_equal(split[k], np.flatnonzero(ex.parts == k)), k
    assert check_source("folder", {"path": str(root)}) == []
    # A fraction re-splits every image, the tree's own split ignored; layout: classes is today's reading.
    resplit, how = make_split(ex, validation=0.1, test=0.3, seed=0)
    assert how["test_split"] == "fraction 0.3" and len(resplit["test"]) == 5
    assert not np.array_equal(resplit["test"], split["test"])
    flat = load_source("folder", {"path": str(root), "layout": "classes"})
    assert flat.class_names == tuple(sorted(["test", "train", val_name])) and flat.parts is None


def test_train_and_test_only_carve_validation_from_train(tmp_path):
    root = _tree(tmp_path / "img", {"train": {"a": 10, "b": 10}, "test": {"a": 2, "b": 2}})
    ex = load_source("folder", {"path": str(root)})
    split, how = make_split(ex, validation=0.2, test="official", seed=1, train_per_class=3)
    assert how == {"test_split": "official", "validation_split": "fraction 0.2"}
    assert np.array_equal(split["test"], np.flatnonzero(ex.parts == "test"))
    assert set(ex.parts[split["validation"]]) == {"train"} and len(split["validation"]) == 4  # 2 per class
    assert np.bincount(ex.labels[split["train"]]).tolist() == [3, 3]  # few-shot still applies
    assert not set(split["train"]) & set(split["validation"])


def test_split_folder_with_a_class_the_others_lack(tmp_path):
    root = _tree(tmp_path / "img", {"train": {"cat": 2, "dog": 2}, "val": {"cat": 1, "dog": 1},
                                    "test": {"cat": 1, "dog": 1, "fox": 1}})
    with pytest.raises(DataError) as info:
        load_source("folder", {"path": str(root)})
    assert _one_line(info) == (f"folder source: {root}: class 'fox' is in test/ but not in train/, val/; "
                               "every split needs the same classes")
    assert check_source("folder", {"path": str(root)}) == [("options.path", str(info.value))]


def test_layout_choices_and_mistakes(tmp_path):
    root = _tree(tmp_path / "img", {"train": {"a": 1}, "test": {"a": 1}, "cat": {"x": 1}})
    with pytest.raises(DataError, match=r"holds split folders \(test/, train/\) beside other folders \(cat/\); "
                                        r"move those into the split folders, or set layout: classes"):
        load_source("folder", {"path": str(root)})  # auto: split names among classes is no silent "test" class
    ex = load_source("folder", {"path": str(root), "layout": "classes"})
    assert ex.class_names == ("cat", "test", "train")
    with pytest.raises(DataError, match=r"has cat/ beside its split folders; move them"):
        load_source("folder", {"path": str(root), "layout": "split"})
    both = _tree(tmp_path / "both", {"train": {"a": 1}, "val": {"a": 1}, "validation": {"a": 1}})
    with pytest.raises(DataError, match=r"has both val/ and validation/ for the validation split"):
        load_source("folder", {"path": str(both)})
    no_train = _tree(tmp_path / "nt", {"val": {"a": 1}, "test": {"a": 1}})
    with pytest.raises(DataError, match=r"has no train/ folder"):
        load_source("folder", {"path": str(no_train)})
    flat = _tree(tmp_path / "flat", {"": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match=r"has no train/, val/ \(or validation/\) or test/ folder"):
        load_source("folder", {"path": str(flat), "layout": "split"})
    _img(tmp_path / "loose" / "train" / "x.png")  # images straight in train/, no class folders
    _img(tmp_path / "loose" / "test" / "y.png")
    with pytest.raises(DataError, match=r"train has no class sub-folders"):
        load_source("folder", {"path": str(tmp_path / "loose")})


def test_unreadable_images_that_empty_a_class_of_one_split(tmp_path):
    root = _tree(tmp_path / "img", {"train": {"a": 2, "b": 2}, "test": {"a": 1}})
    (root / "test" / "b").mkdir()
    (root / "test" / "b" / "broken.png").write_text("not an image")
    assert check_source("folder", {"path": str(root)}) == []  # nothing decoded before work
    with pytest.raises(DataError) as info:
        load_source("folder", {"path": str(root)})
    assert "class(es) ['b']" not in str(info.value)
    assert _one_line(info).endswith("class 'b' is in the train split but not in the test split once unreadable "
                                    "images are skipped; every split needs the same classes")


def test_decoding_a_folder_shows_a_progress_bar(tmp_path, monkeypatch):
    from edgecls.data import sources

    seen = []

    def fake_bar(iterable=None, *, total=None, desc="", unit="it"):
        seen.append((total, desc, unit))
        return iterable

    monkeypatch.setattr(sources, "bar", fake_bar)
    root = _tree(tmp_path / "img", {"": {"a": 3, "b": 4}})
    load_source("folder", {"path": str(root)})
    assert seen == [(7, "checking images", "img")]


# --- csv --------------------------------------------------------------------------------------------

def _csv(path: Path, rows: list[tuple], header: tuple | None = ("path", "label", "split")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_listing_with_splits(tmp_path):
    for i in range(6):
        _img(tmp_path / "pics" / f"{i}.png", i)
    rows = [("pics/0.png", "zebra", "train"), ("pics/1.png", "ant", "train"), ("pics/2.png", "zebra", "Val"),
            ("pics/3.png", "ant", "validation"), ("pics/4.png", "ant", "test"), ("pics/5.png", "zebra", "test")]
    path = _csv(tmp_path / "lists" / ".." / "labels.csv", rows)
    ex = load_source("csv", {"path": str(path)})
    assert ex.class_names == ("ant", "zebra")  # sorted, as folders are
    assert list(ex.labels) == [1, 0, 1, 0, 0, 1]
    assert list(ex.parts) == ["train", "train", "validation", "validation", "test", "test"]
    assert ex.images == [str(tmp_path / "pics" / f"{i}.png") for i in range(6)]  # relative to the CSV's folder
    split, how = make_split(ex, validation=0.1, test="official", seed=0)
    assert how["test_split"] == "official" and list(split["test"]) == [4, 5]
    assert check_source("csv", {"path": str(path)}) == []


def test_csv_without_header_or_split(tmp_path):
    for i in range(4):
        _img(tmp_path / "sub" / f"{i}.jpg", i)
    path = _csv(tmp_path / "sub" / "list.csv", [(f"{i}.jpg", "odd" if i % 2 else "even") for i in range(4)]
                + [("", "")], header=None)  # a blank row is skipped
    ex = load_source("csv", {"path": str(path)})
    assert ex.class_names == ("even", "odd") and ex.parts is None and list(ex.labels) == [0, 1, 0, 1]


def test_csv_row_naming_a_missing_file(tmp_path):
    _img(tmp_path / "a.png")
    path = _csv(tmp_path / "l.csv", [("a.png", "x", "train"), ("gone.png", "x", "test"), ("gone2.png", "x", "test")])
    with pytest.raises(DataError) as info:
        load_source("csv", {"path": str(path)})
    assert _one_line(info) == (f"csv source: {path}:3: gone.png does not exist (and 1 more rows name missing "
                               "files); fix the path (relative to the CSV's folder) or remove the row")
    assert check_source("csv", {"path": str(path)}) == [("options.path", str(info.value))]


@pytest.mark.parametrize("rows, header, expected", [
    ([("a.png", "x", "holdout")], True, ":2: unknown split 'holdout'; use train, val (or validation) or test"),
    ([], True, " lists no images; give one path,label[,split] row per image"),
    ([], False, " lists no images; give one path,label[,split] row per image"),
    ([("a.png", "x", "train"), ("a.png", "x")], True, ":3: 2 columns, but line 2 has 3; give every row a split, or none"),
    ([("a.png",)], False, ":1: expected path,label[,split], got 1 columns"),
    ([("a.png", "x", "train"), ("a.png", "y", "train"), ("a.png", "x", "test")], True,
     ": class 'y' is in the train rows but not in the test rows; every split needs the same classes"),
    ([("a.png", "x", "train"), ("a.png", "y", "test")], True,
     ": class 'x' is in the train rows but not in the test rows; every split needs the same classes"),
])
def test_bad_csv(tmp_path, rows, header, expected):
    _img(tmp_path / "a.png")
    path = _csv(tmp_path / "l.csv", rows, header=("path", "label", "split") if header else None)
    with pytest.raises(DataError) as info:
        load_source("csv", {"path": str(path)})
    assert _one_line(info) == f"csv source: {path}{expected}"
    assert check_source("csv", {"path": str(path)}) == [("options.path", str(info.value))]


def test_csv_bad_images_skip_or_fail(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    (tmp_path / "c.png").write_text("not an image")
    path = _csv(tmp_path / "l.csv", [("a.png", "x"), ("b.png", "y"), ("c.png", "y")], header=("path", "label"))
    ex = load_source("csv", {"path": str(path)})
    assert len(ex) == 2 and [p.endswith("c.png") for p, _ in ex.skipped] == [True]
    with pytest.raises(DataError, match=r"csv source: unreadable image .*c\.png"):
        load_source("csv", {"path": str(path), "on_bad_file": "fail"})


# --- keras sets: their own test part ----------------------------------------------------------------

def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_folder(tmp_path):
    """A tiny MNIST in IDX files: 40 train images (4 per digit), 20 test images (2 per digit)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def test_keras_set_tests_on_its_own_test_part(mnist_folder, tmp_path):
    data = {"source": "keras", "options": {"dataset": "mnist", "path": str(mnist_folder)}}
    run = Run(tmp_path / "run")
    rd = load_run_data(_recipe(data), run, make_split=True)
    assert list(rd.split["test"]) == list(range(40, 60))  # exactly the t10k images
    assert len(rd.split["validation"]) == 10 and rd.split["validation"].max() < 40  # carved from train
    doc = json.loads(run.split.read_text())
    assert doc["test_split"] == "official" and doc["validation_split"] == "fraction 0.1"
    # test: 0.2 keeps the old behaviour: train and test pooled and split again.
    old = load_run_data(_recipe({**data, "splits": {"test": 0.2}}), Run(tmp_path / "old"), make_split=True)
    expected = stratified_split(old.examples.labels, validation=0.1, test=0.2, seed=0)
    assert all(np.array_equal(old.split[k], expected[k]) for k in expected)
    assert old.split["test"].min() < 40
    assert json.loads((tmp_path / "old" / "split.json").read_text())["test_split"] == "fraction 0.2"
    # --force re-saves through RunData.save_split: it records how, too.
    rd.save_split(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["test_split"] == "official"


def test_keras_npz_and_cifar_parts(tmp_path):
    import io
    import zipfile

    with zipfile.ZipFile(tmp_path / "mnist.npz", "w") as zf:
        for key, arr in {"x_train": np.zeros((5, 28, 28), np.uint8), "y_train": np.arange(5),
                         "x_test": np.zeros((3, 28, 28), np.uint8), "y_test": np.arange(3)}.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{key}.npy", buf.getvalue())
    ex = load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    assert list(ex.parts) == ["train"] * 5 + ["test"] * 3
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 3), ("test", 2)):
        batch = {b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": list(range(n))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    ex = load_source("keras", {"dataset": "cifar100", "path": str(tmp_path)})
    assert list(ex.parts) == ["train"] * 3 + ["test"] * 2
    assert check_source("keras", {"dataset": "cifar100", "path": str(tmp_path)}) == []


def test_keras_checks_before_work(tmp_path, mnist_folder):
    assert check_source("keras", {"dataset": "mnist", "path": str(mnist_folder)}) == []
    assert check_source("keras", {"dataset": "mnist"}) == []  # keras downloads it
    [(key, msg)] = check_source("keras", {"dataset": "mnist", "path": str(tmp_path / "nope")})
    assert key == "options.path" and msg == (f"keras source: {tmp_path / 'nope'} is not a folder; "
                                             "give the folder holding the mnist files")
    (mnist_folder / "t10k-labels-idx1-ubyte.gz").unlink()
    [(key, msg)] = check_source("keras", {"dataset": "fashion_mnist", "path": str(mnist_folder)})
    assert "t10k-labels-idx1-ubyte.gz not found" in msg
    [(key, msg)] = check_source("keras", {"dataset": "cifar10", "path": str(mnist_folder)})
    assert msg == (f"keras source: {mnist_folder} has neither cifar-10-batches-py/ nor cifar-10-python.tar.gz; "
                   "put one of them there")


# --- checks of other sources, the Examples type, the recipe -----------------------------------------

def test_check_source_other_sources(tmp_path):
    assert check_source("digits", {}) == [] and check_source("shapes", {"count": 10}) == []
    assert check_source("folder", {"path": str(tmp_path / "no")}) == [
        ("options.path", f"folder source: {tmp_path / 'no'} is not a folder; point 'path' at a folder "
                         "with one sub-folder per class")]
    assert check_source("csv", {"path": str(tmp_path)})[0][1].endswith(
        "is a folder; point 'path' at a CSV file of path,label[,split] rows")
    assert check_source("tfrecord", {"path": str(tmp_path / "*.tfrecord")}) == [
        ("options.path", f"tfrecord source: no files match {tmp_path / '*.tfrecord'}")]
    assert check_source("imagenet", {})[0][0] == "source"
    assert check_source("shapes", {"colour": "red"})[0][0] == "options"
    problems = dict(check_source("tfds", {"name": "mnist", "data_dir": str(tmp_path / "tfds")}))
    assert "is not a folder" in problems["options.data_dir"]
    assert ("source" in problems) == (importlib.util.find_spec("tensorflow_datasets") is None)


def test_examples_parts_are_checked():
    with pytest.raises(DataError, match="2 split parts for 3 images"):
        Examples(np.zeros((3, 2, 2, 1), np.uint8), np.zeros(3, np.int64), ("a",), parts=np.array(["train", "test"]))
    with pytest.raises(DataError, match=r"unknown split part\(s\) \['val'\]"):
        Examples(np.zeros((1, 2, 2, 1), np.uint8), np.zeros(1, np.int64), ("a",), parts=np.array(["val"]))
    with pytest.raises(DataError, match="no train part"):
        make_split(Examples(np.zeros((2, 2, 2, 1), np.uint8), np.zeros(2, np.int64), ("a",),
                            parts=np.array(["test", "test"])), validation=0.1, test="official", seed=0)


def test_pre_split_folder_run_records_official(tmp_path):
    root = _tree(tmp_path / "img", {"train": {"a": 4, "b": 4}, "val": {"a": 1, "b": 1}, "test": {"a": 2, "b": 2}})
    run = Run(tmp_path / "run")
    rd = load_run_data(_recipe({"source": "folder", "options": {"path": str(root)}}), run, make_split=True)
    doc = json.loads(run.split.read_text())
    assert doc["test_split"] == "official" and doc["validation_split"] == "official"
    assert doc["counts"] == {"train": 8, "validation": 2, "test": 4}
    assert all("/test/" in p for p in doc["files"]["test"])
    assert len(rd.arrays("test")[0]) == 4


GOOD = {"name": "t", "data": {"source": "digits", "image_size": 8, "channels": 1}, "model": {"name": "small_cnn"}}


@pytest.mark.parametrize("test, expected", [(None, "official"), ("official", "official"), (0.3, 0.3)])
def test_recipe_splits_test(test, expected):
    mapping = copy.deepcopy(GOOD)
    if test is not None:
        mapping["data"]["splits"] = {"test": test}
    assert Recipe.from_dict(mapping).data.splits.test == expected


@pytest.mark.parametrize("test, message", [
    ("offical", "expected a number or 'official', got 'offical'"),
    (1.0, "must be < 1.0, got 1.0"),
    (0, "must be > 0.0, got 0"),
])
def test_recipe_splits_test_bad(test, message):
    mapping = copy.deepcopy(GOOD)
    mapping["data"]["splits"] = {"test": test}
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(mapping)
    assert str(info.value) == f"<dict>: data.splits.test: {message}"


def test_recipe_new_source_options():
    csv_recipe = _recipe({"source": "csv", "options": {"path": "labels.csv"}})
    assert csv_recipe.data.options.path == "labels.csv" and csv_recipe.data.options.on_bad_file == "skip"
    assert _recipe({"source": "folder", "options": {"path": "x"}}).data.options.layout == "auto"
    with pytest.raises(RecipeError, match=r"data.options.layout: must be one of 'auto', 'classes', 'split', "
                                          r"got 'splits'; did you mean 'split'\?"):
        _recipe({"source": "folder", "options": {"path": "x", "layout": "splits"}})
    # 'official' falls back to 0.2 where a source has no test split of its own: validation + 0.2 must be < 1
    assert _recipe({"source": "digits", "splits": {"validation": 0.7}}).data.splits.validation == 0.7
    with pytest.raises(RecipeError, match=r"data.splits.validation: with test 'official', a source without its own "
                                          r"test split holds out 0.2 for test"):
        _recipe({"source": "digits", "splits": {"validation": 0.9}})
    with pytest.raises(RecipeError, match="sum < 1"):
        _recipe({"source": "digits", "splits": {"validation": 0.9, "test": 0.1}})


# --- the example folder writer ----------------------------------------------------------------------

def test_make_image_folder_writes_each_layout(tmp_path):
    spec = importlib.util.spec_from_file_location("make_image_folder", ROOT / "examples" / "make_image_folder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    found = {}
    for layout, source, path in (("classes", "folder", "c"), ("split", "folder", "s"), ("csv", "csv", "v/labels.csv")):
        mod.write(tmp_path / path.split("/")[0], layout=layout, count=80, size=8)
        ex = load_source(source, {"path": str(tmp_path / path)})
        assert ex.class_names == ("circle", "square", "star", "triangle") and len(ex) == 80, layout
        found[layout] = ex
    assert found["classes"].parts is None
    for layout in ("split", "csv"):
        parts = found[layout].parts
        assert [int(np.sum(parts == p)) for p in ("train", "validation", "test")] == [56, 12, 12], layout
    # The same images go to the same split in both layouts.
    assert sorted(zip(found["split"].parts, (Path(p).name for p in found["split"].images))) == \
        sorted(zip(found["csv"].parts, (Path(p).name for p in found["csv"].images)))


def test_slices_name_csv_images_relative_to_the_csv(tmp_path):
    from edgecls.data.slices import load_slice_csv

    for i in range(3):
        _img(tmp_path / "pics" / f"{i}.png", i)
    listing = _csv(tmp_path / "labels.csv", [(f"pics/{i}.png", "ab"[i % 2]) for i in range(3)], header=None)
    ex = load_source("csv", {"path": str(listing)})
    (tmp_path / "slices.csv").write_text("path,light\npics/2.png,dim\npics/0.png,bright\n")
    sliced = load_slice_csv(str(tmp_path / "slices.csv"), ex, {"path": str(listing)})
    assert list(sliced["light"]) == ["bright", "", "dim"]


def test_roboflow_valid_folder_and_mac_zip_leftovers(tmp_path):
    """Roboflow exports train/ valid/ test/; unzipping on a Mac leaves __MACOSX/ beside them."""
    root = _tree(tmp_path / "rf", {"train": {"cat": 3, "dog": 3}, "valid": {"cat": 1, "dog": 1},
                                   "test": {"cat": 1, "dog": 1}, "__MACOSX": {"train": 1}})
    ex = load_source("folder", {"path": str(root)})
    assert ex.class_names == ("cat", "dog")
    assert sorted(set(ex.parts)) == ["test", "train", "validation"] and list(ex.parts).count("validation") == 2
