"""The `fetalscope` verbs, run as a real subprocess and in-process, on real files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.data.labels import PLANE_CLASSES

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    from fetalscope.models import create_model
    from fetalscope.models.bundle import save_bundle

    model = create_model("small_cnn", num_classes=6)
    folder = tmp_path_factory.mktemp("bundle")
    return save_bundle(model, folder, {"name": "tiny-test", "task": "planes", "classes": list(PLANE_CLASSES)})


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    from fetalscope.data.phantoms import make_phantom

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, label in enumerate(PLANE_CLASSES[:3]):
        Image.fromarray(make_phantom(label, rng, (80, 96))).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def test_predict_csv_has_every_class_probability(tiny_bundle, image_folder, tmp_path):
    out = tmp_path / "res.csv"
    result = runner.invoke(app, ["predict", str(image_folder), "--model", str(tiny_bundle), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    good = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    assert len(good) == 3 and len(bad) == 1
    assert "broken.png" in bad[0]["image"] and "not a readable image" in bad[0]["error"]
    for r in good:
        probs = [float(r[f"p_{c}"]) for c in PLANE_CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert r["plane"] == PLANE_CLASSES[int(np.argmax(probs))]


def test_predict_json_matches_analysis_schema(tiny_bundle, image_folder, tmp_path):
    out = tmp_path / "res.json"
    result = runner.invoke(app, ["predict", str(image_folder / "img0.png"), "--model", str(tiny_bundle),
                                 "--output", str(out), "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    (record,) = payload["results"]
    assert record["image"].endswith("img0.png")
    assert [p["label"] for p in record["probabilities"]] == list(PLANE_CLASSES)
    assert record["model"]["id"] == "tiny-test"
    assert {"plane", "plane_probability", "uncertain", "uncertainty", "ood", "warnings"} <= set(record)


def test_predict_bad_inputs_exit_2_and_write_nothing(tiny_bundle, image_folder, tmp_path):
    out = tmp_path / "never.csv"
    result = runner.invoke(app, ["predict", str(image_folder / "broken.png"), "--model", str(tiny_bundle),
                                 "--output", str(out)])
    assert result.exit_code == 2
    assert "nothing written" in result.output and not out.exists()
    missing = runner.invoke(app, ["predict", str(tmp_path / "nope.png"), "--model", str(tiny_bundle)])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["predict", str(empty), "--model", str(tiny_bundle)])
    assert result.exit_code == 2 and "contains no images" in result.output
    result = runner.invoke(app, ["predict", str(image_folder), "--model", str(tmp_path / "no-bundle")])
    assert result.exit_code == 2 and "no model bundle" in result.output
    result = runner.invoke(app, ["predict", str(image_folder), "--model", str(tiny_bundle), "--output", "x.txt"])
    assert result.exit_code == 2 and ".csv or .json" in result.output


def test_export_writes_onnx_with_parity(tiny_bundle):
    result = runner.invoke(app, ["export", str(tiny_bundle)])
    assert result.exit_code == 0, result.output
    assert (tiny_bundle / "model.onnx").is_file()
    diff = float(result.output.split("=")[-1].split()[0])
    assert diff <= 1e-4


def test_entry_point_runs_as_a_real_process(tiny_bundle, image_folder):
    proc = subprocess.run([sys.executable, "-m", "fetalscope", "predict", str(image_folder / "img1.png"),
                           "--model", str(tiny_bundle)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, plane, prob = proc.stdout.strip().split("\t")[:3]
    assert name.endswith("img1.png") and plane in PLANE_CLASSES and 0 < float(prob) <= 1
    version = subprocess.run([sys.executable, "-m", "fetalscope", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("fetalscope ")


def test_explain_takes_method_parameters_colour_map_and_opacity(tiny_bundle, image_folder, tmp_path):
    image = str(image_folder / "img0.png")
    base = ["explain", image, "--model", str(tiny_bundle), "--methods", "gradcam,occlusion"]
    out_a = tmp_path / "a"
    result = runner.invoke(app, [*base, "-o", str(out_a), "-p", "occlusion.window=32", "-p", "occlusion.stride=16",
                                 "--cmap", "viridis", "--alpha", "0.8"])
    assert result.exit_code == 0, result.output
    record = json.loads((out_a / "index.json").read_text())["images"][0]
    by_method = record["explanations"]
    assert by_method["occlusion"]["params"]["window"] == 32 and by_method["occlusion"]["params"]["stride"] == 16
    assert "window" not in by_method["gradcam"]["params"]
    out_b = tmp_path / "b"
    assert runner.invoke(app, [*base, "-o", str(out_b), "-p", "occlusion.window=32", "-p", "occlusion.stride=16",
                               "--alpha", "0.2"]).exit_code == 0
    for png in sorted(out_a.glob("*.png")):
        a = np.asarray(Image.open(png), dtype=np.int16)
        b = np.asarray(Image.open(out_b / png.name), dtype=np.int16)
        assert a.shape == b.shape and np.abs(a - b).mean() > 1  # other colours, other opacity
    assert np.array_equal(np.load(out_a / "img0_occlusion.npy"), np.load(out_b / "img0_occlusion.npy"))

    bad = runner.invoke(app, [*base, "-o", str(tmp_path / "c"), "-p", "windw=32"])
    assert bad.exit_code == 2 and "mean 'window'" in " ".join(bad.output.split())
    bad = runner.invoke(app, [*base, "-o", str(tmp_path / "c"), "--cmap", "viridiss"])
    assert bad.exit_code == 2 and "unknown colour map" in bad.output


def _always_brain_bundle(folder: Path) -> Path:
    """A plane bundle whose head says 'Fetal brain' for every image (weights zero, bias on brain)."""
    import torch

    from fetalscope.models import create_model
    from fetalscope.models.bundle import save_bundle

    model = create_model("small_cnn", num_classes=6)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[PLANE_CLASSES.index("Fetal brain")] = 5.0
    return save_bundle(model, folder, {"name": "always-brain", "task": "planes", "classes": list(PLANE_CLASSES)})


def test_predict_detects_and_measures_through_the_session(image_folder, tmp_path):
    """``predict --detect --measure auto`` runs the bundled detector and head biometry on images the plane
    model calls Fetal brain: the JSON carries the records, the CSV their columns."""
    bundle = _always_brain_bundle(tmp_path / "brain-bundle")
    out = tmp_path / "res.json"
    files = [str(image_folder / "img0.png"), str(image_folder / "img1.png")]
    result = runner.invoke(app, ["predict", *files, "--model", str(bundle), "--detect", "--measure", "auto",
                                 "--pixel-size", "0.2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())["results"]
    assert len(records) == 2
    for r in records:
        assert r["plane"] == "Fetal brain"
        if r["ood"]["flag"]:  # the phantoms may not pass as ultrasound: then nothing runs, and it says why
            assert r["detections"] is None and r["measurement"] is None and r["measurement_skipped"]
            continue
        assert r["detections"]["model"] == "brain-structures" and isinstance(r["detections"]["boxes"], list)
        assert r["measurement"]["measurement"] == "head" and r["measurement"]["pixel_size_mm"] == 0.2
    csv_out = tmp_path / "res.csv"
    result = runner.invoke(app, ["predict", *files, "--model", str(bundle), "--measure", "head", "--output",
                                 str(csv_out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(csv_out.open()))
    assert all(r["measurement"] == "head" and "hc_mm" in r for r in rows)
    bad = runner.invoke(app, ["predict", *files, "--model", str(bundle), "--measure", "knee"])
    assert bad.exit_code == 2 and "--measure must be one of" in bad.output


def test_predict_writes_one_pdf_report_per_image(tiny_bundle, image_folder, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    out, reports = tmp_path / "res.json", tmp_path / "reports"
    result = runner.invoke(app, ["predict", str(image_folder), "--model", str(tiny_bundle), "--output", str(out),
                                 "--pdf", str(reports)])
    assert result.exit_code == 0, result.output
    assert "3 PDF report(s)" in result.output
    records = {Path(r["image"]).stem: r for r in json.loads(out.read_text())["results"]}
    written = sorted(reports.glob("*.pdf"))
    assert [p.name for p in written] == [f"fetalscope-report-img{i}.pdf" for i in range(3)]  # none for broken.png
    for path in written:
        record = records[path.stem.removeprefix("fetalscope-report-")]
        text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(path).pages).split())
        assert f"Predicted plane: {record['plane']} ({100 * record['plane_probability']:.1f}%)" in text
    a_file = tmp_path / "a-file.pdf"
    a_file.write_bytes(b"x")
    result = runner.invoke(app, ["predict", str(image_folder / "img0.png"), "--model", str(tiny_bundle),
                                 "--pdf", str(a_file)])
    assert result.exit_code == 2 and "--pdf must be a folder" in result.output


def test_predict_quality_adds_the_checklist_to_rows_and_lines(tmp_path):
    """`predict --quality` grades head and four-chamber images with the same checklist `fetalscope quality`
    gives (score, grade, failed criteria in the CSV row), and says why the others are not assessed."""
    from fetalscope.serve.examples import BUNDLED_DIR

    images = [BUNDLED_DIR / "phantom_fetal_thorax.png", BUNDLED_DIR / "phantom_other.png"]
    out, q_out = tmp_path / "res.json", tmp_path / "q.json"
    result = runner.invoke(app, ["predict", *map(str, images), "--quality", "--output", str(out)])
    assert result.exit_code == 0, result.output
    graded = runner.invoke(app, ["quality", *map(str, images), "--output", str(q_out)])
    assert graded.exit_code == 0, graded.output
    by_image = {Path(r["image"]).name: r["quality"] for r in json.loads(out.read_text())["results"]}
    expected = {Path(r["image"]).name: r for r in json.loads(q_out.read_text())}
    thorax = by_image["phantom_fetal_thorax.png"]
    assert thorax["assessed"] and thorax["score"] == expected["phantom_fetal_thorax.png"]["score"]
    assert [c["passed"] for c in thorax["criteria"]] == [c["passed"] for c in
                                                         expected["phantom_fetal_thorax.png"]["criteria"]]
    assert not by_image["phantom_other.png"]["assessed"] and by_image["phantom_other.png"]["score"] is None
    lines = runner.invoke(app, ["predict", str(images[0]), "--quality"])
    assert lines.exit_code == 0 and f"quality: {thorax['score']} ({thorax['grade']})" in lines.output
