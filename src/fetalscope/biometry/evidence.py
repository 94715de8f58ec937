"""How well a segmentation model's own output looks like the structure it measures: the evidence the
measurement routing (:mod:`fetalscope.pipeline.measure`) weighs beside the plane model.

A head model run on a head gives a confident region (probabilities near 0 or 1, a thin unsure rim) whose
outline an ellipse follows closely. Run on anything else it still gives a region, but a vaguer one: the
share of unsure pixels (probability between 0.1 and 0.9) around it grows, and the region strays from its
ellipse. The same holds for the heart of the cardiothoracic model, which is the part of a four-chamber
view that nothing else looks like: on HC18 heads its unsure rim is 2-300 times the heart region, on
FOCUS thorax images 0.2-0.6 times.

- :func:`head_fit`: ``found``, ``area_fraction`` (head region / image), ``ellipse_iou`` (region vs its fitted
  ellipse), ``mean_probability`` (inside the region), ``uncertain_share`` (unsure pixels / region),
  ``axis_ratio``, ``good`` with the ``reasons`` it is not, and ``plausible`` (looser limits that every head
  of HC18 and of FETAL_PLANES_DB's trans-ventricular set meets; enough only beside a plane call that leans to
  a head). A four-chamber thorax is round as well: the head model fits 143 of FOCUS's 247 thorax images
  "good", so head evidence never outweighs a thorax call the heart/thorax model supports.
- :func:`ctr_fit`: the heart's ``uncertain_share`` and ``mean_probability`` inside the thorax, the quality
  gate's reasons apart from the plane (:func:`~fetalscope.biometry.cardiothoracic.quality_gate`), and two
  verdicts: ``plausible`` (enough to confirm a thorax plane call) and ``clear`` (enough on its own).

The limits were set on the HC18 early-stopping and training splits and the FOCUS early-stopping and
training splits (the validation splits were only measured with them); see ``scripts/measure_routing.py``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fetalscope.biometry.cardiothoracic import quality_gate
from fetalscope.biometry.ellipse import Ellipse, fill_holes, largest_component

UNSURE = (0.1, 0.9)  # a pixel is unsure when its probability lies strictly between these
HEAD_LIMITS = {"ellipse_iou": 0.93, "mean_probability": 0.95, "uncertain_share": 0.25, "axis_ratio": 0.5}
# looser limits: the least head-like of 873 HC18 heads had ellipse_iou 0.938, mean_probability 0.926 and
# uncertain_share 0.52, of 57 FETAL_PLANES_DB trans-ventricular heads 0.936, 0.945 and 0.57
HEAD_PLAUSIBLE_LIMITS = {"ellipse_iou": 0.9, "mean_probability": 0.9, "uncertain_share": 0.6, "axis_ratio": 0.5}
HEART_UNSURE_PLAUSIBLE = 0.65  # heart unsure rim / heart region: confirms a thorax plane call
HEART_UNSURE_CLEAR = 0.4  # ... and routes to the CTR without one
EVIDENCE_GRID = 512  # the region-vs-ellipse overlap is compared on an image at most this many pixels wide


def _unsure(p: np.ndarray) -> np.ndarray:
    return (p > UNSURE[0]) & (p < UNSURE[1])


def region_ellipse_iou(prob: np.ndarray, ellipse: Ellipse, shape: tuple[int, int]) -> float:
    """IoU of the region ``prob >= 0.5`` (largest component, holes filled; model grid, resized to the image)
    and ``ellipse`` (image pixels), compared on the image scaled down to at most :data:`EVIDENCE_GRID`."""
    f = min(1.0, EVIDENCE_GRID / max(shape))
    h, w = max(1, round(shape[0] * f)), max(1, round(shape[1] * f))
    region = fill_holes(largest_component(cv2.resize(prob.astype(np.float32), (w, h)) >= 0.5))
    fitted = ellipse.scaled(f).rasterise((h, w))
    union = (region | fitted).sum()
    return float((region & fitted).sum() / union) if union else 0.0


def head_fit(prob: np.ndarray, ellipse: Ellipse | None, shape: tuple[int, int]) -> dict[str, Any]:
    """The head model's evidence on one image: its probability map ``prob`` (model grid), the ellipse fitted
    to it (image pixels, or None) and the image's ``(H, W)``."""
    region = fill_holes(largest_component(prob >= 0.5))
    if ellipse is None or not region.any():
        return {"found": False, "good": False, "plausible": False, "reasons": ["no head region was segmented"]}
    n = float(region.sum())
    fit = {"found": True, "area_fraction": round(n / region.size, 4),
           "ellipse_iou": round(region_ellipse_iou(prob, ellipse, shape), 4),
           "mean_probability": round(float(prob[region].mean()), 4),
           "uncertain_share": round(float(_unsure(prob).sum()) / n, 4),
           "axis_ratio": round(ellipse.axis_ratio(), 4)}
    reasons = _outside(fit, HEAD_LIMITS)
    return {**fit, "good": not reasons, "plausible": not _outside(fit, HEAD_PLAUSIBLE_LIMITS), "reasons": reasons}


def _outside(fit: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """The reasons ``fit`` misses ``limits`` (``uncertain_share`` is a ceiling, the rest floors)."""
    return [f"{k} {fit[k]:.2f} " + (f"> {lim}" if k == "uncertain_share" else f"< {lim}")
            for k, lim in limits.items() if (fit[k] > lim if k == "uncertain_share" else fit[k] < lim)]


def ctr_fit(heart_prob: np.ndarray, thorax_prob: np.ndarray, heart: Ellipse | None, thorax: Ellipse | None,
            shape: tuple[int, int]) -> dict[str, Any]:
    """The cardiothoracic model's evidence on one image: heart and thorax probability maps (model grid),
    their ellipses (image pixels, or None) and the image's ``(H, W)``."""
    gate = quality_gate(heart, thorax, shape)  # no plane given: the segmentation's own reasons only
    thorax_region = fill_holes(largest_component(thorax_prob >= 0.5))
    heart_region = largest_component((heart_prob >= 0.5) & thorax_region)
    if not heart_region.any():
        return {"found": False, "plausible": False, "clear": False, "gate": gate,
                "reasons": gate or ["no heart region was segmented inside the thorax"]}
    share = float((_unsure(heart_prob) & thorax_region).sum()) / float(heart_region.sum())
    fit = {"found": True, "heart_uncertain_share": round(share, 4),
           "heart_mean_probability": round(float(heart_prob[heart_region].mean()), 4),
           "thorax_area_fraction": round(float(thorax_region.mean()), 4), "gate": gate}
    reasons = list(gate)
    if share > HEART_UNSURE_PLAUSIBLE:
        reasons.append(f"heart_uncertain_share {share:.2f} > {HEART_UNSURE_PLAUSIBLE}")
    plausible = not reasons
    if plausible and share > HEART_UNSURE_CLEAR:
        reasons.append(f"heart_uncertain_share {share:.2f} > {HEART_UNSURE_CLEAR} (enough only beside a thorax "
                       "plane call)")
    return {**fit, "plausible": plausible, "clear": plausible and share <= HEART_UNSURE_CLEAR, "reasons": reasons}
