"""Where data enters: one loader for every image format, input limits, and the sector crop."""

from fetalscope.imaging.loader import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    UltrasoundImage,
    is_image_path,
    iter_image_paths,
    load_image,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "UltrasoundImage",
    "is_image_path",
    "iter_image_paths",
    "load_image",
]
