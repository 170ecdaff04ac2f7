"""Slice CSVs (data.slices): images by index or path, merged with source attributes; every bad file."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from edgecls.data import DataError, load_source
from edgecls.data.slices import load_slice_csv

SHAPES = {"image_size": 16, "classes": ["circle", "ring"], "count": 12, "seed": 3}


@pytest.fixture(scope="module")
def shapes():
    return load_source("shapes", SHAPES)


@pytest.fixture
def folder(tmp_path):
    """tmp/imgs/{cat,dog}/{0,1}.png: a folder source of 4 images; returns (root, examples)."""
    root = tmp_path / "imgs"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / name / f"{i}.png")
    return root, load_source("folder", {"path": str(root)})


def _csv(tmp_path, text: str, name="slices.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_index_rows_for_an_array_source(tmp_path, shapes):
    path = _csv(tmp_path, "\ufeffindex, camera ,light\n0,phone,indoor\n\n 5 , dslr , outdoor\n11,phone,\n",
                encoding="utf-8")  # a BOM (Excel), spaces around cells and a blank line are fine
    out = load_slice_csv(path, shapes, SHAPES)
    assert set(out) == {"camera", "light"}
    assert out["camera"].shape == (12,) and out["camera"].dtype.kind == "U"
    assert out["camera"][[0, 5, 11]].tolist() == ["phone", "dslr", "phone"]
    assert out["light"][[0, 5, 11]].tolist() == ["indoor", "outdoor", ""]  # "" = in no slice
    assert (out["camera"][[1, 2, 3, 4, 6, 7, 8, 9, 10]] == "").all()
    buf = io.BytesIO()
    np.savez(buf, **out)  # what export writes: no pickles
    buf.seek(0)
    assert np.load(buf, allow_pickle=False)["camera"][5] == "dslr"


def test_path_rows_for_a_folder_source(tmp_path, folder, monkeypatch):
    root, examples = folder
    stored = examples.images  # sorted: cat/0, cat/1, dog/0, dog/1
    monkeypatch.chdir(tmp_path)
    text = ("file,group\n"
            "cat/0.png,a\n"                              # relative to the folder source's path
            f"{root / 'cat' / '1.png'},b\n"              # absolute (also how the source stores it)
            f"{os.path.join('imgs', 'dog', '0.png')},c\n"  # relative to the working folder
            "3,d\n")                                     # an index works for a folder too
    out = load_slice_csv(_csv(tmp_path, text), examples, {"path": str(root)})
    assert out["group"].tolist() == ["a", "b", "c", "d"]
    assert stored[0].endswith(os.path.join("cat", "0.png"))


@pytest.mark.parametrize("text, line, message", [
    ("", None, "is empty"),
    ("\n  \n", None, "is empty"),
    ("index\n0\n", 1, "the header has 1 column"),
    ("index,camera\n", None, "has a header but no rows"),
    ("index,camera,light\n0,phone,indoor\n1,phone\n", 3, "2 values but the header has 3 columns"),
    ("index,camera\n0,a\n12,b\n", 3, "index 12 is out of range: the data has 12 images"),
    ("index,camera\nimg.png,a\n", 2, "'img.png' is not an image index"),
    ("index,camera\n0,a\n3,b\n0,c\n", 4, "image '0' is already listed on line 2"),
    ("index,camera,camera\n0,a,b\n", 1, "attribute column 'camera' appears twice"),
    ("index,,light\n0,a,b\n", 1, "attribute column name '' is empty"),
    ("index,a/b\n0,a\n", 1, "contains a slash"),
    ('index,camera\n0,"unclosed\n', 2, "not valid CSV"),
])
def test_bad_csv_for_an_array_source(tmp_path, shapes, text, line, message):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError) as info:
        load_slice_csv(path, shapes, SHAPES)
    msg = str(info.value)
    assert message in msg and "\n" not in msg
    assert msg.startswith(f"{path}:{line}: " if line else f"slices CSV {path} ")


def test_bad_csv_for_a_folder_source(tmp_path, folder):
    root, examples = folder
    opts = {"path": str(root)}
    path = _csv(tmp_path, "file,group\ncat/0.png,a\ncat/9.png,b\n")
    with pytest.raises(DataError, match=rf"^{path}:3: 'cat/9.png' is not an image of the data source"):
        load_slice_csv(path, examples, opts)
    path = _csv(tmp_path, f"file,group\ncat/1.png,a\n{root / 'cat' / '1.png'},b\n")  # the same image twice
    with pytest.raises(DataError, match=rf"^{path}:3: image .* is already listed on line 2$"):
        load_slice_csv(path, examples, opts)
    path = _csv(tmp_path, "file,group\ncat/0.png\n")
    with pytest.raises(DataError, match=rf"^{path}:2: 1 values but the header has 2 columns"):
        load_slice_csv(path, examples, opts)


def test_missing_unreadable_and_binary_files(tmp_path, shapes):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=rf"^slices CSV {missing} not found"):
        load_slice_csv(missing, shapes, SHAPES)
    with pytest.raises(DataError, match="is a folder"):
        load_slice_csv(str(tmp_path), shapes, SHAPES)
    binary = _csv(tmp_path, "", name="b.csv")
    (tmp_path / "b.csv").write_bytes(b"index,a\n0,\xff\xfe\x00\n")
    with pytest.raises(DataError, match=rf"^slices CSV {binary} is not UTF-8 text"):
        load_slice_csv(binary, shapes, SHAPES)


def test_unreadable_images_the_source_skipped_are_not_unknown(tmp_path, folder):
    root, _ = folder
    (root / "cat" / "broken.png").write_text("not a png")
    examples = load_source("folder", {"path": str(root)})  # skips it, with a warning
    assert len(examples) == 4 and len(examples.skipped) == 1
    out = load_slice_csv(_csv(tmp_path, "file,group\ncat/broken.png,a\ndog/1.png,b\n"), examples,
                         {"path": str(root)})
    assert out["group"].tolist() == ["", "", "", "b"]


def test_run_data_slices_boxes_and_test_annotations(tmp_path):
    from edgecls.data.run_data import load_run_data
    from edgecls.recipe.loader import recipe_from_dict
    from edgecls.run import Run

    n = 30
    options = {"image_size": 16, "classes": ["circle", "ring"], "count": n, "seed": 2}
    csv_path = _csv(tmp_path, "image,colour,site\n" + "".join(f"{i},c{i % 2},s{i % 3}\n" for i in range(0, n, 2)))
    recipe = recipe_from_dict({"name": "t", "model": {"name": "mobilenet_v2"},
                               "data": {"source": "shapes", "options": options, "image_size": 16,
                                        "slices": csv_path}})
    data = load_run_data(recipe, Run(tmp_path / "run"), make_split=True, write=False)
    source = data.examples
    test = data.split["test"]
    slices = data.slices("test")
    assert set(slices) == {"colour", "size", "background", "site"}
    # the CSV's "colour" column overrides the source's own; listed images get their value, others ""
    expected = np.array([f"c{i % 2}" if i % 2 == 0 else "" for i in test])
    assert np.array_equal(slices["colour"], expected)
    assert np.array_equal(slices["size"], source.attributes["size"][test])
    assert np.array_equal(data.boxes("test"), source.boxes[test])
    assert data.boxes("train").shape == (len(data.split["train"]), 4)

    ann = data.test_annotations()
    assert set(ann) == {"slice_colour", "slice_size", "slice_background", "slice_site", "boxes"}
    path = tmp_path / "test.npz"
    np.savez(path, **ann)
    with np.load(path, allow_pickle=False) as f:
        assert np.array_equal(f["slice_site"], ann["slice_site"]) and f["boxes"].shape == (len(test), 4)

    bad = recipe_from_dict({"name": "t", "model": {"name": "mobilenet_v2"},
                            "data": {"source": "shapes", "options": options, "image_size": 16,
                                     "slices": str(tmp_path / "missing.csv")}})
    with pytest.raises(DataError, match="missing.csv not found"):
        load_run_data(bad, Run(tmp_path / "run"), make_split=True, write=False).test_annotations()


def test_sources_without_attributes_give_no_annotations(tmp_path):
    from edgecls.data.run_data import load_run_data
    from edgecls.recipe.loader import recipe_from_dict
    from edgecls.run import Run

    recipe = recipe_from_dict({"name": "t", "model": {"name": "mobilenet_v2"},
                               "data": {"source": "digits", "options": {"classes": [0, 1]}, "image_size": 8,
                                        "channels": 1}})
    data = load_run_data(recipe, Run(tmp_path / "run"), make_split=True, write=False)
    assert data.slices("test") == {} and data.boxes("test") is None and data.test_annotations() == {}
