"""A tiny detector learns bright rectangles; bundles round-trip; detect_to_folder writes JSON and overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fetalscope.data.yolo import read_yolo_dataset
from fetalscope.detect.api import draw_boxes
from fetalscope.detect.bundle_io import load_detector, save_detector_bundle
from fetalscope.detect.torchvision_backend import DetectorConfig, TorchvisionDetector, build_detector
from fetalscope.detect.types import Box, Detector
from fetalscope.errors import MissingWeightsError, UnsupportedError
from fetalscope.pipeline import Session
from fetalscope.pipeline.outputs import detect_to_folder
from fetalscope.train.detector.evaluation import predict_items
from fetalscope.train.detector.trainer import DetectTrainConfig, fit_detector

TINY = DetectorConfig(min_size=64, max_size=96, width_mult=0.5, fpn_channels=32, representation_size=64,
                      anchor_sizes=(16, 32, 64, 128), min_score=0.0)


def tiny_detector(classes: tuple[str, ...]) -> TorchvisionDetector:
    torch.manual_seed(0)
    return TorchvisionDetector(build_detector(len(classes), TINY, pretrained=False), classes, TINY)


def test_tiny_detector_loss_decreases(tiny_yolo: Path) -> None:
    ds = read_yolo_dataset(tiny_yolo)
    det = tiny_detector(ds.names)
    assert isinstance(det, Detector)
    train = ds.items("train")[:4]  # one fixed batch: the loss on it must fall step by step
    cfg = DetectTrainConfig(epochs=6, batch_size=4, lr=0.05, warmup_iters=0, augment=False, max_iters=6)
    result = fit_detector(det, train, cfg, log=lambda _: None)
    losses = result.iteration_losses
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= 4
    preds = predict_items(det, ds.items("valid")[:2])
    assert len(preds) == 2 and all(isinstance(b, Box) for p in preds for b in p)


def test_bundle_round_trip_and_detect_to_folder(yolo_factory, tmp_path: Path) -> None:  # noqa: ANN001
    ds = read_yolo_dataset(yolo_factory(tmp_path / "ds", n_train=2, n_valid=1, copies=3))
    det = tiny_detector(ds.names)
    folder = save_detector_bundle(det, tmp_path / "bundle", {"score_threshold": 0.0,
                                                            "plausibility": {"drop_outside_skull": False}})
    card = json.loads((folder / "card.json").read_text())
    assert card["task"] == "detection" and card["classes"] == ["BAR", "SQUARE"]
    assert "Detection settings" in (folder / "card.md").read_text()
    loaded = load_detector(folder)
    image_path = ds.items("valid")[0].image
    from fetalscope.imaging.loader import load_image

    image = load_image(image_path)
    a, b = det.predict(image), loaded.detector.predict(image)
    assert [x.label for x in a] == [x.label for x in b]
    assert np.allclose([x.xyxy for x in a], [x.xyxy for x in b], atol=1e-3)

    records = detect_to_folder(Session(detector=folder), [image_path.parent], out_json=tmp_path / "out.json",
                               draw_dir=tmp_path / "draw", score_threshold=0.0)
    assert len(records) == 3
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved[0]["image"] == records[0]["image"] and saved[0]["width"] == 96
    assert {"plausible", "violations", "skull_found", "removed"} <= set(saved[0]["plausibility"])
    for box in saved[0]["boxes"]:
        assert box["label"] in ("BAR", "SQUARE") and len(box["xyxy"]) == 4
    assert len(list((tmp_path / "draw").glob("*_boxes.png"))) == 3
    # the bundle object itself answers like a Detector and gives the same record as detect_to_folder
    first = sorted(image_path.parent.glob("*.jpg"))[0]
    record = loaded.detect(load_image(first), score_threshold=0.0)
    assert record["boxes"] == next(r for r in records if r["image"] == str(first))["boxes"]
    assert len(loaded.predict(load_image(first))) >= len(record["boxes"])


def test_load_detector_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="no model bundle"):
        load_detector(tmp_path / "nothing")
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "card.json").write_text(json.dumps({"task": "classification", "classes": ["a"]}))
    with pytest.raises(UnsupportedError, match="not a detector"):
        load_detector(tmp_path / "cls")


def test_draw_boxes_marks_pixels() -> None:
    rgb = np.zeros((60, 80, 3), np.uint8)
    out = draw_boxes(rgb, [Box("CSP", 0.9, 10, 20, 40, 50), {"label": "OTHER", "score": 0.5, "xyxy": [5, 5, 30, 30]}])
    assert out.shape == rgb.shape and rgb.sum() == 0
    assert tuple(out[35, 10]) == (60, 200, 75)  # left edge of the CSP box in its colour
    assert out[40, 70].sum() == 0
