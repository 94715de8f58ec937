"""evaluate_predictions end to end: the report dict, report.json, report.md and the plot files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax
from sklearn.metrics import accuracy_score, f1_score

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.evaluate import evaluate_predictions


def synthetic_model_outputs(n: int, seed: int, *, sharpen: float = 3.0):
    """Plane-classifier-like outputs: labels drawn from softmax(z) over 6 classes, 'Maternal cervix'
    (index 4) never output by the model (logit -inf), 'Other' (index 5) rare; the model reports
    ``sharpen * z``, so it is over-confident and temperature scaling should find T near ``sharpen``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, 6))
    z[:, 5] -= 3.5
    z[:, 4] = -np.inf
    p = softmax(z, axis=1)
    y = np.minimum((rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), 5)
    return sharpen * z, y


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    z, y = synthetic_model_outputs(300, seed=1)
    y[:15] = 4  # 15 test images of a class the model does not cover
    zv, yv = synthetic_model_outputs(300, seed=0)
    patients = np.array([f"patient{i // 3:03d}" for i in range(300)])
    meta = [{"Operator": "Op1" if i < 150 else ("Op2" if i < 294 else "Op3"),
             "US_Machine": "Voluson E6" if i % 2 else "Aloka"} for i in range(300)]
    probs = softmax(z, axis=1)
    report = evaluate_predictions(y, probs, PLANE_CLASSES, groups=patients, meta=meta, val_logits=zv,
                                  val_labels=yv, test_logits=z, classes_not_covered=["Maternal cervix"],
                                  out_dir=out, title="Plane classifier (synthetic)", n_boot=300)
    return out, report, y, probs


def test_report_files_are_written_and_parse(written):
    out, report, _, _ = written
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == "fetalscope.evaluation/1"
    assert data["title"] == "Plane classifier (synthetic)"
    assert data == json.loads(json.dumps(report))  # the returned dict is what was written
    assert set(data["plots"]) == {"confusion_counts", "confusion_normalized", "roc", "reliability"}
    for files in data["plots"].values():
        with Image.open(out / files["png"]) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 200
        json.loads((out / files["json"]).read_text())
    roc = json.loads((out / "roc.json").read_text())["curves"]
    assert "Maternal cervix" not in roc and "Fetal brain" in roc
    cm_json = json.loads((out / "confusion_counts.json").read_text())
    assert cm_json["values"] == data["metrics"]["confusion_matrix"]["counts"]


def test_markdown_embeds_every_plot_and_is_readable(written):
    out, report, _, _ = written
    md = (out / "report.md").read_text()
    assert md.startswith("# Plane classifier (synthetic)")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(f["png"] for f in report["plots"].values())
    assert all((out / link).is_file() and not link.startswith("/") for link in links)
    for heading in ("## Summary", "## Per class", "## Calibration", "## Breakdown by acquisition",
                    "### By Operator", "### By US_Machine"):
        assert heading in md
    acc = report["confidence_intervals"]["accuracy"]
    assert f"{100 * acc['lower']:.1f}% to {100 * acc['upper']:.1f}%" in md
    assert "resamples of 100 patients" in md


def test_numbers_match_independent_computation(written):
    _, report, y, probs = written
    pred = probs.argmax(axis=1)
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    scored = [PLANE_CLASSES.index(c) for c in m["averaged_over"]]
    assert "Maternal cervix" not in m["averaged_over"]
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, labels=scored, average="weighted"))
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1"):
        ci = report["confidence_intervals"][key]
        assert ci["estimate"] == pytest.approx(m[key])
        assert ci["lower"] <= ci["estimate"] <= ci["upper"]
        assert ci["unit"] == "group" and ci["n_units"] == 100
    assert report["n_groups"] == 100


def test_not_covered_class_reads_not_covered_not_zero(written):
    out, report, y, _ = written
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| Maternal cervix |"))
    assert "not covered" in row and "0.0%" not in row and "0.000" not in row
    cervix = report["metrics"]["per_class"][4]
    assert cervix["status"] == "not_covered" and cervix["f1"] is None
    assert cervix["support"] == int((y == 4).sum()) > 0
    assert report["classes_not_covered"] == ["Maternal cervix"]


def test_small_class_shows_counts_not_a_percentage(written):
    out, report, _, _ = written
    _, _, y, _ = written
    other = report["metrics"]["per_class"][5]
    assert other["support"] == int((y == 5).sum()) == 6 and other["too_few"] is True
    assert other["recall"] == pytest.approx(other["correct"] / 6)  # JSON keeps the number
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| Other |"))
    assert "%" not in row
    assert f"{other['correct']} of 6 found" in row and "too few" in row
    op3 = next(line for line in md.splitlines() if line.startswith("| Op3 |"))
    assert "too few" in op3 and "%" not in op3


def test_calibration_before_and_after_temperature(written):
    _, report, _, _ = written
    cal = report["calibration"]
    assert cal["logits_source"] == "test_logits"
    assert cal["temperature"] == pytest.approx(3.0, rel=0.25)  # the synthetic logits are 3x too sharp
    assert cal["after"]["nll"] < cal["before"]["nll"]
    assert cal["after"]["ece"] < cal["before"]["ece"]
    assert cal["scope"] == "test images of covered classes"
    assert cal["n_images"] == report["n_images"] - report["metrics"]["per_class"][4]["support"]


def test_report_without_extras_and_with_tiny_test_set(tmp_path):
    # 5 images, no groups/meta/logits: still a full report, counts instead of percentages
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    report = evaluate_predictions([0, 1, 1, 1, 0], probs, ["normal", "abnormal"], out_dir=tmp_path,
                                  n_boot=200)
    assert report["breakdowns"] is None and report["calibration"]["after"] is None
    assert report["calibration"]["before"]["ece"] >= 0
    assert report["confidence_intervals"]["accuracy"]["unit"] == "image"
    md = (tmp_path / "report.md").read_text()
    assert "4/5 correct" in md and "too few for percentages" in md
    assert "No metadata given." in md
    assert (tmp_path / "reliability.png").is_file()


def test_interval_from_few_patients_is_flagged_unreliable():
    z, y = synthetic_model_outputs(60, seed=2)
    patients = [f"p{i % 3}" for i in range(60)]
    report = evaluate_predictions(y, softmax(z, axis=1), PLANE_CLASSES, groups=patients, n_boot=200)
    ci = report["confidence_intervals"]["accuracy"]
    assert ci["n_units"] == 3 and ci["too_few_units"] is True
    from fetalscope.evaluate import render_markdown

    row = next(line for line in render_markdown(report).splitlines() if line.startswith("| Accuracy |"))
    assert "only 3 patients: unreliable" in row


def test_headline_names_the_classes_the_numbers_cover(tmp_path):
    """A test set without some covered classes says so above the summary (and per class: no test images)."""
    z, y = synthetic_model_outputs(200, seed=3)
    keep = np.isin(y, [1, 3])  # brain and thorax only, as the shipped SonoNet bundle's test split
    report = evaluate_predictions(y[keep], softmax(z[keep], axis=1), PLANE_CLASSES,
                                  classes_not_covered=["Maternal cervix"], out_dir=tmp_path, n_boot=50)
    md = (tmp_path / "report.md").read_text()
    support = {c["class"]: c["support"] for c in report["metrics"]["per_class"]}
    line = next(x for x in md.splitlines() if x.startswith("**Measured on test images"))
    assert f"Fetal brain ({support['Fetal brain']})" in line and f"Fetal thorax ({support['Fetal thorax']})" in line
    assert "of the 5 classes the model covers" in line
    assert "No test images of Fetal abdomen, Fetal femur, Other" in line
    assert md.index(line) < md.index("## Summary")
    assert "| Fetal femur | 0 |" in md and "no test images" in md


def test_no_coverage_line_when_every_covered_class_is_tested(written):
    out, _, _, _ = written
    assert "**Measured on test images" not in (out / "report.md").read_text()
