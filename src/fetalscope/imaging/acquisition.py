"""Image measures of how an ultrasound image was acquired: where the scan sector is, how bright it is (gain),
how sharp it is (focus, motion), and how much of the sector or image a shape covers.

Pure pixel maths on ``H x W`` grey or ``H x W x 3`` RGB uint8 arrays; the acquisition checklist
(:mod:`fetalscope.pipeline.quality`) turns these numbers into criteria with thresholds.

- :func:`sector_mask`: the scan sector as a filled region (the convex hull of the largest non-black, grey,
  textured region after a median filter), so dark anatomy (fluid) inside the fan counts as sector and the
  black display background and text do not.
- :func:`gain_level`: mean grey level inside the sector (0-255): low when the gain is too low, high when it is
  too high.
- :func:`sharpness`: variance of the Laplacian over the variance of the grey levels inside the sector, on a
  copy reduced to :data:`WORK_SIDE` px: the share of the image's contrast in its finest detail (speckle and
  edges). Blur and motion remove fine detail first; dividing by the grey-level variance keeps the gain out of
  it (Pech-Pacheco et al. 2000 for the variance of the Laplacian as a focus measure).
- :func:`points_inside`: the share of outline points that lie inside a mask (a shape cut by the sector's
  edge or the image frame has points outside).
- :func:`frame_cut_share`: the share of a mask's outline that runs along the image frame's sides or bottom (a
  structure cut by the frame is segmented only up to it).
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512  # sharpness and the sector are measured on a copy reduced (never enlarged) to this side
DARK_LEVEL = 12  # grey levels at or below this are display background (as imaging.sector)


def to_grey(image: np.ndarray) -> np.ndarray:
    """``H x W`` uint8 grey levels of a grey or RGB uint8 array."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
    return arr.astype(np.uint8, copy=False)


def _reduced(grey: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = grey.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale >= 1.0:
        return grey, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale


def sector_mask(image: np.ndarray) -> np.ndarray:
    """``H x W`` boolean mask of the scan sector: the convex hull of the largest non-background region
    (median-filtered grey above :data:`DARK_LEVEL`, opened to drop text and thin lines). All True when no
    region of at least 5 % of the image is found."""
    grey = to_grey(image)
    h, w = grey.shape
    small, scale = _reduced(grey)
    tissue = (cv2.medianBlur(small, 5) > DARK_LEVEL).astype(np.uint8)
    tissue = cv2.morphologyEx(tissue, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(tissue, connectivity=8)
    if count <= 1:
        return np.ones((h, w), dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < 0.05 * tissue.size:
        return np.ones((h, w), dtype=bool)
    ys, xs = np.nonzero(labels == best)
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.float32) / scale)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    return mask.astype(bool)


def gain_level(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean grey level (0-255) inside ``mask`` (default: the sector)."""
    grey = to_grey(image)
    mask = sector_mask(grey) if mask is None else np.asarray(mask, dtype=bool)
    return float(grey[mask].mean()) if mask.any() else float(grey.mean())


def sharpness(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian over the variance of the grey levels, inside ``mask`` (default: the sector),
    on a copy reduced to :data:`WORK_SIDE` px; 0 for a flat image."""
    grey = to_grey(image)
    mask = sector_mask(grey) if mask is None else np.asarray(mask, dtype=bool)
    small, scale = _reduced(grey)
    if scale < 1.0:
        mask = cv2.resize(mask.astype(np.uint8), small.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    # keep away from the sector's edge, where the black background makes a step of its own
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    if inner.sum() < 64:
        inner = np.ones_like(mask)
    values = small.astype(np.float32)
    lap = cv2.Laplacian(values, cv2.CV_32F, ksize=1)
    spread = float(values[inner].var())
    return float(lap[inner].var() / spread) if spread > 1e-6 else 0.0


def points_inside(points: np.ndarray, mask: np.ndarray) -> float:
    """Share of ``N x 2`` (x, y) points that fall on a True pixel of ``mask`` (points off the image count as
    outside); 0 for no points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return 0.0
    h, w = mask.shape[:2]
    x, y = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    on_image = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    inside = np.zeros(len(pts), dtype=bool)
    inside[on_image] = np.asarray(mask, dtype=bool)[y[on_image], x[on_image]]
    return float(inside.mean())


def area_share(region_area: float, mask_or_shape: np.ndarray | tuple[int, int]) -> float:
    """``region_area`` (pixels) as a share of a mask's True pixels, or of an image of shape (H, W)."""
    if isinstance(mask_or_shape, tuple):
        total = float(mask_or_shape[0] * mask_or_shape[1])
    else:
        total = float(np.count_nonzero(mask_or_shape))
    return float(region_area / total) if total > 0 else 0.0


def frame_cut_share(mask: np.ndarray, band: float) -> float:
    """Share of the outer outline pixels of ``mask`` within ``band`` (share of the image's longest side) of the
    image frame's left, right or bottom edge: the part of a segmented structure's outline that is the frame's
    edge, not the structure's (segmenters stop a few pixels short of it). The top edge is left out: it is the
    transducer's side (depth 0), where anatomy in the near field touches the frame without being cut. 0 for an
    empty mask."""
    m = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    if not m.any():
        return 0.0
    h, w = m.shape[:2]
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    x, y = np.concatenate([c.reshape(-1, 2) for c in contours]).T
    px = band * max(h, w)
    return float(((x <= px) | (x >= w - 1 - px) | (y >= h - 1 - px)).mean())
