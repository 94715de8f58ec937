"""The shipped detector bundle: loads offline, stays small, and finds structures on real HC18 images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fetalscope import config
from fetalscope.data.yolo import read_yolo_dataset
from fetalscope.detect.bundle_io import load_detector
from fetalscope.imaging.loader import load_image
from fetalscope.pipeline import Session
from fetalscope.pipeline.outputs import detect_to_folder

BUNDLE = config.bundled_models_dir() / "brain-structures"


def test_bundle_files_and_card() -> None:
    assert (BUNDLE / "model.safetensors").stat().st_size < 25 * 1024 * 1024
    card = json.loads((BUNDLE / "card.json").read_text())
    assert card["task"] == "detection"
    assert card["classes"] == ["CHOROID_PLEXUS", "CSP", "MIDLINE_FALX"]
    assert 0.0 < card["score_threshold"] < 1.0
    assert "Apache-2.0" in card["base_weights"]["licence"] and "CC BY 4.0" in card["data"]["licence"]
    assert card["metrics"]["mAP@0.5"] is not None
    report = json.loads((BUNDLE / "report.json").read_text())
    # the card's numbers are the report's numbers
    assert card["metrics"]["mAP@0.5"] == report["test"]["evaluation"]["map_raw"]["map_50"]
    md = (BUNDLE / "card.md").read_text()
    assert "not a medical device" in md.lower() and "Detection settings" in md


def test_bundle_loads_without_shared_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FETALSCOPE_SHARED", str(tmp_path / "nowhere"))
    bundle = load_detector("brain-structures")
    assert bundle.classes == ("CHOROID_PLEXUS", "CSP", "MIDLINE_FALX")
    assert not bundle.detector.model.training
    assert bundle.detector.model(torch.zeros(1, 3, 432, 640).unbind(0)) is not None


@pytest.mark.shared
def test_bundled_detector_finds_structures_on_real_images(shared_data: Path, tmp_path: Path) -> None:
    ds = read_yolo_dataset(shared_data / "yolo_brain_structures")
    items = ds.items("valid")[:2]
    records = detect_to_folder(Session(), [it.image for it in items], out_json=tmp_path / "boxes.json",
                               draw_dir=tmp_path / "draw")
    for item, record in zip(items, records, strict=True):
        image = load_image(item.image)
        truth = {ds.names[b.cls]: b.xyxy(image.width, image.height) for b in item.boxes}
        found = {b["label"]: b["xyxy"] for b in record["boxes"]}
        # the falx is large and always present in these images: it must be found where annotated
        assert "MIDLINE_FALX" in found
        fx = found["MIDLINE_FALX"]
        tx = truth["MIDLINE_FALX"]
        inter = max(0, min(fx[2], tx[2]) - max(fx[0], tx[0])) * max(0, min(fx[3], tx[3]) - max(fx[1], tx[1]))
        union = (fx[2] - fx[0]) * (fx[3] - fx[1]) + (tx[2] - tx[0]) * (tx[3] - tx[1]) - inter
        assert inter / union > 0.5
        # served output obeys the one-falx / one-CSP rule
        labels = [b["label"] for b in record["boxes"]]
        assert labels.count("MIDLINE_FALX") <= 1 and labels.count("CSP") <= 1
        assert record["plausibility"]["skull_found"] in (True, False)
    assert len(json.loads((tmp_path / "boxes.json").read_text())) == 2
    assert len(list((tmp_path / "draw").glob("*.png"))) == 2
