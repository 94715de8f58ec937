"""The one ellipse type and the one ellipse fitter used by every measurement (head, heart, thorax).

Conventions (shared with FOCUS ``labels.csv``): image coordinates in pixels with x to the right and
y pointing down, pixel centres at integer coordinates; ``a`` is the semi-axis along the direction
``angle_deg`` (degrees from +x towards +y), ``b`` the perpendicular semi-axis. :meth:`Ellipse.normalised`
makes ``a`` the major semi-axis and puts the angle in [0, 180).

:func:`fit_ellipse` takes a mask (boolean, or a probability map), keeps its largest connected
component, traces its outline with sub-pixel marching squares at ``level`` (so a rasterised ellipse
is recovered without the half-pixel bias of pixel-centre contours), drops outline points that lie on
the image frame (a head cut by the edge of the image is fitted from its visible arc only) and fits an
ellipse by least squares (OpenCV ``fitEllipse``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from skimage import measure as skmeasure

from fetalscope.errors import BadInputError

MIN_FIT_POINTS = 6


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in pixel coordinates: centre (``cx``, ``cy``), semi-axes ``a`` (along ``angle_deg``)
    and ``b``, ``angle_deg`` from +x towards +y (image y points down)."""

    cx: float
    cy: float
    a: float
    b: float
    angle_deg: float

    # ---- measures -------------------------------------------------------------------------------
    @property
    def major(self) -> float:
        """Major semi-axis."""
        return max(self.a, self.b)

    @property
    def minor(self) -> float:
        """Minor semi-axis."""
        return min(self.a, self.b)

    def circumference(self) -> float:
        """Perimeter by Ramanujan's second approximation (relative error < 1e-9 for head shapes)."""
        return ramanujan_circumference(self.a, self.b)

    def area(self) -> float:
        return math.pi * self.a * self.b

    def axis_ratio(self) -> float:
        """Minor over major semi-axis, in (0, 1]."""
        return self.minor / self.major if self.major > 0 else 0.0

    # ---- conversions ----------------------------------------------------------------------------
    def normalised(self) -> Ellipse:
        """Same ellipse with ``a >= b`` and ``angle_deg`` in [0, 180)."""
        a, b, angle = self.a, self.b, self.angle_deg
        if b > a:
            a, b, angle = b, a, angle + 90.0
        return Ellipse(self.cx, self.cy, a, b, angle % 180.0)

    def to_dict(self, ndigits: int | None = 2) -> dict[str, float]:
        d = asdict(self)
        return {k: (round(float(v), ndigits) if ndigits is not None else float(v)) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ellipse:
        try:
            return cls(*(float(d[k]) for k in ("cx", "cy", "a", "b", "angle_deg")))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"ellipse needs numeric cx, cy, a, b, angle_deg; got {d!r}") from exc

    def scaled(self, factor: float) -> Ellipse:
        """Uniformly scaled about the image origin (e.g. to another resolution of the same image)."""
        return Ellipse(self.cx * factor, self.cy * factor, self.a * factor, self.b * factor, self.angle_deg)

    # ---- geometry -------------------------------------------------------------------------------
    def points(self, n: int = 360) -> np.ndarray:
        """``n x 2`` (x, y) points on the outline, evenly spaced in the parametric angle."""
        t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        th = math.radians(self.angle_deg)
        c, s = math.cos(th), math.sin(th)
        x = self.cx + self.a * np.cos(t) * c - self.b * np.sin(t) * s
        y = self.cy + self.a * np.cos(t) * s + self.b * np.sin(t) * c
        return np.stack([x, y], axis=1)

    def contains(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Whether points (x, y) lie inside or on the ellipse."""
        th = math.radians(self.angle_deg)
        c, s = math.cos(th), math.sin(th)
        dx, dy = np.asarray(x, dtype=np.float64) - self.cx, np.asarray(y, dtype=np.float64) - self.cy
        u = dx * c + dy * s
        v = -dx * s + dy * c
        return (u / max(self.a, 1e-9)) ** 2 + (v / max(self.b, 1e-9)) ** 2 <= 1.0

    def rasterise(self, shape: tuple[int, ...]) -> np.ndarray:
        """Filled ``H x W`` boolean mask: pixels whose centre lies inside the ellipse."""
        h, w = int(shape[0]), int(shape[1])
        mask = np.zeros((h, w), dtype=bool)
        r = self.major + 1.0
        x0, x1 = max(0, int(math.floor(self.cx - r))), min(w, int(math.ceil(self.cx + r)) + 1)
        y0, y1 = max(0, int(math.floor(self.cy - r))), min(h, int(math.ceil(self.cy + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return mask
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] = self.contains(xx, yy)
        return mask

    def fraction_inside(self, other: Ellipse, n: int = 720) -> float:
        """Fraction of this ellipse's outline points that lie inside ``other``."""
        pts = self.points(n)
        return float(np.mean(other.contains(pts[:, 0], pts[:, 1])))

    def axis_endpoints(self) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
        """End points of the major and minor axes: {"major": (p, q), "minor": (p, q)}."""
        e = self.normalised()
        th = math.radians(e.angle_deg)
        c, s = math.cos(th), math.sin(th)
        major = ((e.cx - e.a * c, e.cy - e.a * s), (e.cx + e.a * c, e.cy + e.a * s))
        minor = ((e.cx + e.b * s, e.cy - e.b * c), (e.cx - e.b * s, e.cy + e.b * c))
        return {"major": major, "minor": minor}


def ramanujan_circumference(a: float, b: float) -> float:
    """Ellipse perimeter from semi-axes ``a`` and ``b`` (Ramanujan 1914, second approximation)."""
    a, b = float(a), float(b)
    if a < 0 or b < 0:
        raise BadInputError(f"semi-axes must be non-negative, got a={a}, b={b}")
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (all False when the mask is empty)."""
    m = np.asarray(mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros(m.shape, dtype=bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes of a boolean mask (regions not connected to the image frame)."""
    from scipy import ndimage

    return ndimage.binary_fill_holes(np.asarray(mask, dtype=bool))


def outline_points(mask: np.ndarray, level: float = 0.5, keep_largest: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel outline of the (largest) region of ``mask >= level``.

    Returns ``(points, on_frame)``: ``N x 2`` (x, y) points of the region's longest outline and a
    boolean array marking points that lie on the image frame (where the region is cut by the edge).
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise BadInputError(f"mask must be 2-D (H x W), got shape {arr.shape}")
    values = arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer) and values.max(initial=0) > 1:
        values = values / 255.0  # a 0/255 mask image
    region = values >= level
    if keep_largest:
        region = largest_component(region)
        if not region.any():
            return np.zeros((0, 2)), np.zeros(0, dtype=bool)
        # keep the field only near the chosen component so other blobs yield no outline
        near = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
        values = np.where(near, values, 0.0)
        values = np.where(region, np.maximum(values, level + 1e-3), np.minimum(values, level - 1e-3))
    h, w = values.shape
    padded = np.pad(values, 1, mode="constant", constant_values=0.0)
    contours = skmeasure.find_contours(padded, level)
    if not contours:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    longest = max(contours, key=len)
    pts = np.stack([longest[:, 1] - 1.0, longest[:, 0] - 1.0], axis=1)  # (row, col) -> (x, y)
    eps = 1e-6
    on_frame = (pts[:, 0] < -eps) | (pts[:, 0] > w - 1 + eps) | (pts[:, 1] < -eps) | (pts[:, 1] > h - 1 + eps)
    return pts, on_frame


def fit_ellipse_points(points: np.ndarray) -> Ellipse | None:
    """Least-squares ellipse through ``N x 2`` (x, y) points (OpenCV ``fitEllipse``); None if < 6."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if len(pts) < MIN_FIT_POINTS or not np.all(np.isfinite(pts)):
        return None
    (cx, cy), (w, h), angle = cv2.fitEllipse(pts)
    if not (np.isfinite(w) and np.isfinite(h)) or w <= 0 or h <= 0:
        return None
    # OpenCV's RotatedRect: ``w`` lies along ``angle`` (degrees, +x towards +y in image coordinates)
    return Ellipse(float(cx), float(cy), float(w) / 2.0, float(h) / 2.0, float(angle)).normalised()


def sharp_outline(field: np.ndarray, points: np.ndarray, min_sharpness: float) -> np.ndarray:
    """Which outline ``points`` (x, y) lie where ``field`` changes steeply: its gradient magnitude (Sobel, sampled
    bilinearly) is at least ``min_sharpness`` times the median over all the points. Where an edge is fuzzy (a
    skull wall in acoustic shadow) the outline's position is a guess; the sharp part fixes the ellipse."""
    from scipy import ndimage

    values = np.asarray(field, dtype=np.float64)
    grad = np.hypot(ndimage.sobel(values, 0), ndimage.sobel(values, 1))
    at = ndimage.map_coordinates(grad, [points[:, 1], points[:, 0]], order=1, mode="nearest")
    return at >= min_sharpness * np.median(at)


def fit_points(mask: np.ndarray, *, level: float = 0.5, exclude_frame: bool = True,
               scale_xy: tuple[float, float] | None = None, out_shape: tuple[int, int] | None = None,
               min_sharpness: float = 0.0, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray | None:
    """The ``N x 2`` (x, y) outline points that :func:`fit_ellipse` fits, in the target grid; None when the
    outline has fewer than ``MIN_FIT_POINTS``. The same arguments as :func:`fit_ellipse`, and ``offset``: added
    after scaling (where a crop lies in the image)."""
    pts, on_frame = outline_points(mask, level=level)
    if len(pts) < MIN_FIT_POINTS:
        return None
    if exclude_frame and on_frame.any():
        inner = pts[~on_frame]
        if len(inner) >= max(MIN_FIT_POINTS, int(0.25 * len(pts))):
            pts = inner
    if min_sharpness > 0:
        arr = np.asarray(mask, dtype=np.float64)
        sharp = sharp_outline(arr / 255.0 if arr.max(initial=0) > 1 else arr, pts, min_sharpness)
        if sharp.sum() >= max(MIN_FIT_POINTS, 0.5 * len(pts)):
            pts = pts[sharp]
    if out_shape is not None:
        h, w = np.asarray(mask).shape[:2]
        scale_xy = (out_shape[1] / w, out_shape[0] / h)
    if scale_xy is not None:
        sx, sy = scale_xy
        pts = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1)
    if offset != (0.0, 0.0):
        pts = pts + np.asarray(offset, dtype=np.float64)
    return pts


def fit_ellipse(mask: np.ndarray, *, level: float = 0.5, exclude_frame: bool = True,
                scale_xy: tuple[float, float] | None = None,
                out_shape: tuple[int, int] | None = None, min_sharpness: float = 0.0) -> Ellipse | None:
    """Fit an ellipse to the largest region of a mask or probability map; None when there is none.

    - ``mask``: ``H x W`` boolean/0-255 mask or float probability map (region = values >= ``level``).
    - ``exclude_frame``: ignore outline points on the image frame when enough others remain (a
      structure cut by the edge of the image is fitted from its visible arc).
    - ``scale_xy``/``out_shape``: map the outline from this grid to another image grid before fitting
      (a model's low-resolution output to the original image; pixel centres are aligned as
      ``cv2.resize`` aligns them). ``scale_xy`` is (sx, sy) = (W_out / W, H_out / H); with
      ``out_shape`` given it is computed.
    - ``min_sharpness``: when > 0, fit only the outline points where the probability map is steep
      (:func:`sharp_outline`), provided at least half the points remain.

    The points are :func:`fit_points`'s (tuning scripts take them to try other fitters).
    """
    pts = fit_points(mask, level=level, exclude_frame=exclude_frame, scale_xy=scale_xy, out_shape=out_shape,
                     min_sharpness=min_sharpness)
    return None if pts is None else fit_ellipse_points(pts)


def mean_ellipse(ellipses: list[Ellipse]) -> Ellipse | None:
    """The average of several fits of one structure: centre and semi-axes averaged (``a >= b`` first), the
    angle as the circular mean of twice the angle (an ellipse is the same after 180 degrees); None if empty."""
    es = [e.normalised() for e in ellipses if e is not None]
    if not es:
        return None
    doubled = np.deg2rad([2.0 * e.angle_deg for e in es])
    angle = float(np.rad2deg(math.atan2(np.sin(doubled).mean(), np.cos(doubled).mean())) / 2.0)
    return Ellipse(float(np.mean([e.cx for e in es])), float(np.mean([e.cy for e in es])),
                   float(np.mean([e.a for e in es])), float(np.mean([e.b for e in es])), angle % 180.0).normalised()


# ---- comparing ellipses -------------------------------------------------------------------------
def mask_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    denom = int(p.sum()) + int(r.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & r).sum()) / denom


def mask_iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    union = int((p | r).sum())
    return 1.0 if union == 0 else int((p & r).sum()) / union


def ellipse_overlap(pred: Ellipse, ref: Ellipse, shape: tuple[int, int]) -> dict[str, float]:
    """IoU and Dice of two ellipses rasterised on an image grid of ``shape`` (H, W)."""
    p, r = pred.rasterise(shape), ref.rasterise(shape)
    return {"iou": mask_iou(p, r), "dice": mask_dice(p, r)}


def hausdorff_distance(pred: Ellipse, ref: Ellipse, n: int = 2000) -> float:
    """Symmetric Hausdorff distance (pixels) between the two outlines, sampled at ``n`` points each."""
    from scipy.spatial.distance import directed_hausdorff

    p, r = pred.points(n), ref.points(n)
    return float(max(directed_hausdorff(p, r)[0], directed_hausdorff(r, p)[0]))


# ---- drawing ------------------------------------------------------------------------------------
def draw_ellipse(rgb: np.ndarray, ellipse: Ellipse, colour: tuple[int, int, int] = (255, 255, 0),
                 thickness: int | None = None, axes: bool = False, label: str | None = None) -> np.ndarray:
    """A copy of ``rgb`` (``H x W x 3`` uint8) with the ellipse outline (and optionally its axes) drawn."""
    out = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).copy())
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    t = thickness or max(1, round(max(out.shape[:2]) / 400))
    pts = np.round(ellipse.points(720) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(out, [pts], isClosed=True, color=colour, thickness=t, lineType=cv2.LINE_AA, shift=4)
    if axes:
        for key in ("major", "minor"):
            (x0, y0), (x1, y1) = ellipse.axis_endpoints()[key]
            cv2.line(out, (round(x0 * 16), round(y0 * 16)), (round(x1 * 16), round(y1 * 16)), colour,
                     max(1, t - 1), cv2.LINE_AA, shift=4)
    if label:
        _put_label(out, label, ellipse, colour, t)
    return out


def _put_label(out: np.ndarray, label: str, ellipse: Ellipse, colour: tuple[int, int, int], t: int) -> None:
    """Write ``label`` on a dark band just above the ellipse, or below it when there is no room above, or
    inside its top when it fills the image; always wholly inside the image."""
    h, w = out.shape[:2]
    scale = 0.4 * t + 0.1
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
    pts = ellipse.points(180)
    top, bottom = float(pts[:, 1].min()), float(pts[:, 1].max())
    pad = 3
    if top - pad - base >= th + pad:  # above the ellipse
        y = int(top - pad - base)
    elif bottom + pad + th + base < h:  # below it
        y = int(bottom + pad + th)
    else:  # inside, near its top
        y = int(np.clip(top + pad + th, th + pad, h - base - 1))
    x = int(np.clip(ellipse.cx - tw / 2, 0, max(0, w - tw - 1)))
    cv2.rectangle(out, (max(0, x - 2), max(0, y - th - 2)), (min(w - 1, x + tw + 2), min(h - 1, y + base)),
                  (0, 0, 0), -1)
    cv2.putText(out, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, t, cv2.LINE_AA)
