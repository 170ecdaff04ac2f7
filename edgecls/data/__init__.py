"""Data: sources, splits, augmentation and the input pipeline.

Importing this package does not import TensorFlow: the modules that use it
(pipeline, augment, the tfrecord/keras/tfds sources) import it inside the
functions that need it.
"""
from edgecls.data.augment import AugmentConfig, build_augmenter
from edgecls.data.images import ImageError, load_image, resize_image
from edgecls.data.pipeline import make_dataset, preprocess_numpy
from edgecls.data.sources import SOURCES, DataError, Examples, check_source, load_source
from edgecls.data.splits import load_split, make_split, save_split, stratified_split

__all__ = [
    "AugmentConfig",
    "DataError",
    "Examples",
    "ImageError",
    "SOURCES",
    "build_augmenter",
    "check_source",
    "load_image",
    "load_source",
    "load_split",
    "make_split",
    "make_dataset",
    "preprocess_numpy",
    "resize_image",
    "save_split",
    "stratified_split",
]
