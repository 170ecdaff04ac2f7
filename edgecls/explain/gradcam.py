"""Grad-CAM (Selvaraju et al., 2017) for Keras classifiers: where a class's evidence sits in a feature map.

For a feature map A (h, w, C) and a class score y_c: weights a_k = mean over
(h, w) of dy_c/dA_k; map = ReLU(sum_k a_k A_k), bilinearly upsampled to the
input size and divided by its maximum (an all-zero map stays zero).

- The feature map: by default the last layer with a 4-D output that is
  conv-like (not pooling, padding, cropping or dropout) and larger than 1x1 (a
  1x1 map cannot say where anything is; small nets on 8x8 digits pool down to
  it), else the last 4-D layer. ``layer=NAME`` picks
  another; for a QAT model NAME may also be the wrapped layer's own name.
- The score: the logits when the model ends in a softmax layer (edgecls
  models end in ``Activation("softmax", name="probs")``, QAT-wrapped or not),
  since the probability's gradient vanishes as it saturates; otherwise the
  probability itself.
- The target: each image's predicted class unless ``targets`` says otherwise.

The gradient comes from one traced backward pass per batch (``tf.gradients``
in a ``tf.function``: frozen layers need no watching). In QAT models (tfmot)
fake quantization passes gradients straight through: its own gradient is zero
outside the learned ranges, where a confident class's logit sits, so most maps
would be all zero (see :func:`_straight_through`).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from edgecls.errors import UsageError
from edgecls.models.heads import softmax_logits, unwrap

CANDIDATES_SHOWN = 6  # feature layers named in the error for an unknown --layer
# Layers that only resample or mask a feature map; the default map is the last conv-like one before them, at
# the finer resolution (Grad-CAM uses the last convolutional features, not the pooled ones).
RESAMPLING = ("Pooling2D", "Padding2D", "Cropping2D", "Dropout", "Dropout2D", "UpSampling2D")


def _rank(layer: Any) -> int | None:
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):  # a layer used at several places has no single output
        return None
    return len(shape) if isinstance(shape, tuple) else None


def feature_layers(model: Any) -> list[Any]:
    """The model's layers (in order) whose output is one 4-D feature map: what Grad-CAM can look at."""
    from edgecls._tf import keras

    return [layer for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and _rank(layer) == 4]


def pick_layer(model: Any, name: str | None = None) -> Any:
    """The feature layer Grad-CAM uses: ``name`` (UsageError listing candidates if it is no 4-D layer), else the
    last conv-like 4-D layer with a map larger than 1x1 (see the module docstring)."""
    layers = feature_layers(model)
    if not layers:
        raise UsageError(f"model '{model.name}' has no layer with a 4-D (feature map) output; Grad-CAM needs one")
    if name is None:
        conv_like = [layer for layer in layers if not type(unwrap(layer)).__name__.endswith(RESAMPLING)]
        spatial = [layer for layer in conv_like if any(s is None or s > 1 for s in layer.output_shape[1:3])]
        return (spatial or conv_like or layers)[-1]
    for layer in layers:
        if name in (layer.name, unwrap(layer).name):
            return layer
    shown = ", ".join(layer.name for layer in layers[-CANDIDATES_SHOWN:])
    other = next((layer for layer in model.layers if name in (layer.name, unwrap(layer).name)), None)
    why = (f"layer '{name}' of model '{model.name}' has no 4-D feature map output" if other is not None else
           f"model '{model.name}' has no layer named '{name}'")
    raise UsageError(f"--layer: {why}; feature layers (last {min(len(layers), CANDIDATES_SHOWN)} of "
                     f"{len(layers)}): {shown}")


def score_tensor(model: Any) -> tuple[Any, str]:
    """(the tensor whose entry c is class c's score, "logits" or "probability")."""
    logits = softmax_logits(model)
    return (logits, "logits") if logits is not None else (model.outputs[0], "probability")


_FAKE_QUANT_OPS = ("FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel")


@functools.lru_cache(maxsize=None)
def _straight_through() -> dict[str, str]:
    """{fake-quant op: a gradient that passes through unchanged}, registered once per process.

    TensorFlow's own gradient of fake quantization is zero outside the quantizer's range. In a QAT model
    (tfmot) activations at the top of their range, the confident class's logit first of all, would then pass
    no gradient and many maps would be all zero; QAT trains with the same straight-through idea.
    """
    from edgecls._tf import tf

    name = "EdgeclsStraightThrough"
    try:
        @tf.RegisterGradient(name)
        def _pass(op, grad):
            return [grad] + [None] * (len(op.inputs) - 1)  # nothing for the range (min, max) inputs
    except KeyError:  # registered already (a module reload)
        pass
    return {op: name for op in _FAKE_QUANT_OPS}


class GradCam:
    """Grad-CAM maps of one Keras classifier: ``GradCam(model)(images) -> (maps (N, H, W), probs (N, K))``.

    ``pixels``: None feeds ``images`` to the model as they are; a recipe's DataConfig (or anything with
    ``channels`` and ``normalize.mean/std``) takes raw RGB pixels 0..255 as the exported models do, converted
    in the graph by :func:`edgecls.export.convert.with_pixel_input` (gray and normalization as export does).
    """

    def __init__(self, model: Any, *, layer: str | None = None, pixels: Any = None):
        from edgecls._tf import keras, tf

        self.layer = pick_layer(model, layer)
        score, self.score_kind = score_tensor(model)
        net = keras.Model(model.inputs, [self.layer.output, score, model.outputs[0]], name=f"{model.name}_gradcam")
        if pixels is not None:
            from edgecls.export.convert import with_pixel_input

            net = with_pixel_input(net, channels=pixels.channels, mean=pixels.normalize.mean,
                                   std=pixels.normalize.std)
        self.model = net
        self.input_size = tuple(int(s) for s in net.input_shape[1:3])
        self.channels = int(net.input_shape[-1])

        straight_through = _straight_through()

        def step(x, targets):
            # Symbolic gradients (tf.gradients, in this traced function) rather than a tape: only they honour the
            # graph's gradient overrides, which let fake quantization pass gradients straight through (QAT).
            with tf.compat.v1.get_default_graph().gradient_override_map(straight_through):
                feats, scores, probs = self.model(x, training=False)
            feats = tf.cast(feats, tf.float32)
            chosen = tf.where(targets < 0, tf.argmax(probs, -1, output_type=tf.int32), targets)
            score = tf.gather(tf.cast(scores, tf.float32), chosen, axis=1, batch_dims=1)
            grads = tf.gradients(score, feats)[0]
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1, keepdims=True))
            cam = tf.image.resize(cam, self.input_size, method="bilinear")[..., 0]
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return tf.math.divide_no_nan(cam, peak), tf.cast(probs, tf.float32), chosen

        h, w = self.input_size
        self._step = tf.function(step, input_signature=[tf.TensorSpec((None, h, w, self.channels), tf.float32),
                                                        tf.TensorSpec((None,), tf.int32)])

    def __call__(self, images: np.ndarray, targets: Sequence[int] | None = None, *,
                 batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Maps (N, H, W) float32 in [0, 1] and probabilities (N, K) for images (N, H, W, C) at the input size.

        ``targets``: the class to explain per image (default: each image's predicted class).
        """
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != (*self.input_size, self.channels):
            raise UsageError(f"Grad-CAM of '{self.model.name}' takes images of shape (N, {self.input_size[0]}, "
                             f"{self.input_size[1]}, {self.channels}), got {images.shape}")
        want = np.full(len(images), -1, np.int32) if targets is None else np.asarray(targets, np.int32)
        maps, probs = [], []
        for start in range(0, len(images), batch):
            cam, p, _ = self._step(images[start:start + batch].astype(np.float32), want[start:start + batch])
            maps.append(cam.numpy())
            probs.append(p.numpy())
        if not maps:
            return np.zeros((0, *self.input_size), np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate(maps), np.concatenate(probs)


def grad_cam(model: Any, images: np.ndarray, targets: Sequence[int] | None = None, *, layer: str | None = None,
             pixels: Any = None, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """One-shot :class:`GradCam`: (maps (N, H, W) in [0, 1], probabilities (N, K))."""
    return GradCam(model, layer=layer, pixels=pixels)(images, targets, batch=batch)
