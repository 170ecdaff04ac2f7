"""Batch augmentation for the tf.data training pipeline.

Runs on float32 batches in [0, 1], before normalization. Geometric and
photometric changes use tf_keras preprocessing layers; random crop,
perspective, hue, saturation, random erasing, MixUp and CutMix are tf ops
here. Order: flip, crop, rotation, zoom, translation, perspective,
brightness, contrast, hue and saturation (one HSV round trip, on values
clipped to [0, 1]), clip to [0, 1], erasing, then MixUp or CutMix (one of the
two per batch, with even odds, when both are on).

Hue and saturation act on RGB. On 1-channel (grayscale) batches they are the
identity, as they are on a gray RGB image (no saturation to scale, no hue to
turn), and a warning says so when the augmenter is traced.

Randomness comes from generators seeded by ``seed``: a fresh process with
the same seed draws the same augmentations; each epoch draws new ones.
TensorFlow is imported inside functions, so importing this module is cheap.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
import logging
from typing import Any, Callable, Mapping, Optional

log = logging.getLogger("edgecls.data")

FLIPS = ("none", "horizontal", "vertical", "both")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; every field at its default means "off".

    flip: "none" | "horizontal" | "vertical" | "both"
    rotation: max rotation as a fraction of a full turn (0.05 = +/-18 degrees)
    zoom: max zoom in/out as a fraction of the size
    translate: max shift as a fraction of the size
    contrast: max contrast change factor
    brightness: max brightness shift as a fraction of the value range
    random_crop: pad each side by 1/8 of the size (reflecting), crop back at random
    erasing: probability, per image, of erasing a random rectangle with noise
    mixup: MixUp Beta(alpha, alpha) parameter; 0 = off
    cutmix: CutMix Beta(alpha, alpha) parameter; 0 = off
    perspective: max shift of each corner, as a fraction of the size, of a random projective warp
    hue: max hue shift, as a fraction of the colour wheel (0.5 = any hue)
    saturation: saturation scaled by a factor in [1 - saturation, 1 + saturation]
    """

    flip: str = "none"
    rotation: float = 0.0
    zoom: float = 0.0
    translate: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0
    random_crop: bool = False
    erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    perspective: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        if self.flip not in FLIPS:
            raise ValueError(f"augment.flip must be one of {FLIPS}, got {self.flip!r}")
        for name in ("zoom", "translate", "contrast", "brightness", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1), got {value}")
        for name in ("rotation", "erasing"):  # a full turn; certain erasing
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("mixup", "cutmix"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.perspective < 0.5:  # half the size: corners could cross
            raise ValueError(f"augment.perspective must be in [0, 0.5), got {self.perspective}")
        if not 0.0 <= self.hue <= 0.5:  # half the wheel reaches every hue
            raise ValueError(f"augment.hue must be in [0, 0.5], got {self.hue}")

    @classmethod
    def from_any(cls, cfg: Any) -> "AugmentConfig":
        """Accept an AugmentConfig, a mapping, None, or any object with these attribute names."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        names = {f.name for f in dataclasses.fields(cls)}
        if isinstance(cfg, Mapping):
            unknown = sorted(set(cfg) - names)
            if unknown:
                raise ValueError(f"unknown augment option(s) {unknown}; known: {sorted(names)}")
            return cls(**dict(cfg))
        return cls(**{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})

    @property
    def enabled(self) -> bool:
        return self != AugmentConfig()


Augmenter = Callable[[Any, Any], tuple[Any, Any]]


def build_augmenter(cfg: Any, *, seed: int) -> Optional[Augmenter]:
    """``augment(images, labels_onehot) -> (images, labels)`` for float32 batches, or None if all off.

    Build it outside ``Dataset.map`` (its random generators are created here)
    and call it inside.
    """
    cfg = AugmentConfig.from_any(cfg)
    if not cfg.enabled:
        return None
    from edgecls._tf import keras, tf

    L = keras.layers
    # float32 layers: a global mixed-precision policy must not turn images into float16 here.
    layers: list = []
    if cfg.flip != "none":
        mode = {"both": "horizontal_and_vertical"}.get(cfg.flip, cfg.flip)
        layers.append(L.RandomFlip(mode, seed=seed + 1, dtype="float32"))
    crop = cfg.random_crop
    geometric = []
    if cfg.rotation:
        geometric.append(L.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed + 2, dtype="float32"))
    if cfg.zoom:
        geometric.append(L.RandomZoom((-cfg.zoom, cfg.zoom), fill_mode="reflect", seed=seed + 3,
                                      dtype="float32"))
    if cfg.translate:
        geometric.append(L.RandomTranslation(cfg.translate, cfg.translate, fill_mode="reflect",
                                             seed=seed + 4, dtype="float32"))
    photometric = []
    if cfg.brightness:
        photometric.append(L.RandomBrightness(cfg.brightness, value_range=(0.0, 1.0), seed=seed + 5,
                                              dtype="float32"))
    if cfg.contrast:
        photometric.append(L.RandomContrast(cfg.contrast, seed=seed + 6, dtype="float32"))
    gen = tf.random.Generator.from_seed(seed + 7)
    # Own generators, so turning these on leaves the draws of crop, erasing and the mixers alone.
    warp_gen = tf.random.Generator.from_seed(seed + 8) if cfg.perspective else None
    colour_gen = tf.random.Generator.from_seed(seed + 9) if cfg.hue or cfg.saturation else None

    def augment(images, labels):
        x = tf.cast(images, tf.float32)
        y = tf.cast(labels, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        if crop:
            x = _random_crop(tf, gen, x)
        for layer in geometric:
            x = layer(x, training=True)
        if warp_gen is not None:
            x = _perspective(tf, warp_gen, x, cfg.perspective)
        for layer in photometric:
            x = layer(x, training=True)
        if colour_gen is not None:
            x = _hue_saturation(tf, colour_gen, x, cfg.hue, cfg.saturation)
        x = tf.clip_by_value(x, 0.0, 1.0)
        if cfg.erasing:
            x = _random_erasing(tf, gen, x, cfg.erasing)
        if cfg.mixup and cfg.cutmix:
            x, y = tf.cond(gen.uniform([]) < 0.5,
                           lambda: _mixup(tf, gen, x, y, cfg.mixup),
                           lambda: _cutmix(tf, gen, x, y, cfg.cutmix))
        elif cfg.mixup:
            x, y = _mixup(tf, gen, x, y, cfg.mixup)
        elif cfg.cutmix:
            x, y = _cutmix(tf, gen, x, y, cfg.cutmix)
        return x, y

    return augment


def _random_crop(tf, gen, x):
    """Reflect-pad by 1/8 of each side, then cut a random window of the original size per image."""
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    ph = tf.maximum(1, h // 8)
    pw = tf.maximum(1, w // 8)
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode="REFLECT")
    oy = gen.uniform([b], 0, 2 * ph + 1, dtype=tf.int32)
    ox = gen.uniform([b], 0, 2 * pw + 1, dtype=tf.int32)
    rows = oy[:, None] + tf.range(h)[None, :]
    cols = ox[:, None] + tf.range(w)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.ensure_shape(out, x.shape)


def _perspective(tf, gen, x, amount: float):
    """Random projective warp: each corner moves by up to ``amount`` of the size on each axis, and the
    quadrilateral they span is stretched back onto the whole image (bilinear, reflected at the edges)."""
    shape = tf.shape(x)
    b = shape[0]
    h, w = tf.cast(shape[1], tf.float64), tf.cast(shape[2], tf.float64)
    # Output corners (x, y), and where each samples the input: the corner plus a random shift.
    zero = tf.constant(0.0, tf.float64)
    corners = tf.stack([tf.stack([zero, zero]), tf.stack([w - 1, zero]),
                        tf.stack([w - 1, h - 1]), tf.stack([zero, h - 1])])  # (4, 2)
    shift = tf.cast(gen.uniform([b, 4, 2], -amount, amount), tf.float64) * tf.stack([w, h])
    source = corners[None] + shift  # (B, 4, 2)
    # Solve for the 8 coefficients [a0 a1 a2 b0 b1 b2 c0 c1] mapping output (x, y) to input (u, v):
    # u = (a0 x + a1 y + a2) / k, v = (b0 x + b1 y + b2) / k, k = c0 x + c1 y + 1 (the op's convention).
    cx = tf.broadcast_to(corners[None, :, 0], [b, 4])
    cy = tf.broadcast_to(corners[None, :, 1], [b, 4])
    u, v = source[..., 0], source[..., 1]
    one, zero = tf.ones_like(cx), tf.zeros_like(cx)
    rows_u = tf.stack([cx, cy, one, zero, zero, zero, -cx * u, -cy * u], axis=-1)  # (B, 4, 8)
    rows_v = tf.stack([zero, zero, zero, cx, cy, one, -cx * v, -cy * v], axis=-1)
    matrix = tf.concat([rows_u, rows_v], axis=1)  # (B, 8, 8)
    rhs = tf.concat([u, v], axis=1)[..., None]  # (B, 8, 1)
    transforms = tf.cast(tf.linalg.solve(matrix, rhs)[..., 0], tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    return tf.ensure_shape(out, x.shape)


def _hue_saturation(tf, gen, x, hue: float, saturation: float):
    """Per image: turn the hue by up to +/-``hue`` of the wheel and scale the saturation by a factor in
    [1 - saturation, 1 + saturation]. Identity on 1-channel images (gray has neither)."""
    if x.shape[-1] != 3:
        log.warning("augment.hue/saturation have no effect on %s-channel images", x.shape[-1])
        return x
    b = tf.shape(x)[0]
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
    h, s, v = tf.unstack(hsv, axis=-1)
    if hue:
        h = tf.math.floormod(h + gen.uniform([b], -hue, hue)[:, None, None], 1.0)
    if saturation:
        s = tf.clip_by_value(s * gen.uniform([b], 1 - saturation, 1 + saturation)[:, None, None], 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([h, s, v], axis=-1))


def _box_mask(tf, y0, x0, bh, bw, h, w):
    """(B, H, W, 1) float mask, 1 inside each image's box [y0, y0+bh) x [x0, x0+bw)."""
    yy = tf.cast(tf.range(h), tf.float32)[None, :, None]
    xx = tf.cast(tf.range(w), tf.float32)[None, None, :]
    inside = ((yy >= y0[:, None, None]) & (yy < (y0 + bh)[:, None, None])
              & (xx >= x0[:, None, None]) & (xx < (x0 + bw)[:, None, None]))
    return tf.cast(inside, tf.float32)[..., None]


def _random_erasing(tf, gen, x, probability: float):
    """Random Erasing (Zhong et al. 2020): area 2-25% of the image, aspect 0.3-3.3, filled with noise."""
    shape = tf.shape(x)
    b = shape[0]
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    area = gen.uniform([b], 0.02, 0.25) * h * w
    aspect = tf.exp(gen.uniform([b], math.log(0.3), math.log(1 / 0.3)))
    bh = tf.minimum(tf.sqrt(area * aspect), h)
    bw = tf.minimum(tf.sqrt(area / aspect), w)
    y0 = gen.uniform([b]) * (h - bh)
    x0 = gen.uniform([b]) * (w - bw)
    apply = tf.cast(gen.uniform([b]) < probability, tf.float32)[:, None, None, None]
    mask = _box_mask(tf, y0, x0, bh, bw, shape[1], shape[2]) * apply
    return x * (1 - mask) + gen.uniform(shape) * mask


def _beta(tf, gen, n, alpha: float):
    """n samples of Beta(alpha, alpha), from two gammas (tf.random.Generator has no gamma)."""
    seeds = gen.make_seeds(2)
    g1 = tf.random.stateless_gamma([n], seed=seeds[:, 0], alpha=alpha)
    g2 = tf.random.stateless_gamma([n], seed=seeds[:, 1], alpha=alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def _partners(tf, gen, b):
    return tf.argsort(gen.uniform([b]))  # a random permutation of the batch


def _mixup(tf, gen, x, y, alpha: float):
    """MixUp (Zhang et al. 2018), one mixing weight per image; labels mix by the same weight."""
    b = tf.shape(x)[0]
    lam = _beta(tf, gen, b, alpha)
    perm = _partners(tf, gen, b)
    lx = lam[:, None, None, None]
    ly = lam[:, None]
    return lx * x + (1 - lx) * tf.gather(x, perm), ly * y + (1 - ly) * tf.gather(y, perm)


def _cutmix(tf, gen, x, y, alpha: float):
    """CutMix (Yun et al. 2019): paste a box from a partner image; labels mix by pasted area."""
    shape = tf.shape(x)
    b = shape[0]
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    ratio = tf.sqrt(1.0 - _beta(tf, gen, b, alpha))
    cy, cx = gen.uniform([b]) * h, gen.uniform([b]) * w
    y0 = tf.clip_by_value(tf.round(cy - ratio * h / 2), 0, h)
    y1 = tf.clip_by_value(tf.round(cy + ratio * h / 2), 0, h)
    x0 = tf.clip_by_value(tf.round(cx - ratio * w / 2), 0, w)
    x1 = tf.clip_by_value(tf.round(cx + ratio * w / 2), 0, w)
    mask = _box_mask(tf, y0, x0, y1 - y0, x1 - x0, shape[1], shape[2])
    perm = _partners(tf, gen, b)
    pasted = (y1 - y0) * (x1 - x0) / (h * w)  # the label weight is the area actually pasted
    mixed = x * (1 - mask) + tf.gather(x, perm) * mask
    return mixed, (1 - pasted)[:, None] * y + pasted[:, None] * tf.gather(y, perm)
