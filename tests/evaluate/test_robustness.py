"""The robustness report on a tiny generated set with two small real classifiers (a brightness threshold and
a constant), whose accuracies can be worked out by hand: table structure, intervals, paired differences."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError
from fetalscope.evaluate.robustness import (
    Contender,
    RobustItem,
    robustness_report,
    score_row,
    stratified_subsample,
)
from fetalscope.evaluate.robustness_report import (
    SECTION_START,
    update_report_section,
    write_robustness,
)
from fetalscope.imaging.perturb import REPORT_STRENGTHS
from fetalscope.models.runtime import Predictor

CLASSES = ["dark", "bright"]
GREY = PreprocessConfig(input_size=(16, 16), channels=1, normalisation="mean_std", mean=(0.0,), std=(1.0,),
                        scale=1.0, crop_sector=False)


class Brightness(Predictor):
    """Says ``bright`` when the mean grey level is above ``threshold`` (inputs in [0, 1])."""

    name = "brightness"

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def predict_logits(self, batch) -> np.ndarray:
        mean = np.asarray(batch, dtype=np.float32).reshape(len(batch), -1).mean(axis=1)
        return np.stack([self.threshold - mean, mean - self.threshold], axis=1).astype(np.float32)


class Constant(Predictor):
    name = "constant"

    def predict_logits(self, batch) -> np.ndarray:
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(batch), 1))


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> list[RobustItem]:
    """Two sources of 12 images each (6 patients x 2): dark (grey ~60) and bright (grey ~190) textured squares."""
    root = tmp_path_factory.mktemp("robust")
    rng = np.random.default_rng(0)
    out = []
    for source in ("A", "B"):
        for k in range(12):
            label = CLASSES[k % 2]
            level = 60 if label == "dark" else 190
            grey = np.clip(level + rng.normal(0, 20, (40, 48)), 0, 255).astype(np.uint8)
            path = root / f"{source}_{k}.png"
            cv2.imwrite(str(path), grey)
            out.append(RobustItem(path, label, source, f"{source}:{k // 2}"))
    return out


def contenders() -> tuple[Contender, Contender]:
    return (Contender("threshold", "brightness > 0.5", Brightness(), GREY, CLASSES),
            Contender("constant", "always dark", Constant(), GREY, CLASSES))


def test_table_structure_accuracies_and_intervals(items):
    shipped, baseline = contenders()
    seen = []
    report = robustness_report(items, shipped, baseline, perturbations=["gain_up", "speckle"], limit=10, n_boot=200,
                               on_progress=lambda done, total: seen.append((done, total)))
    assert [r["row"] for r in report["per_source"]] == ["all sources", "A", "B"]
    assert [r["row"] for r in report["per_perturbation"]] == ["none"] + [
        f"{name}@{s:.2f}" for name in ("gain_up", "speckle") for s in REPORT_STRENGTHS]
    assert report["data"]["subsample"]["sources"] == {"A": 5, "B": 5}
    assert seen[-1][0] == seen[-1][1] == 24 + 10 * 7
    clean = report["per_source"][0]
    assert clean["shipped"]["estimate"] == 1.0 and clean["baseline"]["estimate"] == 0.5  # half the images are dark
    assert clean["n"] == 24 and clean["n_groups"] == 12
    for row in report["per_source"] + report["per_perturbation"]:
        for model in ("shipped", "baseline"):
            cell = row[model]
            assert cell["lower"] <= cell["estimate"] <= cell["upper"]
            assert cell["estimate"] == pytest.approx(cell["correct"] / row["n"])
        assert row["difference"]["estimate"] == pytest.approx(row["shipped"]["estimate"] - row["baseline"]["estimate"])
        assert row["at_or_above"] == (row["shipped"]["correct"] >= row["baseline"]["correct"])
    # gain x2.5 makes every dark square bright: the threshold model then misses all dark ones
    strong_gain = next(r for r in report["per_perturbation"] if r["row"] == "gain_up@1.00")
    dark_in_subsample = sum(1 for it in stratified_subsample(items, 10) if it.label == "dark")
    assert strong_gain["shipped"]["correct"] == 10 - dark_in_subsample
    assert strong_gain["baseline"]["correct"] == dark_in_subsample  # the constant model does not care
    assert report["summary"]["rows_compared"] == 3 + 1 + 6
    assert report["summary"]["rows_below"] == [r["row"] for r in report["per_source"] + report["per_perturbation"]
                                               if not r["at_or_above"]]


def test_report_is_reproducible_and_written(items, tmp_path):
    shipped, baseline = contenders()
    kwargs = dict(perturbations=["crop"], limit=6, n_boot=100, seed=3)
    first = robustness_report(items, shipped, baseline, **kwargs)
    second = robustness_report(items, shipped, baseline, **kwargs)
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    first["seconds"] = 0.0
    json_path, md_path = write_robustness(first, tmp_path)
    assert json.loads(json_path.read_text())["per_perturbation"][1]["row"] == "crop@0.33"
    md = md_path.read_text()
    header = ("| perturbation@strength | setting | n (groups) | shipped accuracy [95% CI] | baseline accuracy [95% CI] "
              "| difference [95% CI] | at or above baseline |")
    assert header in md and "| crop@1.00 | keep 60% of each side |" in md
    report_md = tmp_path / "report.md"
    report_md.write_text("# Report\n\nbody\n")
    update_report_section(report_md, first)
    update_report_section(report_md, first)  # replaces, does not repeat
    text = report_md.read_text()
    assert text.startswith("# Report\n\nbody\n") and text.count(SECTION_START) == 1
    assert "## Robustness" in text and "(robustness.md)" in text


def test_without_baseline_rows_are_not_compared(items):
    shipped, _ = contenders()
    report = robustness_report(items, shipped, None, perturbations=["blur"], limit=4, n_boot=50)
    assert all(r["baseline"] is None and r["at_or_above"] is None for r in report["per_perturbation"])
    assert report["summary"]["rows_compared"] == 0 and not report["summary"]["target_met"]


def test_subsample_is_stratified_and_seeded(items):
    sub = stratified_subsample(items + items[:3], 7, seed=1)
    assert len(sub) == 7 and sub == stratified_subsample(items + items[:3], 7, seed=1)
    assert {it.source for it in sub} == {"A", "B"}
    lopsided = items[:12] + items[12:14]  # source B has only 2 images: A gets the rest
    assert [it.source for it in stratified_subsample(lopsided, 8)].count("B") == 2


def test_bad_input(items, tmp_path):
    shipped, baseline = contenders()
    with pytest.raises(BadInputError, match="unknown perturbation"):
        robustness_report(items, shipped, baseline, perturbations=["fog"], limit=4)
    with pytest.raises(BadInputError, match="strengths"):
        robustness_report(items, shipped, baseline, strengths=[1.5], limit=4)
    with pytest.raises(BadInputError, match="missing"):
        robustness_report([RobustItem(tmp_path / "gone.png", "dark", "A", "g")], shipped, baseline)
    with pytest.raises(BadInputError):
        robustness_report([], shipped, baseline)
    with pytest.raises(BadInputError):
        score_row([True], [True, False], ["g"])
