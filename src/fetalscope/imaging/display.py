"""Images for people: a size-capped copy of an image for screens, reports and overlays."""

from __future__ import annotations

import cv2
import numpy as np

DISPLAY_SIDE = 1024  # longest side of an image shown in the app or a report
OVERLAY_SIDE = 512  # longest side of an explanation overlay


def thumbnail(rgb: np.ndarray, side: int = 160) -> np.ndarray:
    """``rgb`` shrunk (area interpolation, aspect kept) so its longest side is at most ``side``; never enlarged."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
