"""Pieces of the SonoNet bundle recipe (fetalscope.train.recipes.sononet) on small synthetic records: the
report.md writers, the calibration/test split, the plane mapping and the brain sub-plane study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fetalscope import config
from fetalscope.data.labels import BRAIN_PLANE_CLASSES, PLANE_CLASSES
from fetalscope.data.real_sets import RealImage
from fetalscope.models.sononet import PLANES_COVERED, SONONET_CLASSES
from fetalscope.train.recipes.sononet.common import CALIBRATION_SOURCES, calibration_and_test, split_of
from fetalscope.train.recipes.sononet.markdown import acc_cell, extra_markdown, subplane_markdown
from fetalscope.train.recipes.sononet.outputs import mapped_probs, to_plane_space
from fetalscope.train.recipes.sononet.studies import brain_subplane_study, sector_crop_study

BUNDLED = config.bundled_models_dir()


def _cal_row(subset: str, n: int, correct: int) -> dict:
    return {"subset": subset, "n": n,
            "before": {"ece": 0.12345, "mce": 0.3, "nll": 0.5, "correct": correct - 1},
            "after": {"ece": 0.04321, "mce": 0.2, "nll": 0.25, "correct": correct}}


def synthetic_extra() -> dict:
    return {
        "calibration": {"temperature": 1.23456, "n_calibration": 40, "calibration_counts": {"HC18": 30, "FOCUS": 10},
                        "bias_note": "not fitted", "test": [_cal_row("all test images", 44, 40),
                                                            _cal_row("HC18 (test)", 4, 4)]},
        "per_source": [{"class": "Fetal brain", "source": "HC18", "correct": 36, "n": 40, "accuracy": 0.9},
                       {"class": "Fetal thorax", "source": "FOCUS", "correct": 3, "n": 4, "accuracy": 0.75}],
        "classes_without_real_images": ["Fetal femur", "Other"],
        "hc18_by_hc": [{"head_circumference_mm": "0-100", "correct": 1, "n": 2, "accuracy": 0.5}],
        "sector_crop": {"what": "resize vs crop", "rows": [
            {"source": "HC18", "n": 10, "correct_resize": 7, "correct_sector_crop": 9, "fixed_by_crop": 2,
             "broken_by_crop": 0}]},
        "native_top1": [{"source": "HC18", "label": "Fetal brain", "n": 3,
                         "sononet_top1": {"Brain (Tv.)": 2, "Background": 1}}],
        "onnx": {"parity": {"max_abs_prob_diff": 5.96e-07, "n_images": 43, "tolerance": 1e-4, "same_top1": True},
                 "latency": {"batch1_p50_ms": {"torch_eager": 108.91, "onnxruntime": 59.71},
                             "onnx_over_torch_latency_ratio": 0.548}},
    }


def test_extra_markdown_on_a_synthetic_record():
    text = extra_markdown(synthetic_extra())
    lines = text.split("\n")
    assert lines[:2] == ["", "## SonoNet-specific checks"]
    header = ("| test images | n | ECE before (T=1) | ECE after | NLL before | NLL after | accuracy before | "
              "accuracy after |")
    i = lines.index(header)
    assert lines[i + 1] == "| --- | --- | --- | --- | --- | --- | --- | --- |"
    assert lines[i + 2] == ("| all test images | 44 | 0.1235 | 0.0432 | 0.5000 | 0.2500 | 39/44 (88.6%) | "
                            "40/44 (90.9%) |")
    assert lines[i + 3] == "| HC18 (test) | 4 | 0.1235 | 0.0432 | 0.5000 | 0.2500 | 3/4 | 4/4 |"  # < 10: no %
    assert lines[i + 4] == ""
    assert "Temperature 1.235, fitted on 40 calibration images (HC18: 30, FOCUS: 10)" in text
    assert "| Fetal brain | HC18 | 36/40 (90.0%) |" in lines and "| Fetal thorax | FOCUS | 3/4 |" in lines
    assert "Classes with no real test images here: Fetal femur, Other (no percentage can be given)." in lines
    assert "| 0-100 | 1/2 |" in lines
    assert "| HC18 | 10 | 7/10 (70.0%) | 9/10 (90.0%) | 2 | 0 |" in lines
    assert "| HC18 | Fetal brain | 3 | Brain (Tv.) 2, Background 1 |" in lines
    assert ("Max |probability difference| PyTorch vs ONNX Runtime on 43 real images: 5.96e-07 (tolerance 1e-04). "
            "Batch-1 median latency, 1 thread: PyTorch 108.9 ms, ONNX Runtime 59.7 ms (ONNX/PyTorch latency "
            "ratio 0.55).") in lines
    assert text.endswith("\n")


def test_subplane_markdown_on_a_synthetic_record():
    rows = [{"source": "HC18", "true": "Trans-thalamic", "correct": 18, "n": 20, "accuracy": 0.9,
             "predicted": {"Trans-thalamic": 18, "Trans-ventricular": 2}}]
    study = {
        "features": "f", "classifier": "c",
        "sononet_cb_tv": {"rows": [{"source": "HC18", "true": "Trans-thalamic", "n": 20, "sononet_says_cb": 1,
                                    "sononet_says_tv": 19}]},
        "naive_source_confounded_design": {"trained_on": "naive", "tested_on_other_source": rows},
        "cross_validation": {"what": "CV", "balanced_accuracy": 0.8, "rows": rows},
        "fpdb_only_cross_validation": {"what": "FPDB only", "balanced_accuracy": None, "rows": []},
        "source_shortcut_check": {"trans_thalamic_recall_hc18": 0.9, "trans_thalamic_recall_fpdb": 0.5,
                                  "trans_ventricular_recall_fpdb_tv_png": 0.8,
                                  "trans_ventricular_recall_fpdb_rf_jpg": None, "trans_thalamic_gap": 0.4,
                                  "trans_ventricular_gap": 0.05, "rule": "10 points", "source_confounded": True},
    }
    lines = subplane_markdown(study).split("\n")
    assert "| HC18 | Trans-thalamic | 20 | 1 | 19 |" in lines
    assert lines.count("| HC18 | Trans-thalamic | 18/20 (90.0%) | Trans-thalamic 18, Trans-ventricular 2 |") == 2
    assert "Balanced accuracy 80.0%." in lines and "Balanced accuracy –." in lines  # None: a dash
    verdict = [line for line in lines if line.startswith("Trans-thalamic recall")][0]
    assert "HC18 90.0% vs FETAL_PLANES_DB 50.0% (gap 40.0 points)" in verdict
    assert "vs 256 px JPG (FPDB-brain-rf) – (gap 5.0 points)" in verdict
    assert verdict.endswith("Verdict: SOURCE-CONFOUNDED.")
    assert acc_cell(5, 9) == "5/9" and acc_cell(5, 10) == "5/10 (50.0%)"


@pytest.mark.parametrize(("bundle", "key", "writer"), [("sononet-planes-v1", "sononet", extra_markdown),
                                                        ("sononet-brain-planes", "subplane_study", subplane_markdown)])
def test_writers_reproduce_the_shipped_reports(bundle, key, writer):
    """The sections in the shipped report.md are what the writers make of the record in report.json."""
    folder = BUNDLED / bundle
    if not (folder / "report.json").is_file():
        pytest.skip(f"{bundle} is not bundled")
    record = json.loads((folder / "report.json").read_text(encoding="utf-8"))[key]
    assert writer(record) in (folder / "report.md").read_text(encoding="utf-8")


def _image(source: str, group: str, plane: str = "Fetal brain", brain_plane: str | None = None) -> RealImage:
    return RealImage(Path(f"/nowhere/{source}-{group}.png"), source, plane, brain_plane, group)


def test_calibration_and_test_split_by_group():
    images = [_image(src, f"g{i}") for src in ("HC18", "FOCUS") for i in range(30)]
    images += [_image("FPDB-TV", f"fpdb:{i}") for i in range(10)] + [_image("FPDB-brain-rf", f"fpdb:{i}")
                                                                      for i in range(10)]
    images += [_image("web-abnormal-rf", f"web:{i}") for i in range(5)]
    cal, test = calibration_and_test(images)
    assert len(cal) + len(test) == len(images) and cal and test
    assert not {im.group for im in cal} & {im.group for im in test}
    assert all(im.source in CALIBRATION_SOURCES and split_of(im.group) == "calibration" for im in cal)
    assert all(im in test for im in images if im.source == "web-abnormal-rf")  # evaluation only
    assert split_of("fpdb:3") == split_of("fpdb:3")  # fixed, not random


def test_plane_mapping_sums_sononet_probabilities():
    rng = np.random.default_rng(0)
    native = rng.normal(size=(5, len(SONONET_CLASSES))) * 3
    p = mapped_probs(native, temperature=1.7)
    assert p.shape == (5, len(PLANES_COVERED))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    full = to_plane_space(p)
    assert full.shape == (5, len(PLANE_CLASSES))
    assert (full[:, PLANE_CLASSES.index("Maternal cervix")] == 0).all()
    images = [_image("HC18", f"g{i}") for i in range(5)]
    study = sector_crop_study(images, native, native)  # the same outputs: the crop fixes and breaks nothing
    assert study["rows"][-1]["source"] == "all"
    assert all(r["fixed_by_crop"] == r["broken_by_crop"] == 0 for r in study["rows"])


def test_brain_subplane_study_flags_a_source_shortcut():
    """Synthetic features in which the source, not the sub-plane, is what separates the classes."""
    rng = np.random.default_rng(0)
    tt, tc, tv = BRAIN_PLANE_CLASSES.index("Trans-thalamic"), BRAIN_PLANE_CLASSES.index("Trans-cerebellum"), \
        BRAIN_PLANE_CLASSES.index("Trans-ventricular")
    images, feats = [], []
    source_dir = {"HC18": 0, "FPDB-TV": 1, "FPDB-brain-rf": 2}
    plan = [("HC18", tt, 20)] + [("FPDB-TV", tv, 15)] + [("FPDB-brain-rf", k, 15) for k in (tt, tc, tv)]
    for source, k, n in plan:
        for i in range(n):
            images.append(_image(source, f"{source}:{k}:{i}", brain_plane=BRAIN_PLANE_CLASSES[k]))
            f = rng.normal(size=128)
            f[source_dir[source]] += 4.0  # the source is easy to see
            f[10 + k] += 0.5  # the anatomy barely
            feats.append(f)
    native = rng.normal(size=(len(images), len(SONONET_CLASSES)))
    result = brain_subplane_study(images, {"features": np.array(feats), "native": native})
    study = result["study"]
    assert result["weight"].shape == (len(BRAIN_PLANE_CLASSES), 128) and result["bias"].shape == (3,)
    assert result["oof_logits"].shape == (len(images), 3)
    sc = study["source_shortcut_check"]
    assert sc["trans_thalamic_recall_hc18"] > sc["trans_thalamic_recall_fpdb"]
    assert result["confounded"] is sc["source_confounded"] is True
    assert {r["source"] for r in study["counts"]} == set(source_dir)
    json.dumps(study)  # goes into card.json as it is
    assert subplane_markdown(study).count("### ") == 5
