"""Examples -> model inputs: a tf.data pipeline for training, a numpy path for evaluation.

Both decode and resize with Pillow through :mod:`edgecls.data.images` (the
same code the TensorFlow-free runtime uses) and normalize with the same
formula, ``(x / 255 - mean) / std``, so a model is evaluated and deployed on
exactly the pixels it was trained on. TensorFlow is imported inside
:func:`make_dataset` only.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np

from edgecls.data.images import ImageError, load_image, resize_image
from edgecls.data.sources import DataError, Examples
from edgecls.progress import bar

_CHUNK = 64  # images decoded per Python call: amortizes the tf.numpy_function overhead


def _check_args(examples: Examples, indices: np.ndarray, image_size: Sequence[int], channels: int,
                mean: Sequence[float], std: Sequence[float], resize: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (indices int64, mean float32 (C,), std float32 (C,))."""
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise DataError(f"image_size must be (height, width), got {tuple(image_size)}")
    if resize not in ("stretch", "crop"):
        raise DataError(f"resize must be 'stretch' or 'crop', got {resize!r}")
    stats = []
    for name, values in (("mean", mean), ("std", std)):
        arr = np.asarray(values, dtype=np.float32).reshape(-1)
        if arr.size not in (1, channels):
            raise DataError(f"normalization {name} needs 1 or {channels} values, got {arr.size}")
        stats.append(np.broadcast_to(arr, (channels,)).copy())
    if np.any(stats[1] <= 0):
        raise DataError(f"normalization std must be > 0, got {list(std)}")
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(examples)):
        raise DataError(f"split indices outside 0..{len(examples) - 1}; the split file does not "
                        "belong to this data (delete it and re-run the train stage)")
    return idx, stats[0], stats[1]


def decode_batch(examples: Examples, indices: np.ndarray, *, image_size: Sequence[int], channels: int,
                 resize: str) -> np.ndarray:
    """uint8 (len(indices), H, W, channels): decoded, channel-converted and resized images."""
    size = (int(image_size[0]), int(image_size[1]))
    images = examples.images
    if isinstance(images, np.ndarray):
        batch = images[indices]
        if batch.dtype == np.uint8 and batch.ndim == 4 and batch.shape[1:] == (*size, channels):
            return batch  # already model-sized: nothing to do
        sources: Sequence[Any] = list(batch)
    else:
        sources = [images[int(i)] for i in indices]
    out = np.empty((len(sources), *size, channels), dtype=np.uint8)
    # A whole split at once (export's calibration pixels) gets a bar on a TTY; tf.data's and preprocess_numpy's
    # chunks (at most _CHUNK images) do not: preprocess_numpy has its own, tf.data decodes in parallel.
    for k, src in enumerate(bar(sources, desc="decoding", unit="img") if len(sources) > _CHUNK else sources):
        out[k] = resize_image(load_image(src, channels=channels), size, resize)
    return out


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 ``(x / 255 - mean) / std``; the tf.data pipeline does the same ops in the same order."""
    x = images.astype(np.float32) / np.float32(255.0)
    return (x - mean.astype(np.float32)) / std.astype(np.float32)


def preprocess_numpy(examples: Examples, indices: np.ndarray, *, image_size: Sequence[int], channels: int,
                     mean: Sequence[float], std: Sequence[float], resize: str = "stretch") -> np.ndarray:
    """All ``indices`` decoded, resized and normalized: float32 (N, H, W, channels)."""
    idx, mean_arr, std_arr = _check_args(examples, indices, image_size, channels, mean, std, resize)
    out = np.empty((len(idx), int(image_size[0]), int(image_size[1]), channels), dtype=np.float32)
    # Chunks keep the uint8 intermediate small (each under decode_batch's threshold for a bar); a large folder takes
    # ~ms per image to decode, so more than one chunk gets a bar (on a TTY).
    with bar(total=len(idx), desc="decoding", unit="img") if len(idx) > _CHUNK else contextlib.nullcontext() as shown:
        for start in range(0, len(idx), _CHUNK):
            part = idx[start:start + _CHUNK]
            out[start:start + len(part)] = normalize(
                decode_batch(examples, part, image_size=image_size, channels=channels, resize=resize),
                mean_arr, std_arr)
            if shown is not None:
                shown.update(len(part))
    return out


def make_dataset(examples: Examples, indices: np.ndarray, *, image_size: Sequence[int], channels: int,
                 mean: Sequence[float], std: Sequence[float], resize: str = "stretch", batch_size: int,
                 training: bool, augment: Any = None, seed: int = 0, cache: bool = True,
                 num_classes: int) -> Any:
    """A tf.data.Dataset of (images float32 (B, H, W, channels), one-hot labels float32 (B, num_classes)).

    Decode + resize (Pillow, in tf.numpy_function) -> cache -> shuffle (training;
    seeded, new order each epoch; without cache the indices are shuffled before
    decoding instead) -> batch -> augment (training) -> normalize
    -> prefetch. ``augment`` is a callable from :func:`build_augmenter`, or an
    augmentation config (AugmentConfig / dict) built here with ``seed``.
    """
    from edgecls._tf import tf

    idx, mean_arr, std_arr = _check_args(examples, indices, image_size, channels, mean, std, resize)
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    labels = np.asarray(examples.labels, dtype=np.int64)[idx]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels outside 0..{num_classes - 1}; num_classes does not match the data")
    height, width = int(image_size[0]), int(image_size[1])

    def load_chunk(chunk: np.ndarray) -> np.ndarray:
        try:
            return decode_batch(examples, chunk, image_size=(height, width), channels=channels, resize=resize)
        except ImageError as exc:  # surfaces as a tf error carrying this one line
            raise ValueError(str(exc)) from None

    def decode(chunk_idx, chunk_labels):
        images = tf.numpy_function(load_chunk, [chunk_idx], tf.uint8, stateful=False)
        images = tf.ensure_shape(images, [None, height, width, channels])
        return images, chunk_labels

    ds = tf.data.Dataset.from_tensor_slices((idx, labels))
    if training and not cache:
        # Shuffle the (cheap) indices before decoding, so no buffer of decoded images is needed.
        ds = ds.shuffle(max(1, len(idx)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(_CHUNK).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    if cache:
        ds = ds.cache()  # decoded once; every later epoch reads memory
        if training:  # after the cache, so each epoch gets a new order
            ds = ds.shuffle(max(1, len(idx)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)

    augmenter = None
    if training and augment is not None:
        if callable(augment):
            augmenter = augment
        else:
            from edgecls.data.augment import build_augmenter

            augmenter = build_augmenter(augment, seed=seed)

    mean_t = tf.constant(mean_arr, tf.float32)
    std_t = tf.constant(std_arr, tf.float32)

    def to_float(images, y):
        return tf.cast(images, tf.float32) / 255.0, tf.one_hot(y, num_classes, dtype=tf.float32)

    def norm(images, y):
        return (images - mean_t) / std_t, y

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # Sequential on purpose: the augmenter's random generators then draw in a fixed order.
        ds = ds.map(augmenter)
    ds = ds.map(norm, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)

