"""Estimate the skull (head) region of an axial fetal head image as an ellipse, without a model.

Used by the plausibility checks ("structures lie inside the skull"). Method:

1. greyscale, longer side resized to 256 px, Gaussian blur (sigma 1.5);
2. candidate skull pixels: the brightest 10 %, thinned to one-pixel lines (skeleton);
3. RANSAC: ellipses through 6 random skeleton points (``cv2.fitEllipse``; every other trial draws
   the 6 points from one connected skeleton piece, since the skull is a few long arcs), kept only when their
   centre lies in the middle 80 % of the image, the minor semi-axis exceeds 12 % of the shorter
   side, the major semi-axis is below 70 % of the longer side and the axis ratio is above 0.5;
4. each candidate is scored by *ring contrast*: the fraction of 72 directions in which the ring is
   brighter (by ``delta`` grey levels) than both the inside (0.85 r) and the outside (1.15 r) — the
   skull is a bright shell with darker brain inside and fluid or soft tissue outside, whereas the
   edges of maternal tissue are bright on one side only;
5. the best candidate is refined by a least-squares fit to the skeleton points near it.

The ring score says how far to trust the result: below ``min_score`` (0.4) no region is returned.
Measured against the HC18 filled head masks (``scripts/train_detector.py`` writes the numbers into
the detection report).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.morphology import skeletonize

METHOD = (
    "Skull ellipse from the image alone: brightest 10% of a blurred 256-px greyscale copy, thinned to a skeleton; "
    "RANSAC ellipse fits through 6 skeleton points (half the trials within one connected arc), constrained in "
    "position, size and axis ratio, scored by ring contrast (the fraction of 72 directions in which the ring is "
    "brighter than both 0.85 r inside and 1.15 r outside); refined on nearby skeleton points; no region when the "
    "score is below 0.4."
)
WORK_SIDE = 256
BRIGHT_PERCENTILE = 90.0
RING_DELTA = 12.0
MIN_SCORE = 0.4
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)


@dataclass(frozen=True)
class SkullEllipse:
    """Head ellipse in original pixels: centre, full axis lengths (as ``cv2.ellipse``), angle in degrees
    (from +x towards +y, image y down), and the ring-contrast score in [0, 1]."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float
    score: float

    def cv2_box(self) -> tuple[tuple[float, float], tuple[float, float], float]:
        return ((self.cx, self.cy), (self.width, self.height), self.angle)

    def radius(self, x: float | np.ndarray, y: float | np.ndarray) -> np.ndarray:
        """Normalised elliptical radius of points (1.0 on the ellipse, < 1 inside)."""
        t = np.radians(self.angle)
        c, s = np.cos(t), np.sin(t)
        dx, dy = np.asarray(x, dtype=np.float64) - self.cx, np.asarray(y, dtype=np.float64) - self.cy
        u, v = dx * c + dy * s, -dx * s + dy * c
        return np.sqrt((u / (self.width / 2)) ** 2 + (v / (self.height / 2)) ** 2)

    def contains(self, x: float, y: float, margin: float = 1.1) -> bool:
        """Whether ``(x, y)`` lies inside the ellipse scaled by ``margin``."""
        return bool(self.radius(x, y) <= margin)

    def mask(self, height: int, width: int) -> np.ndarray:
        out = np.zeros((height, width), dtype=np.uint8)
        cv2.ellipse(out, self.cv2_box(), 255, -1)
        return out > 0

    def to_dict(self) -> dict[str, float]:
        return {
            k: round(float(getattr(self, k)), 2) for k in ("cx", "cy", "width", "height", "angle", "score")
        }


def _ring_score(g: np.ndarray, e: tuple, delta: float) -> float:
    (cx, cy), (w, h), ang = e
    a, b = w / 2.0, h / 2.0
    t = np.radians(ang)
    c, s = np.cos(t), np.sin(t)
    gh, gw = g.shape

    def sample(k: float) -> tuple[np.ndarray, np.ndarray]:
        u, v = k * a * np.cos(_ANGLES), k * b * np.sin(_ANGLES)
        x, y = cx + u * c - v * s, cy + u * s + v * c
        ok = (x >= 0) & (x < gw - 1) & (y >= 0) & (y < gh - 1)
        xi = np.clip(np.rint(x).astype(int), 0, gw - 1)
        yi = np.clip(np.rint(y).astype(int), 0, gh - 1)
        return g[yi, xi], ok

    ring = np.max([sample(k)[0] for k in (0.96, 1.0, 1.04)], axis=0)
    inside, _ = sample(0.85)
    outside, ok = sample(1.15)
    return float(((ring > inside + delta) & (ring > outside + delta) & ok).mean())


def _plausible(e: tuple, gh: int, gw: int) -> bool:
    (cx, cy), (w, h), _ = e
    if not np.isfinite([cx, cy, w, h]).all() or min(w, h) <= 0:
        return False
    major, minor = max(w, h) / 2, min(w, h) / 2
    return (
        0.1 * gw < cx < 0.9 * gw
        and 0.1 * gh < cy < 0.9 * gh
        and minor > 0.12 * min(gh, gw)
        and major < 0.7 * max(gh, gw)
        and minor / major > 0.5
    )


def estimate_skull(
    grey_or_rgb: np.ndarray,
    *,
    trials: int = 500,
    delta: float = RING_DELTA,
    min_score: float = MIN_SCORE,
    seed: int = 0,
) -> SkullEllipse | None:
    """The head ellipse of an image (``H x W`` or ``H x W x 3`` uint8), or ``None`` when not found
    with a ring score of at least ``min_score``. Deterministic for a given ``seed``."""
    grey = cv2.cvtColor(grey_or_rgb, cv2.COLOR_RGB2GRAY) if grey_or_rgb.ndim == 3 else grey_or_rgb
    h, w = grey.shape
    scale = WORK_SIDE / max(h, w)
    g = cv2.resize(grey, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 1.5)
    skeleton = skeletonize(g > np.percentile(g, BRIGHT_PERCENTILE))
    ys, xs = np.nonzero(skeleton)
    pts = np.column_stack([xs, ys]).astype(np.float32)
    if len(pts) < 20:
        return None
    gh, gw = g.shape
    # connected pieces of the skeleton: the skull is often one or a few long arcs
    _, comp = cv2.connectedComponents(skeleton.astype(np.uint8), connectivity=8)
    labels = comp[ys, xs]
    pieces = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    pieces = [p for p in pieces if len(p) >= 12]
    weights = np.array([len(p) for p in pieces], dtype=np.float64)
    rng = np.random.default_rng(seed)
    best_score, best = -1.0, None
    for trial in range(trials):
        if pieces and trial % 2 == 0:  # half the samples from one piece, chosen by length
            piece = pieces[rng.choice(len(pieces), p=weights / weights.sum())]
            sample = pts[rng.choice(piece, 6, replace=False)]
        else:
            sample = pts[rng.choice(len(pts), 6, replace=False)]
        try:
            e = cv2.fitEllipse(sample)
        except cv2.error:
            continue
        if not _plausible(e, gh, gw):
            continue
        score = _ring_score(g, e, delta)
        if score > best_score:
            best_score, best = score, e
    if best is None or best_score < min_score:
        return None
    # refine on the skeleton points within 6 % of the best ellipse's radius
    probe = SkullEllipse(best[0][0], best[0][1], best[1][0], best[1][1], best[2], best_score)
    near = pts[np.abs(probe.radius(pts[:, 0], pts[:, 1]) - 1.0) < 0.06]
    if len(near) >= 12:
        refined = cv2.fitEllipse(near)
        if _plausible(refined, gh, gw) and _ring_score(g, refined, delta) >= best_score - 0.02:
            best = refined
    (cx, cy), (ew, eh), ang = best
    return SkullEllipse(cx / scale, cy / scale, ew / scale, eh / scale, float(ang), best_score)


def ellipse_iou(ellipse: SkullEllipse | None, mask: np.ndarray) -> float:
    """IoU of an estimated ellipse with a filled reference mask (0 when nothing was found)."""
    if ellipse is None:
        return 0.0
    ref = mask > 0
    est = ellipse.mask(*ref.shape)
    union = np.logical_or(est, ref).sum()
    return float(np.logical_and(est, ref).sum() / union) if union else 0.0
