"""Degraded copies of an image with a known answer, as a sonographer's mistakes would make them: zoomed out
(the anatomy smaller, black around it), shifted (part of the anatomy out of view), blurred (out of focus or
moving), darkened (gain too low) and over-gained (gain too high, bright tissue clipped).

Used by the acquisition-feedback study and its tests; each takes and returns ``H x W x 3`` uint8 RGB of the
same size.
"""

from __future__ import annotations

import cv2
import numpy as np


def zoom_out(rgb: np.ndarray, factor: float = 0.5) -> np.ndarray:
    """The image shrunk by ``factor`` (< 1) about its centre on a black canvas of the same size."""
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    out = np.zeros_like(rgb)
    y0, x0 = (h - size[1]) // 2, (w - size[0]) // 2
    out[y0:y0 + size[1], x0:x0 + size[0]] = small
    return out


def shift(rgb: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The image moved by (``dx``, ``dy``) pixels; what leaves the frame is lost, what enters is black."""
    h, w = rgb.shape[:2]
    out = np.zeros_like(rgb)
    xs, xd = (0, dx) if dx >= 0 else (-dx, 0)
    ys, yd = (0, dy) if dy >= 0 else (-dy, 0)
    cw, ch = w - abs(dx), h - abs(dy)
    if cw > 0 and ch > 0:
        out[yd:yd + ch, xd:xd + cw] = rgb[ys:ys + ch, xs:xs + cw]
    return out


def blur(rgb: np.ndarray, sigma_fraction: float = 0.006) -> np.ndarray:
    """Gaussian blur with a standard deviation of ``sigma_fraction`` of the image's longest side."""
    sigma = max(0.5, sigma_fraction * max(rgb.shape[:2]))
    return cv2.GaussianBlur(np.ascontiguousarray(rgb), (0, 0), sigma)


def darken(rgb: np.ndarray, factor: float = 0.35) -> np.ndarray:
    """Every grey level multiplied by ``factor`` (< 1): the gain turned down."""
    return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def over_gain(rgb: np.ndarray, factor: float = 2.5) -> np.ndarray:
    """Every grey level multiplied by ``factor`` (> 1) and clipped at 255: the gain turned up."""
    return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def shift_out_of_view(rgb: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """The image moved so that the point (``cx``, ``cy``) (e.g. the head's centre) lands on the nearest
    left/right edge of the frame: about half of a shape centred there leaves the view."""
    w = rgb.shape[1]
    dx = round(w - 1 - cx) if cx >= w / 2 else -round(cx)
    return shift(rgb, dx, 0)


DEGRADATIONS = {
    "zoomed_out": lambda rgb, ellipse: zoom_out(rgb),
    "shifted": lambda rgb, ellipse: shift_out_of_view(rgb, ellipse[0], ellipse[1]),
    "blurred": lambda rgb, ellipse: blur(rgb),
    "darkened": lambda rgb, ellipse: darken(rgb),
    "over_gained": lambda rgb, ellipse: over_gain(rgb),
}
#: the criterion each degradation should make fail
MATCHING_CRITERION = {"zoomed_out": "size", "shifted": "in_view", "blurred": "sharpness", "darkened": "gain",
                      "over_gained": "gain"}
