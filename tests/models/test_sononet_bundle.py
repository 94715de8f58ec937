"""The bundled SonoNet models: they load by name, their cards are honest and their ONNX twins match."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fetalscope import config
from fetalscope.data.labels import BRAIN_PLANE_CLASSES
from fetalscope.data.transforms import to_tensor
from fetalscope.imaging import load_image
from fetalscope.models.bundle import load_bundle, read_card
from fetalscope.models.runtime import OnnxPredictor, TorchPredictor
from fetalscope.models.sononet import PLANES_COVERED, SONONET_CLASSES, SONONET_TO_PLANES

PLANES = "sononet-planes-v1"  # the untrained SonoNet-16 mapping (the v1 recipe); the default v2 has its own tests
BRAIN = "sononet-brain-planes"
MAX_BUNDLE_BYTES = 25 * 1024 * 1024


def _phantom_batch(n: int = 3) -> torch.Tensor:
    """Preprocessed synthetic fans (the bundle's own preprocessing), so the test needs no shared/."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:330, 0:480]
    fan = (np.abs(np.arctan2(xx - 240, yy + 10)) < 0.7) & (np.hypot(xx - 240, yy + 10) < 330)
    out = []
    for _ in range(n):
        grey = np.clip(rng.gamma(2.0, 35.0, size=fan.shape) * fan, 0, 255).astype(np.uint8)
        out.append(to_tensor(np.repeat(grey[..., None], 3, axis=2), read_preprocess()))
    return torch.stack(out)


def read_preprocess():
    from fetalscope.data.transforms import PreprocessConfig

    return PreprocessConfig.from_dict(read_card(PLANES)["preprocess"])


@pytest.fixture(scope="module")
def planes():
    return load_bundle(PLANES)


def test_bundle_files_card_and_size(planes):
    folder = config.bundled_models_dir() / PLANES
    for name in ("card.json", "model.safetensors", "model.onnx", "card.md", "report.json", "report.md"):
        assert (folder / name).is_file(), name
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < MAX_BUNDLE_BYTES
    card = planes.card
    assert card["classes"] == list(PLANES_COVERED) == planes.classes
    assert card["classes_not_covered"] == ["Maternal cervix"]
    assert card["native_output"]["classes"] == list(SONONET_CLASSES)
    assert card["native_output"]["mapping"] == {k: list(v) for k, v in SONONET_TO_PLANES.items()}
    assert "not a medical device" in card["intended_use"].lower()
    assert card["base_weights"]["licence"] == "Apache-2.0"
    cites = " ".join(card["citations"])
    for who in ("Baumgartner", "van den Heuvel", "Alzubaidi", "Burgos-Artizzu"):
        assert who in cites
    # calibration lives in the model (temperature on SonoNet's logits), so the card's softmax T is 1
    assert card["temperature"] == 1.0
    assert planes.model.head.mapping.temperature == pytest.approx(
        card["calibration"]["temperature_on_sononet_logits"], rel=1e-5)
    md = (folder / "card.md").read_text()
    assert "Maternal cervix" in md and "not a medical device" in md.lower()
    report = json.loads((folder / "report.json").read_text())
    assert report["classes_not_covered"] == ["Maternal cervix"]
    per_class = {c["class"]: c for c in report["metrics"]["per_class"]}
    assert per_class["Fetal brain"]["support"] > 0 and per_class["Fetal thorax"]["support"] > 0
    for absent in ("Fetal abdomen", "Fetal femur", "Other"):  # no real images: no percentage claimed
        assert per_class[absent]["support"] == 0 and per_class[absent]["recall"] is None
    assert per_class["Maternal cervix"]["status"] == "not_covered"


def test_bundle_is_calibrated_sononet_with_native_output(planes):
    x = _phantom_batch()
    with torch.no_grad():
        mapped, native = planes.model.logits_and_native(x)
        assert torch.allclose(planes.model(x), mapped)
    t = planes.model.head.mapping.temperature
    p_native = (native / t).softmax(1)
    members = {c: [SONONET_CLASSES.index(m) for m in SONONET_TO_PLANES[c]] for c in PLANES_COVERED}
    expected = torch.stack([p_native[:, members[c]].sum(1) for c in PLANES_COVERED], 1)
    assert torch.allclose(mapped.softmax(1), expected, atol=1e-5)


def test_onnx_twin_matches_pytorch(planes):
    x = _phantom_batch()
    p_torch = TorchPredictor(planes.model, planes.temperature).predict_proba(x)
    p_onnx = OnnxPredictor(planes.onnx_path, planes.temperature, intra_op_threads=1).predict_proba(x)
    assert p_onnx.shape == (3, len(PLANES_COVERED))
    assert np.abs(p_torch - p_onnx).max() <= 1e-4


def test_real_brain_image_through_onnx(shared_data, planes):
    x = to_tensor(load_image(shared_data / "hc18/training_set/189_HC.png"), planes.preprocess)[None]
    p_onnx = OnnxPredictor(planes.onnx_path, planes.temperature, intra_op_threads=1).predict_proba(x)[0]
    p_torch = TorchPredictor(planes.model, planes.temperature).predict_proba(x)[0]
    assert planes.classes[int(p_onnx.argmax())] == "Fetal brain"
    assert np.abs(p_onnx - p_torch).max() <= 1e-4


def test_brain_subplane_bundle_is_marked_and_loads():
    bundle = load_bundle(BRAIN)
    card = bundle.card
    assert bundle.classes == list(BRAIN_PLANE_CLASSES)
    assert "experimental" in card["status"]
    check = card["metrics"]["source_shortcut_check"]
    assert card["source_confounded"] == check["source_confounded"]
    if check["source_confounded"]:
        assert "source-confounded" in card["status"]
    x = _phantom_batch(2)
    p_torch = TorchPredictor(bundle.model).predict_proba(x)
    p_onnx = OnnxPredictor(bundle.onnx_path, intra_op_threads=1).predict_proba(x)
    assert np.abs(p_torch - p_onnx).max() <= 1e-4
    folder = config.bundled_models_dir() / BRAIN
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < MAX_BUNDLE_BYTES
