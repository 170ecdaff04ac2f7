"""Augmentation ops on batches: ranges, shapes, label mixing, seeding, configuration errors."""
from __future__ import annotations

import numpy as np
import pytest

from edgecls.data.augment import AugmentConfig, build_augmenter


def _batch(b=8, h=16, w=16, classes=4):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (b, h, w, 3)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.arange(b) % classes]
    return x, y


def _run(cfg, x, y, seed=0):
    from edgecls._tf import tf

    fn = build_augmenter(cfg, seed=seed)
    out = tf.data.Dataset.from_tensors((x, y)).map(fn)  # the way the pipeline calls it
    (xo, yo), = [(a.numpy(), b.numpy()) for a, b in out]
    return xo, yo


def test_all_off_is_none():
    assert build_augmenter(None, seed=0) is None
    assert build_augmenter({}, seed=0) is None
    assert build_augmenter(AugmentConfig(), seed=0) is None


@pytest.mark.parametrize("cfg", [
    {"flip": "horizontal"}, {"flip": "both"}, {"rotation": 0.2}, {"zoom": 0.3}, {"translate": 0.2},
    {"contrast": 0.5}, {"brightness": 0.5}, {"random_crop": True}, {"erasing": 1.0},
])
def test_single_ops_keep_shape_and_range(cfg):
    x, y = _batch()
    xo, yo = _run(cfg, x, y)
    assert xo.shape == x.shape and xo.dtype == np.float32
    assert xo.min() >= 0.0 and xo.max() <= 1.0
    assert np.array_equal(yo, y)  # only MixUp/CutMix touch labels
    assert not np.array_equal(xo, x)


def test_random_crop_shifts_pixels():
    x = np.zeros((4, 16, 16, 3), np.float32)
    x[:, 8, 8] = 1.0  # one bright pixel per image: a crop moves it by whole pixels
    xo, _ = _run({"random_crop": True}, x, np.eye(4, dtype=np.float32), seed=3)
    assert np.allclose(xo.sum(axis=(1, 2, 3)), 3.0)  # still exactly one copy of the pixel (no resampling)


def test_erasing_probability_zero_and_one():
    x, y = _batch()
    xo, _ = _run({"erasing": 1.0}, x, y)
    changed = np.any(xo != x, axis=(1, 2, 3))
    assert changed.all()
    erased_fraction = np.mean(xo != x, axis=(1, 2, 3))
    assert (erased_fraction < 0.3).all()


def test_mixup_labels():
    x, y = _batch()
    xo, yo = _run({"mixup": 0.5}, x, y)
    np.testing.assert_allclose(yo.sum(1), 1.0, atol=1e-6)
    assert ((yo > 1e-4) & (yo < 1 - 1e-4)).any()


def test_cutmix_label_weight_is_pasted_area():
    b = 8
    x = np.broadcast_to((np.arange(b, dtype=np.float32) / b)[:, None, None, None], (b, 16, 16, 3)).copy()
    y = np.eye(b, dtype=np.float32)  # class i <-> value i / b
    xo, yo = _run({"cutmix": 1.0}, x, y, seed=1)
    np.testing.assert_allclose(yo.sum(1), 1.0, atol=1e-6)
    owns = [np.mean(np.isclose(xo[i, ..., 0], i / b)) for i in range(b)]
    np.testing.assert_allclose(np.diag(yo), owns, atol=1e-5)
    assert min(owns) < 0.95  # something was pasted


def test_both_mixers_and_everything_together():
    x, y = _batch(b=16)
    cfg = {"flip": "both", "rotation": 0.1, "zoom": 0.1, "translate": 0.1, "contrast": 0.2,
           "brightness": 0.1, "random_crop": True, "erasing": 0.5, "mixup": 0.2, "cutmix": 1.0}
    xo, yo = _run(cfg, x, y)
    assert xo.shape == x.shape and 0 <= xo.min() and xo.max() <= 1
    np.testing.assert_allclose(yo.sum(1), 1.0, atol=1e-6)


def test_same_seed_same_result():
    x, y = _batch()
    cfg = {"flip": "both", "rotation": 0.2, "erasing": 0.5, "mixup": 0.3}
    a, ya = _run(cfg, x, y, seed=5)
    b, yb = _run(cfg, x, y, seed=5)
    c, _ = _run(cfg, x, y, seed=6)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_config_validation_and_inputs():
    with pytest.raises(ValueError, match="flip"):
        AugmentConfig(flip="diagonal")
    with pytest.raises(ValueError, match="rotation"):
        AugmentConfig(rotation=2.0)
    with pytest.raises(ValueError, match="erasing"):
        AugmentConfig(erasing=1.5)
    with pytest.raises(ValueError, match="unknown augment option"):
        AugmentConfig.from_any({"sharpen": 1})

    class FromRecipe:  # any object with the same attribute names works, e.g. the recipe's dataclass
        flip, rotation, zoom, translate, contrast, brightness = "horizontal", 0.1, 0.0, 0.0, 0.0, 0.0
        random_crop, erasing, mixup, cutmix = False, 0.0, 0.0, 0.0

    assert AugmentConfig.from_any(FromRecipe()) == AugmentConfig(flip="horizontal", rotation=0.1)
    assert AugmentConfig.from_any({"mixup": 0.2}).enabled
