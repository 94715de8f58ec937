"""The shipped normal/abnormal demonstration bundle: says what it is, and its shortcut numbers are recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fetalscope import config
from fetalscope.data.transforms import to_tensor
from fetalscope.data.yolo import read_yolo_dataset, yolo_classification_set
from fetalscope.imaging.loader import load_image
from fetalscope.models.bundle import load_bundle

BUNDLE = config.bundled_models_dir() / "brain-normal-abnormal-demo"


def test_card_declares_demonstration_and_confound() -> None:
    card = json.loads((BUNDLE / "card.json").read_text())
    assert card["status"] == "demonstration, confounded data"
    assert "confounded" in card["warning"].lower() and "not a medical device" in card["warning"].lower()
    assert card["classes"] == ["abnormal", "normal"]
    report = json.loads((BUNDLE / "shortcut_report.json").read_text())
    # the card's shortcut numbers are the report's
    assert card["shortcut_check"]["masking"] == report["shortcut"]["masking"]
    assert card["shortcut_check"]["nuisance_auc"]["noise"] == report["shortcut"]["nuisance_auc"]["noise"]["auc"]
    md = (BUNDLE / "card.md").read_text()
    assert md.startswith("**Demonstration only, confounded data") and "Shortcut check" in md
    assert (BUNDLE / "model.safetensors").stat().st_size < 25 * 1024 * 1024


@pytest.mark.shared
def test_demo_model_runs_on_real_images(shared_data: Path) -> None:
    bundle = load_bundle("brain-normal-abnormal-demo")
    ds = read_yolo_dataset(shared_data / "brain_normal_abnormal_roboflow")
    samples = yolo_classification_set(ds, ["test"]).samples
    picked = [next(s for s in samples if s.label == k) for k in (0, 1)]
    x = torch.stack([to_tensor(load_image(s.path), bundle.preprocess) for s in picked])
    with torch.inference_mode():
        probs = torch.softmax(bundle.model(x), dim=1).numpy()
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
