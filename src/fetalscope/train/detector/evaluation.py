"""Evaluate a detector on YOLO items: mAP (raw and plausibility-filtered), precision/recall at the
operating threshold, and how often raw outputs, filtered outputs and the annotations break the
plausibility rules."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from fetalscope.data.yolo import YoloItem
from fetalscope.detect import plausibility
from fetalscope.detect.skull import SkullEllipse, estimate_skull
from fetalscope.detect.types import Box, Detector
from fetalscope.evaluate.detection import mean_average_precision, precision_recall
from fetalscope.imaging.loader import load_image


@lru_cache(maxsize=4096)
def _image_size(path: Path) -> tuple[int, int]:
    image = load_image(path)
    return image.width, image.height


def truth_boxes(items: Sequence[YoloItem], classes: Sequence[str]) -> list[list[Box]]:
    """Annotated boxes of each item in pixel ``xyxy`` (score 1)."""
    out = []
    for item in items:
        w, h = _image_size(item.image)
        out.append([Box(classes[b.cls], 1.0, *b.xyxy(w, h)) for b in item.boxes])
    return out


def predict_items(detector: Detector, items: Sequence[YoloItem], batch_size: int = 4) -> list[list[Box]]:
    """Raw detector output (every box above the backend's minimum score) for each item."""
    out: list[list[Box]] = []
    for start in range(0, len(items), batch_size):
        images = [load_image(it.image) for it in items[start : start + batch_size]]
        out.extend(detector.predict_batch(images))
    return out


def skulls_for(items: Sequence[YoloItem]) -> list[SkullEllipse | None]:
    """Estimated skull ellipse of each item's image (``None`` where not found)."""
    return [estimate_skull(load_image(it.image).pixels) for it in items]


def evaluate_detector(
    detector: Detector,
    items: Sequence[YoloItem],
    score_threshold: float,
    *,
    predictions: Sequence[Sequence[Box]] | None = None,
    skulls: Sequence[SkullEllipse | None] | None = None,
    drop_outside_skull: bool = False,
) -> dict[str, Any]:
    """Everything the report needs about ``detector`` on ``items`` at ``score_threshold``."""
    classes = tuple(detector.classes)
    preds = list(predictions) if predictions is not None else predict_items(detector, items)
    truths = truth_boxes(items, classes)
    skulls = list(skulls) if skulls is not None else skulls_for(items)
    filtered = [
        plausibility.enforce(p, s, drop_outside_skull=drop_outside_skull)
        for p, s in zip(preds, skulls, strict=True)
    ]
    raw_at_t = [[b for b in p if b.score >= score_threshold] for p in preds]
    filt_at_t = [[b for b in p if b.score >= score_threshold] for p in filtered]

    def rates(boxes: Sequence[Sequence[Box]]) -> dict[str, Any]:
        reports = [plausibility.check(b, s) for b, s in zip(boxes, skulls, strict=True)]
        return plausibility.violation_rates(reports, classes)

    per_image = []
    for item, p_raw, p_f, s in zip(items, raw_at_t, filt_at_t, skulls, strict=True):
        per_image.append(
            {
                "image": item.image.name,
                "group": item.group,
                "raw": plausibility.check(p_raw, s).to_dict() | {"boxes": [b.to_dict() for b in p_raw]},
                "filtered_boxes": [b.to_dict() for b in p_f],
            }
        )
    return {
        "images": len(items),
        "groups": len({it.group for it in items}),
        "score_threshold": score_threshold,
        "map_raw": mean_average_precision(preds, truths, classes),
        "map_filtered": mean_average_precision(filtered, truths, classes),
        "pr_raw": precision_recall(preds, truths, classes, score_threshold),
        "pr_filtered": precision_recall(filtered, truths, classes, score_threshold),
        "plausibility": {
            "raw_outputs": rates(raw_at_t),
            "filtered_outputs": rates(filt_at_t),
            "annotations": rates(truths),
            "skull_found_fraction": round(sum(s is not None for s in skulls) / max(1, len(skulls)), 4),
            "drop_outside_skull": drop_outside_skull,
        },
        "per_image": per_image,
    }
