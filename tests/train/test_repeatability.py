"""How repeatable the expert CTR is (fetalscope.train.segmenter.repeatability): pairs within a duplicate group,
pixel-identical images found by their pixels (not their names), and the report paragraph that reads the model's
error against that floor; on FOCUS itself, the images annotated twice."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from fetalscope.biometry.ellipse import Ellipse
from fetalscope.data.segsets import SegSample
from fetalscope.train.segmenter.measurement_report import _repeatability_lines
from fetalscope.train.segmenter.repeatability import reference_ctr, reference_repeatability


def _sample(path, group, heart_a, pixels_seed):
    rng = np.random.default_rng(pixels_seed)
    Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(path)
    heart = Ellipse(30, 20, heart_a, heart_a * 0.8, 0).to_dict(None)
    thorax = Ellipse(30, 20, 18, 16, 0).to_dict(None)
    return SegSample(path=path, group=group, ellipses={"heart": heart, "thorax": thorax})


def test_pairs_are_taken_within_groups_and_identical_images_by_their_pixels(tmp_path):
    samples = [_sample(tmp_path / "a1.png", "a", 8.0, 1), _sample(tmp_path / "a2.png", "a", 9.0, 1),  # same pixels
               _sample(tmp_path / "a3.png", "a", 8.5, 2),
               _sample(tmp_path / "b1.png", "b", 7.0, 3),  # alone in its group
               SegSample(path=tmp_path / "c.png", group="a", ellipses={"head": {}})]  # no CTR: left out
    rep = reference_repeatability(samples)
    ctr = [reference_ctr(s) for s in samples[:3]]
    diffs = [abs(ctr[0] - ctr[1]), abs(ctr[0] - ctr[2]), abs(ctr[1] - ctr[2])]
    assert rep["images"] == 4 and rep["pairs"] == 3 and rep["groups_with_pairs"] == 1
    assert rep["mean_absolute_difference"] == pytest.approx(np.mean(diffs))
    assert rep["implied_per_image_mae"] == pytest.approx(np.mean(diffs) / math.sqrt(2))
    assert [p["images"] for p in rep["identical_pairs"]] == [["a1.png", "a2.png"]]
    assert rep["identical_mean_absolute_difference"] == pytest.approx(diffs[0])
    assert ctr[1] > ctr[0]  # a larger heart, a larger ratio


def test_no_group_with_two_images_gives_no_pairs_and_says_so(tmp_path):
    rep = reference_repeatability([_sample(tmp_path / "x.png", "x", 8.0, 0), _sample(tmp_path / "y.png", "y", 8.0, 0)])
    assert rep["pairs"] == 0 and rep["mean_absolute_difference"] is None and rep["identical_pairs"] == []
    text = " ".join(_repeatability_lines(rep, {"estimate": 0.02}))
    assert "cannot be measured" in text


def test_focus_references_of_one_image_annotated_twice_differ(shared_data):
    from fetalscope.data.focus import load_focus

    rep = reference_repeatability(load_focus())
    assert rep["pairs"] >= 20 and len(rep["identical_pairs"]) >= 2
    assert 0.005 < rep["mean_absolute_difference"] < 0.05
    text = "\n".join(_repeatability_lines(rep, {"estimate": 0.0137}))
    assert "pixel-identical pairs" in text and f"{rep['implied_per_image_mae']:.4f}" in text
