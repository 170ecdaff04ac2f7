"""The runtime's errors: each is an :class:`~edgecls.errors.EdgeclsError`, so the CLI prints one line.

The message names the input (the model file, the image) and says what to do.
"""
from __future__ import annotations

from edgecls.errors import EdgeclsError, UsageError


class RuntimeModelError(EdgeclsError):
    """A model file that is missing, unreadable, truncated, not TFLite, or not an image classifier."""


class LabelsMissing(RuntimeModelError):
    """A model with neither labels in its metadata, nor a labels.txt beside it, nor labels given in code."""


class XnnpackRefused(RuntimeModelError):
    """XNNPACK, the default CPU delegate, refused to prepare the model; the Runner falls back to builtin kernels."""


class ImageError(EdgeclsError, ValueError):
    """An input that is not a decodable image, or whose shape or channels cannot be fed to the model.

    Also a ``ValueError``, so code written against ``edgecls.data.images.ImageError`` keeps working.
    """


class BackendMissing(EdgeclsError):
    """No TFLite interpreter package (or not the one asked for) can be imported."""


class DelegateError(EdgeclsError):
    """A delegate (external library, GPU) that cannot be loaded or applied to the model."""


class DependencyMissing(EdgeclsError):
    """An optional package a feature needs (Pillow for image files, OpenCV for --camera)."""


__all__ = ["BackendMissing", "DelegateError", "DependencyMissing", "EdgeclsError", "ImageError", "LabelsMissing",
           "RuntimeModelError", "UsageError"]
