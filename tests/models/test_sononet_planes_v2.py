"""The default plane bundle sononet-planes, v2 (scripts/train_sononet_planes.py --min-temperature 1): SonoNet-16
fine-tuned by label-corrected self-distillation. Its card carries the training record and the test-split
comparison, consistent with the build's own counts, report.json and report.md; it loads, is the default (the
untrained v1 mapping stays listed as sononet-planes-v1), and classifies real images end to end (when ../shared is
present)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import fetalscope
from fetalscope import config
from fetalscope.data.real_sets import all_real_images
from fetalscope.models.bundle import load_bundle
from fetalscope.models.cards import available_bundles, read_card
from fetalscope.models.sononet import PLANES_COVERED
from fetalscope.pipeline.analyser import DEFAULT_PLANE_MODEL
from fetalscope.pipeline.session import Session
from fetalscope.serve.settings import ServeSettings
from fetalscope.train.recipes.sononet.distilled import distilled_markdown, split_calibration

NAME = "sononet-planes"
V1 = "sononet-planes-v1"
MAX_BUNDLE_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def card() -> dict:
    return read_card(NAME)


def test_v2_is_the_default_and_v1_is_listed_beside_it(card) -> None:
    assert NAME in available_bundles() and V1 in available_bundles()
    assert card["name"] == NAME and card["version"] == "2.0.0" and card["task"] == "planes"
    assert DEFAULT_PLANE_MODEL == ServeSettings().plane_model == NAME
    v1 = read_card(V1)
    assert v1["name"] == V1 and v1["version"] == "1.0.0"
    assert v1["metrics"]["test_accuracy"] < card["metrics"]["test_accuracy"]
    folder = config.bundled_models_dir() / NAME
    assert sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) < MAX_BUNDLE_BYTES


def test_v2_temperature_never_sharpens(card) -> None:
    cal = card["calibration"]
    assert cal["temperature_lower_bound"] == 1.0
    assert cal["temperature_on_sononet_logits"] == pytest.approx(max(1.0, cal["temperature_unbounded_fit"]),
                                                                 rel=1e-5)


def test_v2_card_has_training_record(card) -> None:
    training = card["training"]
    history = training["history"]
    assert len(history) == training["settings"]["epochs"] >= 1
    assert all(math.isfinite(h["kl"]) for h in history)
    assert card["metrics"]["training_seconds"] == training["seconds"] > 0
    assert training["images"]["n"] == sum(training["images"]["counts"].values())
    assert training["view_choice"]["chosen"] in ("sector crop", "whole image resized")
    assert card["preprocess"]["crop_sector"] == (training["view_choice"]["chosen"] == "sector crop")


def test_v2_card_metrics_equal_the_report(card) -> None:
    report = json.loads((config.bundled_models_dir() / NAME / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["accuracy"] == pytest.approx(card["metrics"]["test_accuracy"])
    rows = {r["source"]: r for r in card["comparison"]["rows"]}
    for subset, cell in card["metrics"]["per_source"].items():  # "HC18 (test)": "426/443"
        source = subset.removesuffix(" (test)")
        correct, n = (int(v) for v in cell.split("/"))
        assert rows[source]["n"] == n and rows[source]["v2"]["correct"] == correct
    for r in rows.values():
        for name in card["comparison"]["contenders"]:
            c = r[name]
            assert c["ci_low"] <= c["accuracy"] <= c["ci_high"]
            assert c["accuracy"] == pytest.approx(c["correct"] / r["n"])
    assert rows["all"]["v2"]["accuracy"] == pytest.approx(card["metrics"]["test_accuracy"])


def test_v2_report_section_is_written_from_the_card(card) -> None:
    md = (config.bundled_models_dir() / NAME / "report.md").read_text(encoding="utf-8")
    assert distilled_markdown(card["training"], card["training"]["view_choice"], card["comparison"]) in md


def test_v2_loads_and_its_onnx_twin_agrees(card) -> None:
    from fetalscope.data.transforms import PreprocessConfig, to_tensor
    from fetalscope.imaging import load_image
    from fetalscope.models.runtime import OnnxPredictor, TorchPredictor

    bundle = load_bundle(NAME)
    assert bundle.classes == list(PLANES_COVERED) and bundle.card["version"] == "2.0.0"
    examples = sorted((Path(fetalscope.__file__).parent / "serve" / "examples").glob("phantom_*.png"))
    assert examples, "the bundled example phantoms are missing"
    cfg = PreprocessConfig.from_dict(card["preprocess"])
    x = np.stack([to_tensor(load_image(p), cfg).numpy() for p in examples])
    torch_p = TorchPredictor(bundle.model, bundle.temperature)
    onnx_p = OnnxPredictor(bundle.onnx_path, bundle.temperature, intra_op_threads=1)
    a, b = torch_p.predict_proba(x), onnx_p.predict_proba(x)
    assert np.allclose(a.sum(1), 1, atol=1e-5)
    assert np.abs(a - b).max() < 1e-3
    assert (a.argmax(1) == b.argmax(1)).all()


def test_v2_classifies_real_test_images_end_to_end(shared_data) -> None:
    """Through the one door, on test-split images (never trained on) of the two real planes."""
    _, _, test = split_calibration(all_real_images(shared_data))
    picked = [im for im in test if im.source == "FOCUS"][:2] + [im for im in test if im.source == "FPDB-TV"][:2]
    session = Session(NAME, brain_plane_model=None, brain_findings_model=None, detector=None)
    for im in picked:
        analysis = session.analyse(im.path)
        assert analysis.model["id"] == NAME and analysis.model["version"] == "2.0.0"
        assert analysis.plane == im.plane, im.path
        assert 0.5 < analysis.plane_probability <= 1.0
