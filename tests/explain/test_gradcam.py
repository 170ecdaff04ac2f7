"""Grad-CAM against the published sanity checks, on a small CNN trained here on shapes (32 px, 3 classes).

- Randomization (Adebayo et al., 2018): the maps of the trained model and of the same architecture with
  re-initialized weights must differ (mean Spearman rank correlation below 0.5).
- Pointing game (Zhang et al., 2016): the map's maximum falls inside the object's box for >= 70 % of the
  correctly classified test images. Tolerance: one cell of the feature map Grad-CAM reads (8x8 for this net,
  so 4 px of the 32-px image) around the box, because an upsampled 8x8 map cannot place its peak finer.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgecls.errors import UsageError

SIZE = 32
CLASSES = ("circle", "cross", "triangle")
TRAIN, TEST = 1500, 300
MEAN, STD = 0.5, 0.5


@pytest.fixture(scope="module")
def shapes():
    from edgecls.data.shapes import generate_shapes

    images, labels, details = generate_shapes(image_size=SIZE, classes=CLASSES, count=TRAIN + TEST, seed=0,
                                              details=True)
    return images, labels, np.asarray(details["boxes"], np.float32)


def _normalize(pixels: np.ndarray) -> np.ndarray:
    return ((pixels / 255.0 - MEAN) / STD).astype(np.float32)


@pytest.fixture(scope="module")
def trained(shapes):
    """edgecls' small_cnn (width 0.5), 12 epochs: ~0.8 test accuracy in ~20 s on 2 cores."""
    from edgecls._tf import keras
    from edgecls.models import create

    images, labels, _ = shapes
    keras.utils.set_random_seed(0)
    model = create("small_cnn", len(CLASSES), (SIZE, SIZE, 3), width=0.5, dropout=0.0)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(_normalize(images[:TRAIN]), labels[:TRAIN], epochs=12, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_maps(trained, shapes):
    from edgecls.explain import GradCam

    images, labels, boxes = shapes
    cam = GradCam(trained)
    maps, probs = cam(_normalize(images[TRAIN:]))
    return cam, maps, probs


def test_picks_the_last_conv_feature_map_and_explains_logits(test_maps):
    cam, maps, probs = test_maps
    # Not block3_pool (4x4, a pooling of it): Grad-CAM reads the last convolutional features.
    assert cam.layer.name == "block3_relu" and cam.layer.output_shape[1:3] == (8, 8)
    assert cam.score_kind == "logits"
    assert maps.shape == (TEST, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.allclose(maps.reshape(TEST, -1).max(axis=1)[maps.reshape(TEST, -1).max(axis=1) > 0], 1.0)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_batched_maps_equal_one_at_a_time(trained, shapes, test_maps):
    cam, maps, probs = test_maps
    images = _normalize(shapes[0][TRAIN:TRAIN + 5])
    one = np.concatenate([cam(images[i:i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(one, maps[:5], atol=1e-4)
    np.testing.assert_allclose(cam(images, batch=2)[0], maps[:5], atol=1e-4)


def test_randomization_check(trained, shapes, test_maps):
    """Adebayo et al. (2018): maps must depend on the learned weights, not only on the image and architecture."""
    from edgecls._tf import keras
    from edgecls.explain import GradCam
    from edgecls.metrics import rank_correlation

    cam, maps, probs = test_maps
    keras.utils.set_random_seed(1)
    fresh = keras.models.clone_model(trained)  # same architecture, re-initialized weights
    random_maps, _ = GradCam(fresh)(_normalize(shapes[0][TRAIN:]), probs.argmax(axis=1))
    rho = np.mean([rank_correlation(a, b) for a, b in zip(maps, random_maps)])
    assert rho < 0.5, f"mean rank correlation with a re-initialized model is {rho:.3f}"
    # And the check can fail: the trained model against itself is perfectly correlated.
    assert np.mean([rank_correlation(a, a) for a in maps[:10]]) == pytest.approx(1.0)


def test_pointing_game(shapes, test_maps):
    """Zhang et al. (2016): the map's peak lies on the object (its box, +- one feature-map cell)."""
    cam, maps, probs = test_maps
    _, labels, boxes = shapes
    correct = probs.argmax(axis=1) == labels[TRAIN:]
    assert correct.mean() >= 0.7, f"the test model is too weak to judge maps: accuracy {correct.mean():.2f}"
    tolerance = SIZE / cam.layer.output_shape[1]  # one feature-map cell, in image pixels
    hits = [_points_inside(m, b, tolerance) for m, b in zip(maps[correct], boxes[TRAIN:][correct])]
    rate = float(np.mean(hits))
    assert rate >= 0.7, f"pointing game: {rate:.3f} of {int(correct.sum())} correctly classified images"
    # The check can fail: a map peaking in a fixed corner hits far less often.
    corner = np.zeros((SIZE, SIZE), np.float32)
    corner[0, 0] = 1
    assert np.mean([_points_inside(corner, b, tolerance) for b in boxes[TRAIN:][correct]]) < rate


def _points_inside(heatmap: np.ndarray, box: np.ndarray, tolerance: float) -> bool:
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    x0, y0, x1, y1 = np.asarray(box) * SIZE
    cx, cy = x + 0.5, y + 0.5  # the pixel's centre
    return bool(x0 - tolerance <= cx <= x1 + tolerance and y0 - tolerance <= cy <= y1 + tolerance)


def test_layer_by_name_and_bad_names(trained):
    from edgecls.explain import GradCam

    assert GradCam(trained, layer="block2_relu").layer.output_shape[1:3] == (16, 16)
    with pytest.raises(UsageError, match=r"has no layer named 'nope'; feature layers .*block3_relu"):
        GradCam(trained, layer="nope")
    with pytest.raises(UsageError, match=r"layer 'logits' .* has no 4-D feature map output"):
        GradCam(trained, layer="logits")


def test_qat_model_loaded_from_h5(trained, shapes, test_maps, tmp_path):
    """A QAT stage's model (tfmot wrappers, saved as .h5 and read by the safe loader) explains like the float one."""
    from edgecls._tf import keras, tfmot
    from edgecls.compress.quantize import apply
    from edgecls.explain import GradCam
    from edgecls.metrics import rank_correlation
    from edgecls.models.loading import load_keras_model
    from edgecls.recipe.schema import QuantizeOptions

    qat, _ = apply(trained, QuantizeOptions(), total_steps=1)
    qat.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy")
    qat.fit(_normalize(shapes[0][:TRAIN]), shapes[1][:TRAIN], epochs=1, batch_size=32, verbose=0)  # as compress does
    path = tmp_path / "qat.h5"
    with tfmot().quantization.keras.quantize_scope():
        qat.save(str(path), include_optimizer=False)
    loaded = load_keras_model(path, what="compress stage 'qat'", quantized=True)
    cam = GradCam(loaded, layer="block3_relu")  # the wrapped layer's own name works
    assert cam.layer.name != "block3_relu" and cam.score_kind == "logits"
    images = _normalize(shapes[0][TRAIN:TRAIN + 40])
    maps, probs = cam(images)
    assert maps.shape == (40, SIZE, SIZE) and np.isfinite(maps).all()
    assert (maps.reshape(40, -1).max(axis=1) == 1.0).all()
    # One epoch of QAT barely moves the model: its maps follow the float model's.
    float_maps = test_maps[1][:40]
    assert np.mean([rank_correlation(a, b) for a, b in zip(maps, float_maps)]) > 0.7
    # Fake quantization's own gradient is zero outside its learned range, where a confident class's logit sits
    # after longer fine-tuning (the digits QAT stage: 41 % all-zero maps). Clip the logits' range to force it:
    # the straight-through gradient still gives every image a map.
    top = next(w for w in loaded.get_layer("quant_logits").weights if "post_activation_max" in w.name)
    top.assign(0.0)
    clipped, _ = GradCam(loaded)(images)
    assert (clipped.reshape(40, -1).max(axis=1) == 1.0).mean() >= 0.9
