"""The tf.data pipeline and its numpy twin: shapes, normalization, channels, resizing, labels, augmentation."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgecls.data import DataError, Examples, load_source, make_dataset, preprocess_numpy


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def shapes():
    return load_source("shapes", {"image_size": 20, "classes": ["circle", "square", "star"], "count": 30, "seed": 1})


def test_shapes_dtypes_normalization_and_labels(shapes):
    idx = np.arange(0, 30, 3)  # unsorted order must be kept in evaluation
    kw = dict(image_size=(16, 12), channels=3, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    ds = make_dataset(shapes, idx[::-1], batch_size=4, training=False, num_classes=3, **kw)
    x, y = _collect(ds)
    assert x.shape == (10, 16, 12, 3) and x.dtype == np.float32
    assert y.shape == (10, 3) and y.dtype == np.float32
    assert np.array_equal(y, np.eye(3, dtype=np.float32)[shapes.labels[idx[::-1]]])
    ref = preprocess_numpy(shapes, idx[::-1], resize="stretch", **kw)
    np.testing.assert_allclose(x, ref, atol=1e-6)
    # Normalization is (x / 255 - mean) / std per channel, on the resized uint8 pixels.
    from edgecls.data.pipeline import decode_batch

    raw = decode_batch(shapes, idx[::-1], image_size=(16, 12), channels=3, resize="stretch")
    expected = (raw / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.5])
    np.testing.assert_allclose(x, expected, atol=1e-5)
    batches = [int(b[0].shape[0]) for b in ds]
    assert batches == [4, 4, 2]  # the last partial batch is kept


def test_channel_conversion(shapes):
    gray = Examples(np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1), np.array([0, 1]), ("a", "b"))
    x = preprocess_numpy(gray, [0, 1], image_size=(4, 4), channels=3, mean=[0.0], std=[1.0])
    assert x.shape == (2, 4, 4, 3) and np.array_equal(x[..., 0], x[..., 2])
    np.testing.assert_allclose(x[..., 1], gray.images[..., 0] / 255.0, atol=1e-7)
    x1 = preprocess_numpy(shapes, [0, 1], image_size=(20, 20), channels=1, mean=[0.0], std=[1.0])
    lum = shapes.images[:2].astype(np.float64) @ [0.299, 0.587, 0.114] / 255.0
    assert x1.shape == (2, 20, 20, 1) and np.abs(x1[..., 0] - lum).max() < 2 / 255


def test_crop_vs_stretch():
    img = np.zeros((8, 32, 3), np.uint8)
    img[:, :8] = 255  # a white left quarter
    ex = Examples(img[None], np.array([0]), ("only",))
    args = dict(image_size=(8, 8), channels=3, mean=[0.0], std=[1.0], batch_size=1, training=False,
                num_classes=1)
    stretched, _ = _collect(make_dataset(ex, [0], resize="stretch", **args))
    cropped, _ = _collect(make_dataset(ex, [0], resize="crop", **args))
    assert stretched[0, :, 0].min() > 0.9  # the white edge survives stretching
    assert cropped.max() == 0.0  # the central crop never reaches it


def test_paths_and_bytes_sources(tmp_path):
    paths, blobs = [], []
    for i in range(3):
        arr = np.full((10 + i, 14, 3), 40 * i, np.uint8)
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(arr).save(paths[-1])
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    labels = np.array([0, 1, 0])
    kw = dict(image_size=(6, 6), channels=1, mean=[0.0], std=[1.0], batch_size=2, training=False, num_classes=2)
    xp, _ = _collect(make_dataset(Examples(paths, labels, ("a", "b")), [0, 1, 2], **kw))
    xb, _ = _collect(make_dataset(Examples(blobs, labels, ("a", "b")), [0, 1, 2], **kw))
    assert np.array_equal(xp, xb) and xp.shape == (3, 6, 6, 1)
    np.testing.assert_allclose(xp[:, 0, 0, 0], [0, 40 / 255, 80 / 255], atol=1e-6)


AUG = {"flip": "both", "rotation": 0.1, "zoom": 0.1, "translate": 0.1, "contrast": 0.3, "brightness": 0.2,
       "random_crop": True, "erasing": 0.5, "mixup": 0.0, "cutmix": 0.0}


def test_augmentation_training_only(shapes):
    idx = np.arange(12)
    kw = dict(image_size=(20, 20), channels=3, mean=[0.5], std=[0.5], batch_size=12, num_classes=3, seed=2)
    ref = preprocess_numpy(shapes, idx, image_size=(20, 20), channels=3, mean=[0.5], std=[0.5])
    x_eval, _ = _collect(make_dataset(shapes, idx, training=False, augment=AUG, **kw))
    np.testing.assert_allclose(x_eval, ref, atol=1e-6)  # never augmented when not training

    train = make_dataset(shapes, idx, training=True, augment=AUG, **kw)
    plain = make_dataset(shapes, idx, training=True, augment=None, **kw)
    (xa, ya), = [(x.numpy(), y.numpy()) for x, y in train]
    (xp, yp), = [(x.numpy(), y.numpy()) for x, y in plain]
    assert xa.shape == xp.shape and xa.min() >= -1 - 1e-6 and xa.max() <= 1 + 1e-6  # clipped to [0,1]
    # Same seed, so both are shuffled the same way; only augmentation changed the pixels.
    assert np.array_equal(ya, yp) and np.abs(xa - xp).mean() > 0.05


def test_mixup_soft_labels_sum_to_one(shapes):
    ds = make_dataset(shapes, np.arange(30), image_size=(20, 20), channels=3, mean=[0.0], std=[1.0],
                      batch_size=10, training=True, augment={"mixup": 0.4}, num_classes=3, seed=0)
    _, y = _collect(ds)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    soft = (y > 1e-3) & (y < 1 - 1e-3)
    assert soft.any(axis=1).mean() > 0.5  # most labels are mixtures


def test_shuffle_reshuffles_each_epoch(shapes):
    ds = make_dataset(shapes, np.arange(30), image_size=(20, 20), channels=3, mean=[0.0], std=[1.0],
                      batch_size=30, training=True, num_classes=3, seed=4)
    first = [float(v) for v in next(iter(ds))[0].numpy().mean(axis=(1, 2, 3))]
    second = [float(v) for v in next(iter(ds))[0].numpy().mean(axis=(1, 2, 3))]
    assert first != second and sorted(first) == pytest.approx(sorted(second))


def test_bad_arguments(shapes):
    kw = dict(image_size=(8, 8), channels=3, mean=[0.0], std=[1.0])
    with pytest.raises(DataError, match="mean"):
        preprocess_numpy(shapes, [0], **{**kw, "mean": [0.1, 0.2]})
    with pytest.raises(DataError, match="std"):
        preprocess_numpy(shapes, [0], **{**kw, "std": [0.0]})
    with pytest.raises(DataError, match="split indices"):
        preprocess_numpy(shapes, [30], **kw)
    with pytest.raises(DataError, match="channels"):
        preprocess_numpy(shapes, [0], **{**kw, "channels": 2})
