"""Find the ultrasound sector on a screenshot and crop to it.

Screens from different scanners carry text, calipers, colour bars, logos and borders around the
B-mode fan. Before any model sees an image we keep only the largest bright, textured, grey region
(the fan or rectangle of the scan), so that models learn anatomy, not screen layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SectorBox:
    """Crop rectangle in pixel coordinates, ``[y0, y1) x [x0, x1)``, and the area fraction found."""

    y0: int
    y1: int
    x0: int
    x1: int
    fraction: float

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def _colour_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are clearly coloured (overlays, colour bars, Doppler), not grey B-mode."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return (hsv[..., 1] > 60) & (hsv[..., 2] > 60)


WORK_SIDE = 256  # the mask is found on a copy reduced to this longest side
DARK_LEVEL = 12  # grey levels at or below this are display background


def _tissue_mask(rgb: np.ndarray, median: int) -> np.ndarray:
    """uint8 0/1 mask of grey, non-black pixels after a median filter (fills speckle, drops thin strokes)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = np.where(_colour_mask(rgb), 0, grey).astype(np.uint8)
    if median > 1:
        grey = cv2.medianBlur(grey, median)
    return (grey > DARK_LEVEL).astype(np.uint8)


def find_sector(rgb: np.ndarray, *, min_fraction: float = 0.15) -> SectorBox:
    """Bounding box of the scan region of an ``H x W x 3`` uint8 image.

    The largest grey, non-black region is found on a reduced copy (median filter, then a morphological
    opening that removes text, calipers, thin lines and grey scale bars, and a closing that fills dark
    anatomy); its box is then refined on the full-resolution pixels. Falls back to the whole image when
    no region of at least ``min_fraction`` of the area is found (e.g. an image that is already cropped,
    or one that is not a screenshot at all).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("find_sector expects an H x W x 3 uint8 array")
    h, w = rgb.shape[:2]
    whole = SectorBox(0, h, 0, w, 1.0)
    scale = min(1.0, WORK_SIDE / max(h, w))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    mask = _tissue_mask(small, 5)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return whole
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas)) + 1
    fraction = float(areas[best - 1]) / float(mask.size)
    if fraction < min_fraction:
        return whole
    # refine at full resolution: non-black pixels inside the (slightly grown) component
    region = cv2.dilate((labels == best).astype(np.uint8), np.ones((3, 3), np.uint8))
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    inv = 1.0 / scale
    y0, x0 = max(0, int(np.floor((y - 2) * inv))), max(0, int(np.floor((x - 2) * inv)))
    y1, x1 = min(h, int(np.ceil((y + bh + 2) * inv))), min(w, int(np.ceil((x + bw + 2) * inv)))
    roi = rgb[y0:y1, x0:x1]
    grown = (
        cv2.resize(region, (w, h), interpolation=cv2.INTER_NEAREST)[y0:y1, x0:x1]
        if scale < 1.0
        else region[y0:y1, x0:x1]
    )
    fine = _tissue_mask(np.ascontiguousarray(roi), 3) & grown
    ys, xs = np.nonzero(fine)
    if ys.size:
        y0, y1, x0, x1 = (
            y0 + int(ys.min()),
            y0 + int(ys.max()) + 1,
            x0 + int(xs.min()),
            x0 + int(xs.max()) + 1,
        )
    if (y1 - y0) < 16 or (x1 - x0) < 16:
        return whole
    return SectorBox(y0, y1, x0, x1, fraction)


def crop_to_sector(rgb: np.ndarray, *, min_fraction: float = 0.15) -> np.ndarray:
    """Crop an ``H x W x 3`` uint8 image to its scan region (see :func:`find_sector`)."""
    box = find_sector(rgb, min_fraction=min_fraction)
    return rgb[box.y0 : box.y1, box.x0 : box.x1]
