"""Augmentation ops on batches: ranges, shapes, label mixing, seeding, configuration errors."""
from __future__ import annotations

import colorsys

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
    {"perspective": 0.2}, {"hue": 0.2}, {"saturation": 0.5},
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


# --- perspective, hue, saturation ------------------------------------------------------------------

def _smooth(b=8, size=16):
    """Images with structure at every scale a warp can move: a gradient plus a bright square."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    x = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    x[size // 4:size // 2, size // 4:size // 2] = 1.0
    return np.broadcast_to(x, (b, size, size, 3)).copy()


def _colours(saturation=0.8, value=0.9, b=8, size=8):
    """One flat colour per image, hues spread round the wheel; returns (images, hues)."""
    hues = (np.arange(b) + 0.5) / b
    rgb = np.array([colorsys.hsv_to_rgb(h, saturation, value) for h in hues], np.float32)
    return np.broadcast_to(rgb[:, None, None, :], (b, size, size, 3)).copy(), hues


def _hsv_of_flat(images):
    """(hue, saturation, value) of each flat image, checking it stayed flat."""
    assert np.ptp(images, axis=(1, 2)).max() < 1e-5
    return np.array([colorsys.rgb_to_hsv(*px) for px in images[:, 0, 0]])


def test_perspective_zero_is_identity_and_more_moves_more():
    from edgecls._tf import tf

    from edgecls.data.augment import _perspective

    assert build_augmenter({"perspective": 0.0}, seed=0) is None  # 0 = off
    x = _smooth()
    same = _perspective(tf, tf.random.Generator.from_seed(0), tf.constant(x), 0.0).numpy()
    np.testing.assert_allclose(same, x, atol=1e-5)
    y = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    moved = [np.abs(_run({"perspective": p}, x, y, seed=2)[0] - x).mean() for p in (0.02, 0.1, 0.3)]
    assert 0 < moved[0] < moved[1] < moved[2], moved


def test_hue_shift_is_bounded_and_keeps_saturation_and_value():
    x, hues = _colours()
    y = np.eye(8, dtype=np.float32)
    shifts = {}
    for bound in (0.02, 0.2):
        xo, yo = _run({"hue": bound}, x, y, seed=4)
        assert np.array_equal(yo, y)
        hsv = _hsv_of_flat(xo)
        shift = np.abs((hsv[:, 0] - hues + 0.5) % 1.0 - 0.5)  # circular distance on the wheel
        assert shift.max() <= bound + 2e-3, (bound, shift)
        np.testing.assert_allclose(hsv[:, 1:], [[0.8, 0.9]] * 8, atol=2e-3)
        shifts[bound] = shift.mean()
    assert 0 < shifts[0.02] < shifts[0.2]


def test_saturation_factor_is_bounded_and_keeps_hue():
    x, hues = _colours(saturation=0.5)
    y = np.eye(8, dtype=np.float32)
    xo, _ = _run({"saturation": 0.4}, x, y, seed=4)
    hsv = _hsv_of_flat(xo)
    factor = hsv[:, 1] / 0.5
    assert (factor >= 0.6 - 2e-3).all() and (factor <= 1.4 + 2e-3).all(), factor
    assert np.abs(factor - 1).max() > 0.05  # it did change
    np.testing.assert_allclose(hsv[:, 0], hues, atol=2e-3)
    np.testing.assert_allclose(hsv[:, 2], 0.9, atol=2e-3)


def test_colour_shifts_leave_grayscale_alone():
    x = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    xo, yo = _run({"hue": 0.3, "saturation": 0.5}, x, y)
    assert np.array_equal(xo, x) and np.array_equal(yo, y)


def test_new_ops_are_seeded():
    x, y = _batch()
    cfg = {"perspective": 0.1, "hue": 0.1, "saturation": 0.3}
    a, _ = _run(cfg, x, y, seed=5)
    b, _ = _run(cfg, x, y, seed=5)
    c, _ = _run(cfg, x, y, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_new_fields_validate_and_come_from_the_recipe():
    from edgecls.recipe.schema import Augment

    for bad in ({"perspective": 0.5}, {"perspective": -0.1}, {"hue": 0.6}, {"saturation": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AugmentConfig(**bad)
    cfg = AugmentConfig.from_any(Augment(perspective=0.1, hue=0.05, saturation=0.2))
    assert (cfg.perspective, cfg.hue, cfg.saturation) == (0.1, 0.05, 0.2) and cfg.enabled
