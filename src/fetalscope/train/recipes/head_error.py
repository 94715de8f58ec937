"""Where the head-circumference error of an HC18 bundle comes from, on its early-stopping split only
(the validation split stays untouched by these choices); ``scripts/head_error_study.py`` prints it.

For a bundle (:func:`head_error_study`): HC mean absolute difference and bias (all heads and HC >= 200 mm)
with the shipped post-processing, with test-time averaging over sub-pixel shifts and over scales, and with
each OpenCV ellipse fitter at outline levels 0.4 / 0.5 / 0.6. For two bundles
(:func:`error_correlation`): the correlation of their per-image HC errors (high: the errors belong to the
images, not to one model).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalscope.biometry.ellipse import outline_points, ramanujan_circumference
from fetalscope.biometry.measure import Measurer
from fetalscope.imaging import UltrasoundImage, load_image
from fetalscope.train.segmenter.measurement_report import validation_samples

SHIFTS = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]  # in model pixels
SCALES = [1.0, 0.93, 1.07]
FITTERS = {"least squares": cv2.fitEllipse, "AMS": cv2.fitEllipseAMS, "direct": cv2.fitEllipseDirect}
LEVELS = (0.4, 0.5, 0.6)
SHIPPED = "least squares @ 0.5"  # the shipped post-processing's variant name


def circumference(prob: np.ndarray, shape: tuple[int, int], level: float = 0.5,
                  fitter: str = "least squares") -> float:
    """Ellipse circumference (original pixels) fitted to the outline of ``prob`` at ``level``, outline
    points on the image frame dropped as the shipped fitter does."""
    pts, on_frame = outline_points(prob, level=level)
    if on_frame.any() and (~on_frame).sum() >= max(6, int(0.25 * len(pts))):
        pts = pts[~on_frame]
    h, w = prob.shape
    sx, sy = shape[1] / w, shape[0] / h
    pts = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1).astype(np.float32)
    (_, _), (width, height), _ = FITTERS[fitter](pts)
    return ramanujan_circumference(width / 2, height / 2)


def warped_probability(m: Measurer, image: UltrasoundImage, dx: float, dy: float, scale: float) -> np.ndarray:
    """The model's head probability on ``image`` shifted by (dx, dy) model pixels and scaled about its centre."""
    h0, w0 = m.bundle.preprocess.input_size
    H, W = image.height, image.width
    tx, ty = dx * W / w0, dy * H / h0
    matrix = np.array([[scale, 0, (1 - scale) * W / 2 + tx], [0, scale, (1 - scale) * H / 2 + ty]], np.float32)
    pixels = cv2.warpAffine(image.pixels, matrix, (W, H), flags=cv2.INTER_LINEAR)
    return m.probabilities(replace(image, pixels=pixels))["head"]


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per variant: mean absolute HC difference, bias and the MAD of heads with HC >= 200 mm (mm)."""
    ref = np.array([r["hc_ref_mm"] for r in rows])
    variants = [k for k in rows[0] if k not in ("image", "hc_ref_mm")]
    summary = {}
    for v in variants:
        d = np.array([r[v] for r in rows])
        big = ref >= 200
        summary[v] = {"mad_mm": float(np.abs(d).mean()), "bias_mm": float(d.mean()),
                      "mad_ge_200_mm": float(np.abs(d[big]).mean()) if big.any() else None}
    return summary


def head_error_study(bundle: Path, split: str = "early_stop") -> dict[str, Any]:
    """HC error (mm, signed, per image and summarised) of the head bundle ``bundle`` on the ``split`` of its
    ``splits.json`` under every post-processing variant."""
    m = Measurer("head", bundle=bundle, runtime="auto")
    rows = []
    for s in validation_samples(bundle, "head", split):
        image = load_image(s.path)
        shape, px, ref = (image.height, image.width), float(s.meta["pixel_size_mm"]), float(s.meta["hc_mm"])
        plain = m.probabilities(image)["head"]
        row = {"image": s.name, "hc_ref_mm": ref}
        for level in LEVELS:
            for fitter in FITTERS:
                row[f"{fitter} @ {level}"] = circumference(plain, shape, level, fitter) * px - ref
        row["shift average"] = np.mean([circumference(plain if (dx, dy) == (0, 0) else
                                                      warped_probability(m, image, dx, dy, 1.0), shape)
                                        for dx, dy in SHIFTS]) * px - ref
        row["scale average"] = np.mean([circumference(plain if k == 1.0 else warped_probability(m, image, 0, 0, k),
                                                      shape) / k for k in SCALES]) * px - ref
        rows.append(row)
    return {"bundle": str(bundle), "split": split, "n_images": len(rows), "summary": summarise(rows), "rows": rows}


def error_correlation(a: dict[str, Any], b: dict[str, Any], variant: str = SHIPPED) -> tuple[float, int]:
    """Pearson correlation of the per-image HC errors of two :func:`head_error_study` results (``variant``)
    over the images both scored, and how many those are."""
    ea = {r["image"]: r[variant] for r in a["rows"]}
    eb = {r["image"]: r[variant] for r in b["rows"]}
    common = sorted(set(ea) & set(eb))
    return float(np.corrcoef([ea[k] for k in common], [eb[k] for k in common])[0, 1]), len(common)
