"""`fetalscope brain-findings` on a tiny generated folder-per-class set (a user's own ventriculomegaly set
in layout), and the brain findings columns of `fetalscope predict`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.data.labels import PLANE_CLASSES

runner = CliRunner()


@pytest.fixture(scope="module")
def own_set(tmp_path_factory) -> Path:
    """``normal/`` (trans-thalamic phantoms) and ``ventriculomegaly/`` (trans-ventricular phantoms), 64 px."""
    from fetalscope.data.phantoms import make_phantom

    root = tmp_path_factory.mktemp("own") / "set"
    rng = np.random.default_rng(0)
    for cls, sub in (("normal", "Trans-thalamic"), ("ventriculomegaly", "Trans-ventricular")):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            pixels = make_phantom("Fetal brain", rng, (64, 64), brain_plane=sub)
            Image.fromarray(pixels).save(root / cls / f"{cls[:4]}{i}.png")
    return root


@pytest.fixture(scope="module")
def study(own_set, tmp_path_factory) -> tuple[Path, Path, object]:
    out = tmp_path_factory.mktemp("study") / "out"
    bundle = out.parent / "my-bundle"
    result = runner.invoke(app, ["brain-findings", str(own_set), "--out", str(out), "--bundle", str(bundle),
                                 "--model", "small_cnn", "--image-size", "64", "--epochs", "1", "--head-epochs", "1",
                                 "--batch-size", "8", "--name", "my-vm-model"])
    return out, bundle, result


def test_brain_findings_verb_writes_the_shortcut_report(study, own_set):
    out, _bundle, result = study
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["positive_class"] == "ventriculomegaly"  # the class not called normal
    assert report["data"]["classes"] == ["normal", "ventriculomegaly"]
    assert sum(report["data"]["counts"].values()) == 20
    assert report["status"] == "research, unvalidated"  # own data: not the Roboflow demonstration text
    nuisance = report["shortcut"]["nuisance_auc"]
    assert {"border", "noise", "size", "all non-anatomical"} <= set(nuisance)
    for v in nuisance.values():
        assert 0.0 <= v["auc"] <= 1.0 and v["n_features"] > 0
    assert nuisance["size"]["auc"] == 0.5  # every image is 64 x 64: size carries no information
    masking = report["shortcut"]["masking"]
    assert 0.0 <= masking["plain_auc"] <= 1.0 and masking["no_head_auc"] is None  # no head boxes in folders
    assert report["model"]["test_images"] == report["data"]["counts"]["test"]
    assert 0.0 <= report["model"]["test_accuracy"] <= 1.0 and report["conclusions"]
    md = (out / "report.md").read_text()
    border = nuisance["border"]
    assert "Shortcut check 1" in md and f"| border | {border['n_features']} | {border['auc']} |" in md


def test_the_bundle_serves_as_the_pipeline_findings_model(study, own_set):
    from fetalscope.imaging import load_image
    from fetalscope.pipeline.brain_findings import BrainFindingsModel

    _out, bundle, result = study
    assert result.exit_code == 0, result.output
    card = json.loads((bundle / "card.json").read_text())
    assert card["name"] == "my-vm-model" and card["status"] == "research, unvalidated" and card["warning"]
    assert card["shortcut_check"]["nuisance_auc"]["border"] == json.loads(
        (bundle / "shortcut_report.json").read_text())["shortcut"]["nuisance_auc"]["border"]["auc"]
    model = BrainFindingsModel(bundle)
    findings = model.findings(load_image(next((own_set / "normal").glob("*.png"))))
    assert [p["label"] for p in findings["probabilities"]] == ["normal", "ventriculomegaly"]
    assert sum(p["probability"] for p in findings["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert findings["warning"] == card["warning"] and findings["status"] == card["status"]


def test_an_existing_bundle_is_not_overwritten(study, own_set, tmp_path):
    _out, bundle, _ = study
    before = (bundle / "card.json").read_bytes()
    result = runner.invoke(app, ["brain-findings", str(own_set), "--out", str(tmp_path / "o"), "--bundle",
                                 str(bundle), "--model", "small_cnn"])
    assert result.exit_code == 2 and "already holds a model bundle" in " ".join(result.output.split())
    assert (bundle / "card.json").read_bytes() == before and not (tmp_path / "o").exists()


def test_one_class_is_refused(tmp_path, own_set):
    import shutil

    shutil.copytree(own_set / "normal", tmp_path / "set" / "normal")
    result = runner.invoke(app, ["brain-findings", str(tmp_path / "set"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "exactly 2 classes" in " ".join(result.output.split())


def test_predict_has_brain_findings_columns(tmp_path):
    """A plane model that always answers Fetal brain routes every image to the shipped findings model."""
    import torch

    from fetalscope.data.phantoms import make_phantom
    from fetalscope.models import create_model
    from fetalscope.models.bundle import read_card, save_bundle

    model = create_model("small_cnn", len(PLANE_CLASSES), input_size=64, widths=(8, 16, 16, 32))
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.fill_(-5.0)
        model.head[-1].bias[PLANE_CLASSES.index("Fetal brain")] = 5.0
    plane = save_bundle(model, tmp_path / "always-brain", {"name": "always-brain", "task": "planes",
                                                           "classes": list(PLANE_CLASSES)})
    image = tmp_path / "brain.png"
    Image.fromarray(make_phantom("Fetal brain", np.random.default_rng(2), (208, 256))).save(image)
    out = tmp_path / "res.csv"
    result = runner.invoke(app, ["predict", str(image), "--model", str(plane), "--output", str(out)])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(out.open()))
    card = read_card("brain-normal-abnormal-demo")
    assert row["plane"] == "Fetal brain" and row["brain_findings_status"] == card["status"]
    probs = [float(row[f"brain_findings_p_{c}"]) for c in card["classes"]]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert row["brain_findings"] == card["classes"][int(np.argmax(probs))]
    shown = runner.invoke(app, ["predict", str(image), "--model", str(plane)])
    assert shown.exit_code == 0 and f"brain findings: {row['brain_findings']}" in shown.output
    assert " ".join(card["warning"].split()[:6]) in " ".join(shown.output.split())
