"""`fetalscope robustness` end to end on the bundled example images laid out as class folders, and its errors."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.evaluate.robustness import DEFAULT_LIMIT
from fetalscope.serve.examples import BUNDLED_DIR

runner = CliRunner()
PLANES = {"Fetal abdomen": "abdomen", "Fetal brain": "brain", "Fetal femur": "femur", "Fetal thorax": "thorax",
          "Other": "other"}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    for plane, stem in PLANES.items():
        (root / plane).mkdir()
        name = f"phantom_{stem}.png" if stem == "other" else f"phantom_fetal_{stem}.png"
        shutil.copy(BUNDLED_DIR / name, root / plane / name)
    return root


def test_runs_end_to_end_and_writes_both_files(examples, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["robustness", "--data", str(examples), "--out", str(out), "--limit", "5",
                                 "--perturbations", "jpeg,ui_chrome", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((out / "robustness.json").read_text())
    assert report["shipped"]["name"] == "sononet-planes" and report["shipped"]["crop_sector"] is True
    assert report["baseline"]["crop_sector"] is False and report["baseline"]["name"] == "plain SonoNet-16"
    assert report["data"]["n_images"] == 5 and report["data"]["labels"] == dict.fromkeys(sorted(PLANES), 1)
    assert [r["row"] for r in report["per_perturbation"]] == [
        "none", "jpeg@0.33", "jpeg@0.67", "jpeg@1.00", "ui_chrome@0.33", "ui_chrome@0.67", "ui_chrome@1.00"]
    clean = report["per_source"][0]
    assert clean["row"] == "all sources" and clean["n"] == 5
    assert clean["shipped"]["correct"] == report["per_perturbation"][0]["shipped"]["correct"]  # same 5 images
    md = (out / "robustness.md").read_text()
    assert "## Accuracy per source" in md and "| jpeg@1.00 | quality 10 |" in md


def test_default_limit_matches_the_engine():
    result = runner.invoke(app, ["robustness", "--help"])
    assert result.exit_code == 0 and f"default: {DEFAULT_LIMIT}" in " ".join(result.output.split())


@pytest.mark.parametrize(("args", "message"), [
    (["--perturbations", "fog"], "unknown perturbation"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--baseline", "resnet"], "unknown baseline"),
])
def test_bad_options_are_clear_errors(examples, tmp_path, args, message):
    result = runner.invoke(app, ["robustness", "--data", str(examples), "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_missing_folders_are_clear_errors(tmp_path):
    result = runner.invoke(app, ["robustness", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no such folder" in result.output
    result = runner.invoke(app, ["robustness", "--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no shared data folder" in result.output
