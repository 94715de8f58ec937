"""The measurement robustness study (fetalscope.train.recipes.measure_robustness): rescaling perturbations give
the pixel size that keeps millimetres true, the clean row is the bundle report's measurement, a zoomed head is
measured in millimetres alike, letterboxing is scored for the ratio only, and the summary counts what it saw."""

from __future__ import annotations

import json
import shutil

import pytest

from fetalscope.config import bundled_models_dir
from fetalscope.train.recipes.measure_robustness import content_scale, perturbed_rows, render_md, summarise


def test_content_scale_of_each_kind_of_perturbation():
    assert content_scale("zoom_in", 1.0) == pytest.approx(1.3) and content_scale("zoom_out", 0.5) == pytest.approx(0.85)
    assert content_scale("crop", 1.0) == pytest.approx(1 / 0.6)
    assert content_scale("blur", 1.0) == content_scale("rotation", 0.5) == 1.0
    assert content_scale("letterbox", 0.5) is None  # squeezed one way: no single pixel size


@pytest.mark.shared
def test_clean_rows_are_the_reports_and_zoom_keeps_millimetres(shared_data):
    report = json.loads((bundled_models_dir() / "hc18-head" / "report.json").read_text())
    by_name = {r["image"]: r for r in report["per_image"]}
    rows = perturbed_rows("head", "hc18-head", ["zoom_out", "letterbox", "blur"], [0.5], limit=2, log=lambda m: None)
    assert {r["perturbation"] for r in rows} == {"clean", "zoom_out", "blur"}  # no letterbox for millimetres
    for r in rows:
        if r["perturbation"] == "clean":  # the Measurer as users get it (ONNX) gives the report's HC (PyTorch)
            assert r["value"] == pytest.approx(by_name[r["image"]]["hc_pred_mm"], abs=0.1)
            assert r["covered"] == by_name[r["image"]]["hc_in_interval"]
    clean = {r["image"]: r["value"] for r in rows if r["perturbation"] == "clean"}
    for r in rows:
        if r["perturbation"] == "zoom_out":  # the head at 0.85x with the pixel size rescaled: the same millimetres
            assert r["value"] == pytest.approx(clean[r["image"]], rel=0.02)
    summary = summarise(rows, n_boot=50)
    assert [(s["perturbation"], s["images"], s["measured"]) for s in summary] == [
        ("clean", 2, 2), ("zoom_out", 2, 2), ("blur", 2, 2)]
    text = render_md({"head": {"bundle": "hc18-head", "rows": rows, "summary": summary, "seconds": 6.0}})
    assert "| zoom_out | 0.5 | x0.85 | 2/2 |" in text and "Run time: 0.1 min." in text
    ctr = perturbed_rows("cardiothoracic", "focus-ctr", ["letterbox"], [0.5], limit=1, log=lambda m: None)
    assert [r["perturbation"] for r in ctr] == ["clean", "letterbox"] and all("covered" in r for r in ctr)


@pytest.mark.shared
def test_another_split_is_measured_and_named_and_an_empty_one_refused(shared_data, tmp_path):
    from fetalscope.errors import BadInputError
    from fetalscope.train.recipes.measure_robustness import run

    splits = json.loads((bundled_models_dir() / "hc18-head" / "splits.json").read_text())
    early = {row["image"].rsplit("/", 1)[-1] for row in splits["early_stop"]}
    results = run({"head": "hc18-head"}, [0.5], limit=1, log=lambda m: None, split="early_stop", only=["blur"])
    rows = results["head"]["rows"]
    assert [r["perturbation"] for r in rows] == ["clean", "blur"] and rows[0]["image"] in early
    text = render_md(results)
    assert "hc18-head (head), 1 early_stop images" in text and "measured by the bundle named in each section" in text
    shipped = run({"head": "hc18-head"}, [0.5], limit=1, log=lambda m: None, only=["blur"])
    assert "measured by the shipped bundle" in render_md(shipped)
    copy = tmp_path / "hc18-head"  # the same bundle as a folder outside the package: not the shipped report
    shutil.copytree(bundled_models_dir() / "hc18-head", copy)
    trial = run({"head": str(copy)}, [0.5], limit=1, log=lambda m: None, only=["blur"])
    assert not trial["head"]["shipped"] and "measured by the bundle named in each section" in render_md(trial)
    with pytest.raises(BadInputError, match="no 'fold' images"):
        perturbed_rows("head", "hc18-head", ["blur"], [0.5], limit=1, log=lambda m: None, split="fold")
    with pytest.raises(BadInputError):
        run({"head": "hc18-head"}, [0.5], limit=1, only=["no_such_perturbation"])
