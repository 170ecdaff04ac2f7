"""Image decoding for training data: the runtime's own code, so a device sees the pixels training saw.

(EXIF orientation, palette/RGBA/16-bit/CMYK conversion, resize policies; numpy and Pillow only.)
"""
from edgecls.runtime.image import RESIZE_POLICIES, ImageError, ImageSource, check_image, load_image, resize_image

__all__ = ["RESIZE_POLICIES", "ImageError", "ImageSource", "check_image", "load_image", "resize_image"]
