"""Small picture helpers of the app, all in memory: thumbnails and ``data:`` URIs. (Explanation overlays
come from :mod:`fetalscope.explain.overlay`, detection boxes from :func:`fetalscope.detect.draw_boxes`.)"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from fetalscope.explain.overlay import png_bytes


def data_uri(rgb: np.ndarray | bytes, mime: str = "image/png") -> str:
    """``data:`` URI of an image array (encoded as PNG) or of encoded bytes."""
    data = rgb if isinstance(rgb, bytes) else png_bytes(rgb)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def thumbnail(rgb: np.ndarray, side: int = 160) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
