"""mAP on hand-made boxes, precision/recall matching, skull estimate and plausibility rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fetalscope.detect import plausibility
from fetalscope.detect.skull import SkullEllipse, ellipse_iou, estimate_skull
from fetalscope.detect.types import Box
from fetalscope.evaluate.detection import choose_threshold, mean_average_precision, precision_recall

CLASSES = ("CHOROID_PLEXUS", "CSP", "MIDLINE_FALX")
TRUTHS = [
    [Box("MIDLINE_FALX", 1, 100, 150, 500, 230), Box("CSP", 1, 380, 160, 450, 220),
     Box("CHOROID_PLEXUS", 1, 200, 250, 290, 320)],
    [Box("MIDLINE_FALX", 1, 80, 140, 520, 240), Box("CSP", 1, 150, 170, 230, 230),
     Box("CHOROID_PLEXUS", 1, 330, 240, 420, 310)],
]


def shifted(boxes: list[Box], dx: float, score: float = 0.9) -> list[Box]:
    return [Box(b.label, score, b.x0 + dx, b.y0, b.x1 + dx, b.y1) for b in boxes]


def test_perfect_predictions_score_one() -> None:
    preds = [shifted(t, 0) for t in TRUTHS]
    m = mean_average_precision(preds, TRUTHS, CLASSES)
    assert m["map_50"] == pytest.approx(1.0) and m["map_50_95"] == pytest.approx(1.0)
    assert all(v["map_50"] == pytest.approx(1.0) for v in m["per_class"].values())
    assert m["ground_truth_boxes"] == {c: 2 for c in CLASSES}


def test_shifted_predictions_score_lower_and_small_boxes_first() -> None:
    preds = [shifted(t, 20) for t in TRUTHS]
    m = mean_average_precision(preds, TRUTHS, CLASSES)
    assert m["map_50_95"] < 0.8
    # a 20 px shift hardly matters to the 400 px falx but moves the 70-90 px CSP/CP boxes a lot
    assert m["per_class"]["MIDLINE_FALX"]["map_50_95"] > m["per_class"]["CSP"]["map_50_95"]
    far = mean_average_precision([shifted(t, 200) for t in TRUTHS], TRUTHS, CLASSES)
    assert far["per_class"]["CSP"]["map_50"] == 0.0
    assert mean_average_precision([[], []], TRUTHS, CLASSES)["map_50"] == 0.0


def test_precision_recall_at_threshold() -> None:
    preds = [shifted(t, 0, 0.9) + [Box("CSP", 0.3, 0, 0, 40, 40)] for t in TRUTHS]
    preds[1] = [b for b in preds[1] if b.label != "CHOROID_PLEXUS"]  # one miss
    high = precision_recall(preds, TRUTHS, CLASSES, 0.5)
    assert high["micro"]["tp"] == 5 and high["micro"]["fp"] == 0 and high["micro"]["fn"] == 1
    low = precision_recall(preds, TRUTHS, CLASSES, 0.2)
    assert low["per_class"]["CSP"]["fp"] == 2 and low["per_class"]["CSP"]["precision"] == pytest.approx(0.5)
    # a duplicate of a matched box is a false positive, not a second true positive
    dup = [shifted(t, 0) + shifted(t[:1], 2, 0.8) for t in TRUTHS]
    assert precision_recall(dup, TRUTHS, CLASSES, 0.5)["per_class"]["MIDLINE_FALX"]["fp"] == 2
    threshold, curve = choose_threshold(preds, TRUTHS, CLASSES)
    assert 0.3 < threshold <= 0.9
    assert max(r["f1"] for r in curve) == next(r["f1"] for r in curve if r["threshold"] == threshold)


def head_image(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark speckled image with a bright elliptical skull ring and a bright one-sided tissue edge."""
    rng = np.random.default_rng(seed)
    img = rng.normal(35, 12, size=(432, 640)).clip(0, 255).astype(np.uint8)
    img[380:, :] = np.clip(img[380:, :].astype(int) + 120, 0, 255).astype(np.uint8)  # maternal tissue
    cv2.ellipse(img, ((330, 200), (360, 270), 15), 235, 9)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    mask = np.zeros_like(img)
    cv2.ellipse(mask, ((330, 200), (360, 270), 15), 255, -1)
    return np.repeat(img[..., None], 3, axis=2), mask


def test_skull_estimate_finds_the_ring_not_the_tissue_edge() -> None:
    rgb, mask = head_image()
    skull = estimate_skull(rgb)
    assert skull is not None and skull.score >= 0.4
    assert ellipse_iou(skull, mask) > 0.85
    assert skull.contains(330, 200) and not skull.contains(20, 420)
    flat = np.full((200, 300, 3), 30, np.uint8)
    assert estimate_skull(flat) is None


def test_plausibility_rules_and_filter() -> None:
    skull = SkullEllipse(cx=300, cy=200, width=400, height=300, angle=0, score=0.9)
    boxes = [
        Box("MIDLINE_FALX", 0.95, 120, 170, 480, 230),
        Box("MIDLINE_FALX", 0.40, 130, 180, 470, 240),
        Box("CSP", 0.8, 350, 170, 420, 220),
        Box("CHOROID_PLEXUS", 0.7, 200, 230, 280, 290),
        Box("CHOROID_PLEXUS", 0.6, 330, 230, 400, 290),  # two plexus boxes are allowed
        Box("CSP", 0.5, 560, 20, 600, 60),  # outside the skull and a second CSP
    ]
    report = plausibility.check(boxes, skull)
    assert not report.ok
    assert set(report.violations) == {"duplicate:MIDLINE_FALX", "duplicate:CSP", "outside_skull:CSP"}
    assert report.counts == {"CHOROID_PLEXUS": 2, "CSP": 2, "MIDLINE_FALX": 2}
    kept = plausibility.enforce(boxes, skull)
    assert [b.score for b in kept] == [0.95, 0.8, 0.7, 0.6]
    assert plausibility.check(kept, skull).ok
    # without a skull only the singleton rule applies; the outside CSP is dropped as the weaker CSP
    assert plausibility.check(boxes, None).violations == ["duplicate:MIDLINE_FALX", "duplicate:CSP"]
    rates = plausibility.violation_rates([report, plausibility.check(kept, skull),
                                          plausibility.check(kept, None)], CLASSES)
    assert rates["any_violation"] == pytest.approx(1 / 3, abs=1e-3)
    assert rates["images_with_skull"] == 2 and rates["outside_skull:CSP"] == pytest.approx(0.5)
    assert report.to_dict()["skull"]["cx"] == 300
