"""The shortcut checks of the normal/abnormal study, on real images and the trained model.

1. :func:`nuisance_aucs`: can logistic regressions on non-anatomical statistics alone (image border,
   noise / JPEG statistics, pixels outside the head box, image size) separate the classes?
   (the statistics and the AUC come from :mod:`fetalscope.evaluate.shortcut`);
2. :func:`masking_aucs`: the trained model's test AUC on unmodified images, with the head box blanked
   (anatomy removed) and with everything but the head box blanked;
3. :func:`attribution_mass` / :func:`summarise_mass`: the share of Grad-CAM / LIME mass inside the head
   box against the box's share of the model input.

Checks 2 and 3 need one anatomy box per image (``Sample.meta["box_norm"]``, a YOLO export).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fetalscope.data.samples import Sample
from fetalscope.data.transforms import PreprocessConfig, normalise, prepare_array
from fetalscope.errors import DataError
from fetalscope.evaluate.shortcut import (
    FEATURE_GROUPS,
    box_in_model_space,
    feature_matrix,
    mass_inside,
    nuisance_features,
    shortcut_auc,
)
from fetalscope.imaging.loader import load_image
from fetalscope.imaging.sector import find_sector

MASK_MODES = ("plain", "no_head", "head_only")
BATCH = 16


def head_box_px(sample: Sample, width: int, height: int) -> list[float] | None:
    """The sample's anatomy box in pixels ``[x0, y0, x1, y1]``, or ``None`` when it has none."""
    box = sample.meta.get("box_norm")
    if not box:
        return None
    return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]


def has_boxes(samples: list[Sample]) -> bool:
    return bool(samples) and all(s.meta.get("box_norm") for s in samples)


def model_inputs(sample: Sample, preprocess: PreprocessConfig, mode: str) -> tuple[torch.Tensor, list[float] | None]:
    """Input tensor of ``sample`` for ``mode`` in :data:`MASK_MODES` and its head box in model pixels.

    The crop rectangle is always the one found on the unmodified image, so masking never moves it.
    """
    image = load_image(sample.path)
    rgb = image.pixels.copy()
    box = head_box_px(sample, image.width, image.height)
    sector = find_sector(rgb) if preprocess.crop_sector else None
    rect = (sector.y0, sector.y1, sector.x0, sector.x1) if sector else (0, image.height, 0, image.width)
    if mode != "plain":
        if box is None:
            raise DataError(f"{sample.path}: masking checks need a head box")
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if mode == "no_head":
            rgb[max(0, y0):y1, max(0, x0):x1] = 0
        else:
            keep = rgb[max(0, y0):y1, max(0, x0):x1].copy()
            rgb[:] = 0
            rgb[max(0, y0):y1, max(0, x0):x1] = keep
    crop = rgb[rect[0]:rect[1], rect[2]:rect[3]]
    cfg = preprocess.replace(crop_sector=False)
    x = normalise(prepare_array(crop, cfg), cfg)
    model_box = box_in_model_space(box, rect, tuple(preprocess.input_size)) if box else None
    return x, model_box


@torch.inference_mode()
def probabilities(model: torch.nn.Module, samples: list[Sample], preprocess: PreprocessConfig, mode: str,
                  temperature: float = 1.0) -> np.ndarray:
    """``N x C`` calibrated probabilities of ``model`` on ``samples`` prepared for ``mode``."""
    out = []
    for start in range(0, len(samples), BATCH):
        xs = torch.stack([model_inputs(s, preprocess, mode)[0] for s in samples[start:start + BATCH]])
        out.append(torch.softmax(model(xs) / temperature, dim=1).numpy())
    return np.concatenate(out)


def nuisance_aucs(samples: list[Sample], positive: int, seed: int) -> dict[str, Any]:
    """Out-of-fold AUC of each non-anatomical feature group, and of all of them together, over
    ``samples`` (one per source) with patient-grouped folds."""
    records = []
    for s in samples:
        img = load_image(s.path)
        records.append(nuisance_features(img.pixels, head_box_px(s, img.width, img.height)))
    y = [int(s.label == positive) for s in samples]
    groups = [s.patient for s in samples]
    out: dict[str, Any] = {}
    for group in FEATURE_GROUPS:
        x, names = feature_matrix(records, group)
        if names:
            res = shortcut_auc(x, y, groups, seed=seed)
            res.pop("oof", None)
            out[group] = res
    x_all = np.hstack([feature_matrix(records, g)[0] for g in FEATURE_GROUPS])
    out["all non-anatomical"] = {k: v for k, v in shortcut_auc(x_all, y, groups, seed=seed).items() if k != "oof"}
    return out


def masking_aucs(model: torch.nn.Module, test: list[Sample], preprocess: PreprocessConfig, positive: int,
                 temperature: float) -> tuple[dict[str, Any], np.ndarray]:
    """Test ROC AUC for each mask mode (only ``plain`` without boxes) and the plain positive-class
    probabilities. Labels of ``test`` are in the model's class order."""
    y = np.array([int(s.label == positive) for s in test])
    masking: dict[str, Any] = {}
    plain = np.zeros(len(test))
    for mode in MASK_MODES if has_boxes(test) else ("plain",):
        prob = probabilities(model, test, preprocess, mode, temperature)[:, positive]
        masking[f"{mode}_auc"] = round(float(roc_auc_score(y, prob)), 4)
        if mode == "plain":
            plain = prob
    masking.setdefault("no_head_auc", None)
    masking.setdefault("head_only_auc", None)
    return masking, plain


def attribution_mass(model: torch.nn.Module, samples: list[Sample], preprocess: PreprocessConfig, method: str,
                     **params: Any) -> list[dict[str, Any]]:
    """Per image: share of ``method``'s positive attribution inside the head box, the box's area share
    and their ratio (images without a box are left out)."""
    from fetalscope.explain import explain

    rows = []
    for s in samples:
        x, box = model_inputs(s, preprocess, "plain")
        if box is None:
            continue
        e = explain(model, x, method, target=s.label, preprocess=preprocess, **params)
        m = mass_inside(e.map, box)
        rows.append({"image": s.path.name, "label": s.label,
                     **{k: round(v, 4) if np.isfinite(v) else None for k, v in m.items()}})
    return rows


def summarise_mass(rows: list[dict[str, Any]], classes: tuple[str, ...]) -> dict[str, Any]:
    """Means of :func:`attribution_mass` rows, over all images and per class."""
    def mean(values: np.ndarray) -> float | None:  # None when every map was empty (no positive mass)
        finite = values[np.isfinite(values)]
        return round(float(finite.mean()), 4) if finite.size else None

    def agg(rs: list[dict[str, Any]]) -> dict[str, Any]:
        if not rs:
            return {"images": 0}
        inside = np.array([r["inside"] for r in rs], dtype=np.float64)
        area = np.array([r["area"] for r in rs], dtype=np.float64)
        return {"images": len(rs), "mass_inside_mean": mean(inside),
                "box_area_mean": round(float(area.mean()), 4),
                "ratio_mean": mean(inside / area),
                "fraction_images_mass_mostly_outside": round(float((inside < 0.5).mean()), 4)}

    return {"all": agg(rows), **{c: agg([r for r in rows if r["label"] == i]) for i, c in enumerate(classes)}}


def attribution_study(model: torch.nn.Module, test: list[Sample], preprocess: PreprocessConfig,
                      classes: tuple[str, ...], n_gradcam: int, n_lime: int,
                      seed: int) -> tuple[dict[str, Any], dict[str, list]]:
    """Grad-CAM on ``n_gradcam`` and LIME on ``n_lime`` random test images (empty without boxes): the
    summaries and the per-image rows."""
    summary: dict[str, Any] = {}
    rows: dict[str, list] = {}
    if not has_boxes(test):
        return summary, rows
    order = np.random.default_rng(seed).permutation(len(test))
    for method, n in (("gradcam", n_gradcam), ("lime", n_lime)):
        if n:
            rows[method] = attribution_mass(model, [test[i] for i in order[:n]], preprocess, method)
            summary[method] = summarise_mass(rows[method], classes)
    return summary, rows
