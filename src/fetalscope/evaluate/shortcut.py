"""Shortcut (confound) measurements: can the classes be told apart without the anatomy?

When each class comes from a different image source (scanner, site, web pages), a classifier can
learn the source instead of the pathology. These checks measure how much of the separation is
available from things that are not anatomy:

- :func:`nuisance_features`: per-image statistics of the image *border* (a frame around the image),
  of the *noise* (median-filter residual, JPEG 8x8 blockiness, sharpness, colour tint), of the
  region *outside the annotated head box* when boxes exist, and of the image *size*;
- :func:`shortcut_auc`: out-of-fold ROC AUC of a logistic regression on one feature group, with
  patient-grouped stratified folds and a patient-bootstrap interval;
- :func:`box_in_model_space` and :func:`mass_inside`: where an attribution map puts its mass
  relative to the anatomy box, against the box's share of the image (what a uniform map would give).

High AUCs from nuisance features alone (0.5 = chance) mean the data let a model cheat; they do not
prove that a given model does, which is what the attribution-mass and masking checks look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from scipy.stats import kurtosis
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fetalscope.errors import BadInputError

BORDER_FRACTION = 0.08
FEATURE_GROUPS = ("border", "noise", "outside_box", "size")


def _stats(values: np.ndarray, prefix: str) -> dict[str, float]:
    v = values.astype(np.float64).ravel()
    if v.size == 0:
        return {f"{prefix}_{k}": 0.0 for k in ("mean", "std", "p05", "p50", "p95", "black", "white")}
    return {
        f"{prefix}_mean": float(v.mean()),
        f"{prefix}_std": float(v.std()),
        f"{prefix}_p05": float(np.percentile(v, 5)),
        f"{prefix}_p50": float(np.percentile(v, 50)),
        f"{prefix}_p95": float(np.percentile(v, 95)),
        f"{prefix}_black": float((v < 10).mean()),
        f"{prefix}_white": float((v > 245).mean()),
    }


def nuisance_features(rgb: np.ndarray, box_xyxy: Sequence[float] | None = None) -> dict[str, dict[str, float]]:
    """Non-anatomical statistics of one ``H x W x 3`` uint8 image, grouped (see :data:`FEATURE_GROUPS`).

    ``box_xyxy`` is the anatomy box in pixels (e.g. the annotated head); without it the
    ``outside_box`` group is empty.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError("nuisance_features expects an H x W x 3 uint8 image")
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    bh, bw = max(1, round(BORDER_FRACTION * h)), max(1, round(BORDER_FRACTION * w))
    border: dict[str, float] = {}
    for name, part in (("top", grey[:bh]), ("bottom", grey[-bh:]), ("left", grey[:, :bw]), ("right", grey[:, -bw:])):
        border.update(_stats(part, f"border_{name}"))
    g = grey.astype(np.float32)
    residual = g - cv2.medianBlur(grey, 3).astype(np.float32)
    # JPEG blockiness: jumps across 8-pixel column/row boundaries relative to jumps elsewhere
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    on_x, on_y = dx[:, 7::8].mean() if dx[:, 7::8].size else 0.0, dy[7::8].mean() if dy[7::8].size else 0.0
    eps = 1e-6
    colour = rgb.astype(np.float32)
    tint = np.abs(colour[..., 0] - colour[..., 1]) + np.abs(colour[..., 1] - colour[..., 2])
    noise = {
        "residual_std": float(residual.std()),
        "residual_mean_abs": float(np.abs(residual).mean()),
        "residual_kurtosis": float(kurtosis(residual.ravel(), fisher=True)) if residual.std() > 0 else 0.0,
        "laplacian_var": float(cv2.Laplacian(g, cv2.CV_32F).var()),
        "blockiness_x": float(on_x / (dx.mean() + eps)),
        "blockiness_y": float(on_y / (dy.mean() + eps)),
        "colour_tint_mean": float(tint.mean()),
        "colour_tint_fraction": float((tint > 12).mean()),
        "exact_black_fraction": float((grey == 0).mean()),
    }
    outside: dict[str, float] = {}
    if box_xyxy is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box_xyxy)
        mask = np.ones((h, w), dtype=bool)
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
        outside = _stats(grey[mask], "outside")
        outside["box_area_fraction"] = float(1.0 - mask.mean())
    size = {"width": float(w), "height": float(h), "aspect": float(w / h)}
    return {"border": border, "noise": noise, "outside_box": outside, "size": size}


def feature_matrix(records: Sequence[dict[str, dict[str, float]]], group: str) -> tuple[np.ndarray, list[str]]:
    """Stack one feature group of many :func:`nuisance_features` records into ``N x F``."""
    names = sorted(records[0].get(group, {}))
    if not names:
        return np.zeros((len(records), 0)), []
    return np.array([[r[group][n] for n in names] for r in records], dtype=np.float64), names


def shortcut_auc(
    x: np.ndarray,
    y: Sequence[int],
    groups: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 500,
) -> dict[str, Any]:
    """Out-of-fold ROC AUC of ``StandardScaler + LogisticRegression`` on ``x`` for binary ``y``.

    Folds are stratified and grouped by patient (``groups``), so copies of one image or one patient
    never sit on both sides. Returns the AUC, a patient-bootstrap 95% interval of it, the
    out-of-fold accuracy at 0.5, and the out-of-fold probabilities.
    """
    y_arr = np.asarray(y, dtype=int)
    if set(np.unique(y_arr)) - {0, 1} or len(np.unique(y_arr)) != 2:
        raise BadInputError("shortcut_auc needs binary labels 0/1 with both classes present")
    g = np.asarray([str(v) for v in groups])
    if x.shape[1] == 0 or np.allclose(x.std(axis=0), 0):
        return {"auc": 0.5, "ci_low": 0.5, "ci_high": 0.5, "accuracy": float(max(y_arr.mean(), 1 - y_arr.mean())),
                "n_features": int(x.shape[1]), "note": "features constant: no information", "oof": None}
    n_folds = max(2, min(folds, len(np.unique(g))))
    probs = np.zeros(len(y_arr))
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(x, y_arr, g):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        model.fit(x[train_idx], y_arr[train_idx])
        probs[test_idx] = model.predict_proba(x[test_idx])[:, 1]
    auc = float(roc_auc_score(y_arr, probs))
    from fetalscope.evaluate.bootstrap import resample_indices

    boots = []
    for idx in resample_indices(len(y_arr), list(g), n_boot=n_boot, seed=seed):
        if len(np.unique(y_arr[idx])) == 2:
            boots.append(roc_auc_score(y_arr[idx], probs[idx]))
    return {
        "auc": round(auc, 4),
        "ci_low": round(float(np.percentile(boots, 2.5)), 4) if boots else None,
        "ci_high": round(float(np.percentile(boots, 97.5)), 4) if boots else None,
        "accuracy": round(float(((probs >= 0.5) == y_arr).mean()), 4),
        "n_features": int(x.shape[1]),
        "folds": n_folds,
        "oof": probs.round(4).tolist(),
    }


def box_in_model_space(
    box_xyxy: Sequence[float], sector: tuple[int, int, int, int] | None, input_hw: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Map a box from original pixels to model-input pixels, given the crop ``sector`` = ``(y0, y1, x0, x1)``
    the preprocessing took (``None``: the whole image was resized) and the model input ``(H, W)``."""
    x0, y0, x1, y1 = box_xyxy
    if sector is None:
        raise BadInputError("box_in_model_space needs the crop rectangle (use the whole image when not cropped)")
    sy0, sy1, sx0, sx1 = sector
    sh, sw = max(1, sy1 - sy0), max(1, sx1 - sx0)
    h, w = input_hw
    bx0, bx1 = (np.clip([x0 - sx0, x1 - sx0], 0, sw) * (w / sw)).tolist()
    by0, by1 = (np.clip([y0 - sy0, y1 - sy0], 0, sh) * (h / sh)).tolist()
    return float(bx0), float(by0), float(bx1), float(by1)


def mass_inside(attribution: np.ndarray, box_xyxy: Sequence[float]) -> dict[str, float]:
    """Share of the positive attribution mass inside ``box_xyxy`` (model-input pixels) and the box's area
    share; ``ratio`` > 1 means the map concentrates on the box more than a uniform map would."""
    a = np.clip(np.asarray(attribution, dtype=np.float64), 0, None)
    h, w = a.shape
    x0, y0, x1, y1 = box_xyxy
    mask = np.zeros((h, w), dtype=bool)
    mask[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
    total = a.sum()
    inside = float(a[mask].sum() / total) if total > 0 else float("nan")
    area = float(mask.mean())
    return {"inside": inside, "area": area, "ratio": inside / area if area > 0 else float("nan")}
