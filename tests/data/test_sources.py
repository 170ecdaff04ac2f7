"""Data sources on real files the tests write: folders of awkward images, IDX, CIFAR pickles, TFRecords."""
from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgecls.data import SOURCES, DataError, Examples, load_source
from edgecls.data.images import ImageError, load_image, resize_image


# --- images -----------------------------------------------------------------------------------------

def test_load_image_handles_every_mode(image_folder):
    _, good, _ = image_folder
    for name, path in good.items():
        for channels in (1, 3):
            img = load_image(str(path), channels=channels)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == channels, name

    alpha = load_image(str(good["alpha"]), channels=3)
    assert (alpha[:8] == 200).all() and (alpha[8:] == 0).all()  # transparent composites on black
    deep = load_image(str(good["deep"]), channels=1)[..., 0]
    assert (deep[:, :8] == 128).all() and (deep[:, 8:] == 255).all()  # 16 bit scaled, not clipped
    gray3 = load_image(str(good["gray"]), channels=3)
    assert (gray3 == 77).all()
    palette = load_image(str(good["palette"]), channels=1)[..., 0]
    assert abs(int(palette[0, 15]) - 240) <= 8 and palette[0, 0] <= 8


def test_exif_orientation_is_applied(image_folder):
    _, good, _ = image_folder
    img = load_image(str(good["exif"]), channels=3)
    assert img.shape == (40, 20, 3)  # stored 40 wide x 20 high, shown rotated 90 degrees clockwise
    top, rest = img[:10].reshape(-1, 3).mean(0), img[12:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # the stored left (red) edge is now on top
    assert rest[2] > 200 and rest[0] < 60


def test_load_image_errors_name_the_input(image_folder):
    _, _, bad = image_folder
    for path in bad.values():
        with pytest.raises(ImageError, match=path.name):
            load_image(str(path), channels=3)
    with pytest.raises(ImageError, match="bytes"):
        load_image(b"nope", channels=1)


def test_load_image_from_arrays_and_bytes():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255
    gray = load_image(rgb, channels=1)
    assert gray.shape == (4, 6, 1) and (gray == 76).all()  # ITU-R 601-2 luma of pure red
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    assert (load_image(buf.getvalue(), channels=3) == rgb).all()
    assert load_image(np.full((3, 3), 1.0, np.float32), channels=1).max() == 255


def test_resize_stretch_and_crop():
    img = np.zeros((10, 40, 3), np.uint8)
    img[:, :15] = 255  # left part white
    stretched = resize_image(img, (10, 10), "stretch")
    cropped = resize_image(img, (10, 10), "crop")  # keeps the central 10x10: columns 15..24, all black
    assert stretched.shape == cropped.shape == (10, 10, 3)
    assert stretched[:, 0].min() == 255 and cropped.max() == 0
    assert resize_image(img, (10, 40), "crop") is img


# --- folder -----------------------------------------------------------------------------------------

def test_folder_skip_lists_exactly_the_bad_files(image_folder, caplog):
    root, good, bad = image_folder
    with caplog.at_level(logging.WARNING, logger="edgecls.data"):
        ex = load_source("folder", {"path": str(root), "on_bad_file": "skip"})
    assert ex.class_names == ("good", "mixed")
    assert sorted(os.path.basename(p) for p, _ in ex.skipped) == sorted(p.name for p in bad.values())
    assert all(reason for _, reason in ex.skipped)
    assert len(ex) == len(good) + 2
    assert list(ex.labels) == [0] * len(good) + [1, 1]
    assert all(os.path.isabs(p) for p in ex.images)
    assert not any(".hidden" in p or p.endswith(".txt") for p in ex.images)
    assert "skipped 2 unreadable" in caplog.text and "truncated.jpg" in caplog.text


def test_folder_fail_names_the_file(image_folder):
    root, _, _ = image_folder
    with pytest.raises(DataError, match=r"(truncated|notes)\.jpg"):
        load_source("folder", {"path": str(root), "on_bad_file": "fail"})


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_source("folder", {"path": str(tmp_path / "missing"), "on_bad_file": "skip"})
    with pytest.raises(DataError, match="no class sub-folders"):
        load_source("folder", {"path": str(tmp_path), "on_bad_file": "skip"})
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="cat has no images"):
        load_source("folder", {"path": str(tmp_path), "on_bad_file": "skip"})
    (tmp_path / "cat" / "bad.png").write_text("x")
    with pytest.raises(DataError, match="no readable images"):
        load_source("folder", {"path": str(tmp_path), "on_bad_file": "skip"})


@pytest.mark.parametrize("folder_name, shown", [("do\ng", "'do\\ng' contains the control character '\\n'"),
                                                 ("a\tb", "'a\\tb' contains the control character '\\t'"),
                                                 (" ", "' ' is empty")])
def test_folder_class_names_that_would_break_labels_txt(tmp_path, folder_name, shown):
    for name in ("cat", folder_name):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name / "a.png")
    with pytest.raises(DataError) as info:
        load_source("folder", {"path": str(tmp_path)})
    assert str(info.value) == f"folder source: class folder in {tmp_path}: class name {shown}; " + (
        "give every class a name" if shown.endswith("empty") else "rename it")
    assert "\n" not in str(info.value)


# --- digits / shapes / registry ---------------------------------------------------------------------

def test_digits():
    ex = load_source("digits", {})
    assert len(ex) == 1797 and ex.num_classes == 10
    assert ex.images.shape == (1797, 8, 8, 1) and ex.images.dtype == np.uint8
    assert ex.images.max() == 255 and ex.labels.dtype == np.int64
    assert ex.class_names == tuple(str(i) for i in range(10))


def test_shapes_deterministic_balanced():
    opts = {"image_size": 24, "classes": ["circle", "star", "ring", "hexagon"], "count": 42, "seed": 5}
    a = load_source("shapes", opts)
    b = load_source("shapes", opts)
    c = load_source("shapes", {**opts, "seed": 6})
    assert a.images.shape == (42, 24, 24, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    counts = np.bincount(a.labels, minlength=4)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 42
    assert a.class_names == ("circle", "star", "ring", "hexagon")
    assert a.images.std() > 20  # not blank


def test_shapes_all_supported_and_bad_names():
    for name in ("circle", "square", "triangle", "star", "cross", "ring", "ellipse", "hexagon"):
        load_source("shapes", {"image_size": 16, "classes": [name, "circle" if name != "circle" else "ring"],
                               "count": 2, "seed": 0})
    with pytest.raises(DataError, match="blob"):
        load_source("shapes", {"classes": ["circle", "blob"]})


@pytest.fixture(scope="module")
def shapes_with_masks():
    """40 shapes images with details, and the mask each one was drawn with (recorded, not redrawn)."""
    from edgecls.data import shapes

    masks = []
    original = shapes._mask

    def recording(*args):
        mask, radius = original(*args)
        masks.append(mask)
        return mask, radius

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shapes, "_mask", recording)
        images, labels, details = shapes.generate_shapes(
            image_size=32, classes=("circle", "star", "ring", "triangle"), count=40, seed=7, details=True)
    return images, labels, details, np.stack(masks)


def test_shapes_details_leave_the_images_alone(shapes_with_masks):
    from edgecls.data.shapes import generate_shapes

    images, labels, details, _ = shapes_with_masks
    plain_images, plain_labels = generate_shapes(image_size=32, classes=("circle", "star", "ring", "triangle"),
                                                 count=40, seed=7)
    assert np.array_equal(images, plain_images) and np.array_equal(labels, plain_labels)
    assert set(details) == {"boxes", "shape", "colour", "size", "background"}
    assert list(details["shape"][:4]) == ["circle", "star", "ring", "triangle"]


def test_shapes_boxes_are_tight_around_the_drawn_shape(shapes_with_masks):
    _, _, details, masks = shapes_with_masks
    boxes = details["boxes"]
    assert boxes.dtype == np.float32 and boxes.shape == (40, 4)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for box, mask in zip(boxes, masks):
        x0, y0, x1, y1 = np.rint(box * 32).astype(int)
        inside = np.zeros_like(mask, bool)
        inside[y0:y1, x0:x1] = True
        covered = mask > 0.5
        assert not (covered & ~inside).any()  # every shape pixel is in the box
        # ...and the box is tight: its edge rows and columns hold shape pixels
        assert covered[y0].any() and covered[y1 - 1].any() and covered[:, x0].any() and covered[:, x1 - 1].any()


def test_shapes_attributes_are_named_from_what_was_drawn(shapes_with_masks):
    from edgecls.data.shapes import BACKGROUNDS, COLOURS, SIZES, colour_name

    images, _, details, masks = shapes_with_masks
    assert set(details["colour"]) <= set(COLOURS) and len(set(details["colour"])) >= 4
    assert set(details["size"]) == set(SIZES) and set(details["background"]) == set(BACKGROUNDS)
    for rgb, name in (((250, 10, 10), "red"), ((250, 140, 0), "orange"), ((240, 230, 20), "yellow"),
                      ((20, 200, 40), "green"), ((0, 220, 230), "cyan"), ((20, 40, 240), "blue"),
                      ((140, 20, 230), "purple"), ((240, 60, 180), "pink"), ((120, 125, 130), "gray")):
        assert colour_name(np.array(rgb)) == name
    side = (details["boxes"][:, 2] - details["boxes"][:, 0] + details["boxes"][:, 3] - details["boxes"][:, 1]) / 2
    by_size = [side[details["size"] == size].mean() for size in SIZES]
    assert by_size[0] < by_size[1] < by_size[2]
    luma = images.astype(np.float64) @ [0.299, 0.587, 0.114]
    outside = np.array([lum[mask == 0].mean() for lum, mask in zip(luma, masks)])
    agree = np.mean((outside >= 127.5) == (details["background"] == "light"))
    assert agree >= 0.9, agree


def test_shapes_source_exposes_attributes_and_boxes():
    ex = load_source("shapes", {"image_size": 16, "classes": ["circle", "ring"], "count": 10, "seed": 1})
    assert set(ex.attributes) == {"colour", "size", "background"}  # "shape" would repeat the label
    assert all(v.shape == (10,) and v.dtype.kind == "U" for v in ex.attributes.values())
    assert ex.boxes.shape == (10, 4) and ex.boxes.dtype == np.float32
    digits = load_source("digits", {"classes": [0, 1]})
    assert digits.attributes is None and digits.boxes is None


def test_unknown_source_and_option():
    with pytest.raises(DataError, match="digits, shapes, folder, csv, tfrecord, keras, tfds"):
        load_source("imagenet", {})
    with pytest.raises(DataError, match="colour"):
        load_source("shapes", {"colour": "red"})
    assert SOURCES == ("digits", "shapes", "folder", "csv", "tfrecord", "keras", "tfds")


def test_tfds_not_installed_is_clear():
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match=r"edgecls\[tfds\]"):
            load_source("tfds", {"name": "mnist"})
    else:  # pragma: no cover
        pytest.skip("tensorflow_datasets is installed")


def test_importing_data_does_not_import_tensorflow():
    code = "import sys, edgecls.data; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- keras sets from files --------------------------------------------------------------------------

def _write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _write_mnist(folder, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_train, y_test = np.arange(n_train) % 10, np.arange(n_test)[::-1] % 10
    _write_idx(folder / "train-images-idx3-ubyte.gz", x_train)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_keras_idx_files(tmp_path, dataset):
    x, y = _write_mnist(tmp_path)
    ex = load_source("keras", {"dataset": dataset, "path": str(tmp_path)})
    assert ex.images.shape == (10, 28, 28, 1) and ex.images.dtype == np.uint8
    assert np.array_equal(ex.images[..., 0], x) and np.array_equal(ex.labels, y)
    assert ex.num_classes == 10
    assert ex.class_names[0] == ("0" if dataset == "mnist" else "T-shirt/top")


def test_keras_missing_and_corrupt_files(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + b"\x01")  # header says 4 labels, has 1
    with pytest.raises(DataError, match="truncated"):
        load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_source("keras", {"dataset": "cifar10", "path": str(tmp_path)})


def _cifar_batch(n, label_key, offset):
    data = np.zeros((n, 3, 32, 32), np.uint8)
    data[:, 0], data[:, 1], data[:, 2] = 255, 0, 128  # channel planes, as CIFAR stores them
    data[:, 0, 0, 0] = np.arange(n) + offset  # tag each image
    return {b"data": data.reshape(n, -1), label_key: list((np.arange(n) + offset) % 10),
            b"batch_label": b"x"}


def _write_npz(path, arrays: dict[str, np.ndarray], claims: dict[str, tuple[int, ...]] | None = None) -> None:
    """An .npz as numpy writes it; ``claims`` replaces an array's header shape (a lying header)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            header = np.lib.format.header_data_from_array_1_0(arr)
            header["shape"] = (claims or {}).get(key, arr.shape)
            np.lib.format.write_array_header_1_0(buf, header)
            buf.write(arr.tobytes())
            zf.writestr(f"{key}.npy", buf.getvalue())


def test_keras_mnist_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), "y_train": np.arange(5) % 10,
              "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), "y_test": np.arange(3) % 10}
    _write_npz(tmp_path / "mnist.npz", arrays)
    ex = load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    assert ex.images.shape == (8, 28, 28, 1) and list(ex.labels) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert np.array_equal(ex.images[5:, ..., 0], arrays["x_test"])


def test_keras_npz_whose_header_claims_28_gib_is_refused_before_reading(tmp_path):
    arrays = {"x_train": np.zeros((5, 28, 28), np.uint8), "y_train": np.zeros(5, np.int64),
              "x_test": np.zeros((3, 28, 28), np.uint8), "y_test": np.zeros(3, np.int64)}
    _write_npz(tmp_path / "mnist.npz", arrays, claims={"x_test": (30000, 1000, 1000)})  # 28 GiB of uint8
    with pytest.raises(DataError) as info:
        load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    assert str(info.value).startswith(f"keras source: {tmp_path / 'mnist.npz'}: x_test's header claims shape "
                                      "(30000, 1000, 1000) (30000000000 bytes) but the file holds ")
    del arrays["y_test"]
    _write_npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(DataError, match="no array 'y_test' in it; download the file again"):
        load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})
    (tmp_path / "mnist.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_source("keras", {"dataset": "mnist", "path": str(tmp_path)})


def test_keras_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        (folder / name).write_bytes(pickle.dumps(_cifar_batch(2, b"labels", 2 * k), protocol=2))
    ex = load_source("keras", {"dataset": "cifar10", "path": str(tmp_path)})
    assert ex.images.shape == (12, 32, 32, 3)
    assert tuple(ex.images[0, 5, 5]) == (255, 0, 128)  # channels-first planes became HWC pixels
    assert list(ex.images[:, 0, 0, 0]) == list(range(12))  # batches 1..5 then test, in order
    assert list(ex.labels) == [i % 10 for i in range(12)]
    assert ex.class_names[0] == "airplane" and ex.num_classes == 10
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_source("keras", {"dataset": "cifar10", "path": str(tmp_path)})


def test_keras_cifar100_and_unsafe_pickle(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps(_cifar_batch(3, b"fine_labels", 0)))
    (folder / "test").write_bytes(pickle.dumps(_cifar_batch(2, b"fine_labels", 3)))
    ex = load_source("keras", {"dataset": "cifar100", "path": str(tmp_path)})
    assert ex.images.shape == (5, 32, 32, 3) and ex.num_classes == 100
    assert ex.class_names[:2] == ("apple", "aquarium_fish") and ex.class_names[-1] == "worm"
    assert len(set(ex.class_names)) == 100

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "test").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="not a CIFAR batch"):
        load_source("keras", {"dataset": "cifar100", "path": str(tmp_path)})


# --- tfrecord ---------------------------------------------------------------------------------------

def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_tfrecord_source(tmp_path, caplog):
    from edgecls._tf import tf

    def example(image: bytes, label: int, text: bytes | None):
        feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                   "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
        if text is not None:
            feature["image/class/text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    path = tmp_path / "train.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(6):
            w.write(example(_png(10 * i), i % 3, [b"cat", b"dog", b"owl"][i % 3]))
        w.write(example(b"garbage", 1, b"dog"))
    with caplog.at_level(logging.WARNING, logger="edgecls.data"):
        ex = load_source("tfrecord", {"path": str(path)})
    assert len(ex) == 6 and ex.class_names == ("cat", "dog", "owl")
    assert list(ex.labels) == [0, 1, 2, 0, 1, 2]
    assert isinstance(ex.images[0], bytes) and (load_image(ex.images[2], channels=1) == 20).all()
    assert ex.skipped[0][0] == f"{path}#6" and "skipped 1" in caplog.text

    # Gzip-compressed, no text key, found through a glob: names default to "0".."K-1", or as given.
    gz = tmp_path / "more-00000.tfrecord.gz"
    with tf.io.TFRecordWriter(str(gz), options="GZIP") as w:
        for i in range(4):
            w.write(example(_png(i), i % 2, None))
    ex = load_source("tfrecord", {"path": str(tmp_path / "more-*")})
    assert ex.class_names == ("0", "1") and len(ex) == 4
    ex = load_source("tfrecord", {"path": str(gz), "class_names": ["even", "odd"]})
    assert ex.class_names == ("even", "odd")
    with pytest.raises(DataError, match=r"more-00000.tfrecord.gz.*Feature: y \(data type: int64\) is required"):
        load_source("tfrecord", {"path": str(gz), "label_key": "y"})
    with pytest.raises(DataError, match="does not exist"):
        load_source("tfrecord", {"path": str(tmp_path / "nope.tfrecord")})

    # A class name with a line break would split labels.txt: refused where it is read, naming the record.
    bad = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(bad)) as w:
        w.write(example(_png(1), 0, b"cat"))
        w.write(example(_png(2), 1, b"big\ndog"))
    with pytest.raises(DataError) as info:
        load_source("tfrecord", {"path": str(bad)})
    assert str(info.value) == (f"tfrecord source: {bad}#1 'image/class/text': class name 'big\\ndog' contains "
                               "the control character '\\n'; rename it")
    with pytest.raises(DataError, match=r"tfrecord source: class_names: class name 'o\\x00k' contains"):
        load_source("tfrecord", {"path": str(bad), "class_names": ["cat", "o\x00k"]})


def test_examples_contract():
    ex = Examples(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1], np.int64), ("a", "b"))
    assert len(ex) == 2 and ex.num_classes == 2 and ex.skipped == ()
    with pytest.raises(DataError):
        Examples([b"x"], np.array([0, 1]), ("a",))
    with pytest.raises(DataError, match="attribute 'colour' has 1 values for 2 images"):
        Examples(ex.images, ex.labels, ("a", "b"), attributes={"colour": np.array(["red"])})
    with pytest.raises(DataError, match="boxes"):
        Examples(ex.images, ex.labels, ("a", "b"), boxes=np.zeros((2, 3), np.float32))
