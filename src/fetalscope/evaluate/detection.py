"""Detection metrics, pure numbers on boxes: COCO-style mAP per class (torchmetrics + pycocotools),
precision/recall at a score threshold (greedy one-to-one matching at IoU 0.5, as in the PASCAL VOC
protocol), the threshold with the best F1, and group-bootstrap intervals of mAP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from fetalscope.data.boxes import Box
from fetalscope.errors import BadInputError
from fetalscope.evaluate.bootstrap import resample_indices


def _to_target(boxes: Sequence[Box], classes: Sequence[str], with_scores: bool) -> dict[str, torch.Tensor]:
    index = {c: i for i, c in enumerate(classes)}
    unknown = {b.label for b in boxes} - set(index)
    if unknown:
        raise BadInputError(
            f"boxes carry labels {sorted(unknown)} that are not in the class list {list(classes)}"
        )
    d = {
        "boxes": torch.tensor([b.xyxy for b in boxes], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([index[b.label] for b in boxes], dtype=torch.int64),
    }
    if with_scores:
        d["scores"] = torch.tensor([b.score for b in boxes], dtype=torch.float32)
    return d


def mean_average_precision(
    predictions: Sequence[Sequence[Box]], truths: Sequence[Sequence[Box]], classes: Sequence[str]
) -> dict[str, Any]:
    """COCO mAP@0.5:0.95 and mAP@0.5, overall and per class.

    ``predictions[i]`` and ``truths[i]`` are the boxes of image ``i`` (scores of truths are ignored).
    A class with no ground-truth box gets ``None``.
    """
    if len(predictions) != len(truths):
        raise BadInputError(f"{len(predictions)} prediction lists for {len(truths)} images")
    preds = [_to_target(p, classes, True) for p in predictions]
    gts = [_to_target(t, classes, False) for t in truths]
    coco = MeanAveragePrecision(iou_type="bbox", class_metrics=True, backend="pycocotools")
    at50 = MeanAveragePrecision(
        iou_type="bbox", class_metrics=True, iou_thresholds=[0.5], backend="pycocotools"
    )
    coco.update(preds, gts)
    at50.update(preds, gts)
    full, half = coco.compute(), at50.compute()
    present = {int(i) for i in torch.atleast_1d(full["classes"]).tolist()}
    per_class: dict[str, dict[str, float | None]] = {}
    map_pc = torch.atleast_1d(full["map_per_class"]).tolist()
    map50_pc = torch.atleast_1d(half["map_per_class"]).tolist()
    ordered = sorted(present)
    for i, name in enumerate(classes):
        if i in present:
            k = ordered.index(i)
            per_class[name] = {"map_50_95": _clean(map_pc[k]), "map_50": _clean(map50_pc[k])}
        else:
            per_class[name] = {"map_50_95": None, "map_50": None}
    return {
        "map_50_95": _clean(full["map"].item()),
        "map_50": _clean(full["map_50"].item()),
        "map_75": _clean(full["map_75"].item()),
        "per_class": per_class,
        "images": len(truths),
        "ground_truth_boxes": {c: sum(b.label == c for t in truths for b in t) for c in classes},
    }


def _clean(v: float) -> float | None:
    return None if v is None or v < 0 or not np.isfinite(v) else round(float(v), 4)


def match_counts(
    predictions: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    classes: Sequence[str],
    iou_threshold: float = 0.5,
) -> dict[str, dict[str, int]]:
    """True positives, false positives and false negatives per class: predictions (already thresholded)
    are matched greedily by score to unmatched same-class truths with IoU >= ``iou_threshold``."""
    counts = {c: {"tp": 0, "fp": 0, "fn": 0} for c in classes}
    for preds, gts in zip(predictions, truths, strict=True):
        for c in classes:
            p = sorted((b for b in preds if b.label == c), key=lambda b: -b.score)
            g = [b for b in gts if b.label == c]
            if not g:
                counts[c]["fp"] += len(p)
                continue
            if not p:
                counts[c]["fn"] += len(g)
                continue
            iou = box_iou(torch.tensor([b.xyxy for b in p]), torch.tensor([b.xyxy for b in g])).numpy()
            used = np.zeros(len(g), dtype=bool)
            for row in iou:
                cand = np.where(~used & (row >= iou_threshold))[0]
                if len(cand):
                    used[cand[np.argmax(row[cand])]] = True
                    counts[c]["tp"] += 1
                else:
                    counts[c]["fp"] += 1
            counts[c]["fn"] += int((~used).sum())
    return counts


def precision_recall(
    predictions: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    classes: Sequence[str],
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Precision, recall and F1 per class and micro-averaged, for boxes scoring >= ``score_threshold``."""
    kept = [[b for b in p if b.score >= score_threshold] for p in predictions]
    counts = match_counts(kept, truths, classes, iou_threshold)
    per_class = {c: _prf(v) for c, v in counts.items()}
    total = {k: sum(v[k] for v in counts.values()) for k in ("tp", "fp", "fn")}
    return {
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "micro": _prf(total),
        "per_class": per_class,
    }


def _prf(c: dict[str, int]) -> dict[str, float | int | None]:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * p * r / (p + r)
        if p is not None and r is not None and p + r > 0
        else (0.0 if p is not None else None)
    )
    return {"tp": tp, "fp": fp, "fn": fn, "precision": _r(p), "recall": _r(r), "f1": _r(f1)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def choose_threshold(
    predictions: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    classes: Sequence[str],
    grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2)),
) -> tuple[float, list[dict[str, float]]]:
    """The score threshold with the best micro F1 (ties: the lower threshold) and the whole curve."""
    curve = []
    for t in grid:
        m = precision_recall(predictions, truths, classes, float(t))["micro"]
        curve.append(
            {
                "threshold": float(t),
                "precision": m["precision"] or 0.0,
                "recall": m["recall"] or 0.0,
                "f1": m["f1"] or 0.0,
            }
        )
    best = max(curve, key=lambda row: (row["f1"], -row["threshold"]))
    return best["threshold"], curve


def bootstrap_map(
    predictions: Sequence,
    truths: Sequence,
    classes: Sequence[str],
    groups: Sequence[str],
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Percentile 95% intervals of mAP@0.5 and mAP@0.5:0.95, resampling whole groups."""
    vals: dict[str, list[float]] = {"map_50": [], "map_50_95": []}
    for idx in resample_indices(len(truths), list(groups), n_boot=n_boot, seed=seed):
        m = mean_average_precision([predictions[i] for i in idx], [truths[i] for i in idx], classes)
        for k in vals:
            if m[k] is not None:
                vals[k].append(m[k])
    out: dict[str, Any] = {"n_boot": n_boot, "unit": "group", "n_units": len(set(groups))}
    for k, v in vals.items():
        arr = np.asarray(v)
        out[k] = {
            "ci_low": round(float(np.percentile(arr, 2.5)), 4),
            "ci_high": round(float(np.percentile(arr, 97.5)), 4),
        }
    return out
