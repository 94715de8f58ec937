"""Brain findings in the pipeline: the shipped normal/abnormal bundle runs on brain images only, and its
record carries the card's status and warning verbatim. (Real FETAL_PLANES_DB / FOCUS images:
``test_analyser.py::test_real_brain_and_thorax_images``, which checks the same record.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.imaging import load_image
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.models.bundle import read_card
from fetalscope.pipeline.analyser import Analyser
from fetalscope.pipeline.brain_findings import DEFAULT_BRAIN_FINDINGS_MODEL

CARD = read_card(DEFAULT_BRAIN_FINDINGS_MODEL)


def _constant_plane_bundle(folder: Path, plane: str) -> Path:
    """A real small_cnn plane bundle whose head always answers ``plane`` (zero weights, one large bias):
    it fixes the routing so the findings model itself runs on a generated image."""
    import torch

    from fetalscope.models import create_model
    from fetalscope.models.bundle import save_bundle

    model = create_model("small_cnn", len(PLANE_CLASSES), input_size=64, widths=(8, 16, 16, 32))
    linear = model.head[-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(-5.0)
        linear.bias[PLANE_CLASSES.index(plane)] = 5.0
    return save_bundle(model, folder, {"name": f"always-{plane}", "task": "planes", "classes": list(PLANE_CLASSES)})


@pytest.fixture(scope="module")
def brain_png(tmp_path_factory) -> Path:
    from fetalscope.data.phantoms import make_phantom

    path = tmp_path_factory.mktemp("img") / "brain.png"
    Image.fromarray(make_phantom("Fetal brain", np.random.default_rng(4), (208, 256))).save(path)
    return path


@pytest.fixture(scope="module")
def always_brain(tmp_path_factory) -> Analyser:
    folder = _constant_plane_bundle(tmp_path_factory.mktemp("b") / "always-brain", "Fetal brain")
    return Analyser(folder, brain_plane_model=None)


def check_findings(findings: dict) -> None:
    probs = {p["label"]: p["probability"] for p in findings["probabilities"]}
    assert list(probs) == CARD["classes"]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5) and all(0 <= p <= 1 for p in probs.values())
    assert findings["label"] == max(probs, key=probs.get)
    assert findings["probability"] == probs[findings["label"]]
    assert findings["model"]["id"] == CARD["name"] == DEFAULT_BRAIN_FINDINGS_MODEL
    assert findings["status"] == CARD["status"] and findings["warning"] == CARD["warning"]


def test_generated_brain_image_gets_findings_with_the_card_warning(always_brain, brain_png):
    a = always_brain.analyse(load_image(brain_png))
    assert a.plane == "Fetal brain" and not a.ood["flag"]
    check_findings(a.brain_findings)
    assert a.brain_findings_skipped is None and a.timings_ms["brain_findings"] > 0
    assert any(CARD["warning"] in w for w in a.warnings)
    record = json.loads(json.dumps(a.to_dict()))  # what the API returns
    assert record["brain_findings"] == a.brain_findings
    row = a.to_row()
    assert row["brain_findings"] == a.brain_findings["label"] and row["brain_findings_status"] == CARD["status"]
    assert sum(row[f"brain_findings_p_{c}"] for c in CARD["classes"]) == pytest.approx(1.0, abs=1e-5)


def test_findings_follow_the_pixels(always_brain, brain_png):
    """Different images give different probabilities: the model really runs on each input."""
    from fetalscope.data.phantoms import make_phantom

    other = make_phantom("Fetal brain", np.random.default_rng(11), (240, 300), brain_plane="Trans-ventricular")
    p1 = always_brain.analyse(load_image(brain_png)).brain_findings
    p2 = always_brain.analyse(UltrasoundImage(pixels=np.repeat(other[..., None], 3, 2), source="b")).brain_findings
    assert p1 is not None and p2 is not None and p1["probabilities"] != p2["probabilities"]


def test_non_brain_and_not_ultrasound_are_skipped_with_a_reason(tmp_path, brain_png, always_brain):
    femur = Analyser(_constant_plane_bundle(tmp_path / "always-femur", "Fetal femur"), brain_plane_model=None)
    a = femur.analyse(load_image(brain_png))
    assert a.plane == "Fetal femur" and a.brain_findings is None
    assert a.brain_findings_skipped == "the plane is 'Fetal femur', not 'Fetal brain'"
    assert not any(CARD["warning"] in w for w in a.warnings) and a.to_row()["brain_findings"] == ""
    noise = np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    b = always_brain.analyse(UltrasoundImage(pixels=noise, source="noise"))
    assert b.ood["flag"] and b.brain_findings is None and "B-mode" in b.brain_findings_skipped


def test_no_findings_model_is_a_clean_skip(tmp_path, brain_png):
    plain = Analyser(_constant_plane_bundle(tmp_path / "b", "Fetal brain"), brain_plane_model=None,
                     brain_findings_model=None)
    a = plain.analyse(load_image(brain_png))
    assert a.plane == "Fetal brain" and a.brain_findings is None
    assert "no brain findings model" in a.brain_findings_skipped
