"""The HC interval: split-conformal quantiles hold their coverage on new draws, every form of rule gives the
half-width it documents, cross-fitting never calibrates a fold on itself, a per-band rule keeps coverage within
bands where one constant does not, and a bundle's card rule reaches the measurement record (and is refused when
malformed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fetalscope.biometry.ellipse import Ellipse
from fetalscope.biometry.measure import Measurer
from fetalscope.biometry.segbundle import save_seg_bundle
from fetalscope.biometry.uncertainty import (
    IntervalRule,
    band_index,
    conformal_quantile,
    coverage_and_width,
    views_sd,
)
from fetalscope.config import bundled_models_dir
from fetalscope.errors import UnsupportedError
from fetalscope.imaging import UltrasoundImage
from fetalscope.models.segmentation import EllipseUNet, segmentation_preprocess
from fetalscope.train.segmenter.interval_calibration import Candidate, calibrate, choose, cross_fitted, eligible


def test_conformal_quantile_covers_new_draws():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(300):
        calibration, new = rng.exponential(size=99), rng.exponential()
        hits.append(new <= conformal_quantile(calibration, 0.9))
    assert 0.86 <= np.mean(hits) <= 0.95  # nominal 0.9: exactly 90/100 in expectation for 99 calibration scores
    assert conformal_quantile(np.arange(1.0, 11.0), 0.9) == 10.0  # ceil(11 x 0.9) = 10th of 10
    assert conformal_quantile(np.arange(1.0, 6.0), 0.9) == float("inf")  # too few to promise 90%
    with pytest.raises(UnsupportedError, match="coverage"):
        conformal_quantile([1.0, 2.0], 1.5)


def test_every_form_gives_its_documented_half_width():
    assert views_sd([100.0, 102.0]) == pytest.approx(1.0) and views_sd([100.0]) == 0.0
    assert IntervalRule("constant", 4.0, 0.9, unit="mm").half_width(150.0, 1.0, "mm") == pytest.approx(4.0)
    assert IntervalRule("constant", 4.0, 0.9, unit="mm").half_width(150.0, 1.0, "px") is None  # other unit
    assert IntervalRule("relative", 0.02, 0.9).half_width(150.0, 1.0, "px") == pytest.approx(3.0)
    assert IntervalRule("spread", 2.0, 0.9, floor=0.01).half_width(150.0, 1.0) == pytest.approx(2.0 * 2.5)
    assert IntervalRule("affine", 0.01, 0.9, unit="mm", offset=100).half_width(150.0, 1.0, "mm") == pytest.approx(2.5)
    banded = IntervalRule("banded", 1.0, 0.9, unit="mm", edges=(100, 200), band_q=(3.0, 4.0, 6.0))
    assert [banded.half_width(v, 9.0, "mm") for v in (99.0, 100.0, 250.0)] == [3.0, 4.0, 6.0]
    scaled = IntervalRule("banded", 1.0, 0.9, floor=0.01, unit="mm", edges=(100,), band_q=(2.0, 3.0))
    assert scaled.half_width(150.0, 1.0, "mm") == pytest.approx(3.0 * (1.0 + 1.5))
    assert band_index([50, 100, 199.9, 200, 300], (100, 200)).tolist() == [0, 1, 1, 2, 2]
    low, high = banded.interval(2.0, 0.0, "mm")
    assert low == 0.0 and high == 5.0  # clipped at zero
    assert IntervalRule.from_dict(json.loads(json.dumps(scaled.to_dict()))) == scaled
    assert "100" in banded.describe() and "90%" in banded.describe()


@pytest.mark.parametrize("bad", [
    {"form": "wobbly", "q": 1.0, "coverage": 0.9},
    {"form": "relative", "q": -1.0, "coverage": 0.9},
    {"form": "relative", "q": 0.1, "coverage": 1.0},
    {"form": "banded", "q": 1.0, "coverage": 0.9, "edges": [100, 200], "band_q": [1.0, 2.0]},
    {"form": "banded", "q": 1.0, "coverage": 0.9, "edges": [200, 100], "band_q": [1.0, 2.0, 3.0]},
])
def test_malformed_rules_are_refused(bad):
    with pytest.raises(UnsupportedError):
        IntervalRule.from_dict(bad)


def _heteroscedastic(n: int = 900, seed: int = 0):
    """Values in three bands whose errors are 1, 1 and 3 mm wide (scale of a normal): a constant interval
    undercovers the third band."""
    rng = np.random.default_rng(seed)
    value = rng.uniform(50, 300, n)
    sd = np.where(value >= 200, 3.0, 1.0)
    reference = value + rng.normal(0, sd)
    return value, np.zeros(n), reference, np.arange(n) % 5, {"big": value >= 200, "rest": value < 200}


def test_cross_fitting_calibrates_each_fold_on_the_others_only():
    value = np.full(40, 100.0)
    reference = value.copy()
    reference[:20] += np.linspace(5, 6, 20)  # fold 0 misses by 5-6 mm, fold 1 by 0.1-0.2
    reference[20:] += np.linspace(0.1, 0.2, 20)
    fold = np.repeat([0, 1], 20)
    r = cross_fitted(Candidate("constant"), value, np.zeros(40), reference, fold, 0.9)
    assert r.coverage(fold == 0) == 0.0 and r.coverage(fold == 1) == 1.0  # each fold judged by the other's q
    assert r.mean_width(fold == 1) == pytest.approx(2 * np.linspace(5, 6, 20)[18])  # the ceil(21 x 0.9) = 19th of 20


def test_banded_rule_holds_coverage_within_bands_where_a_constant_does_not():
    value, spread, reference, fold, groups = _heteroscedastic()
    constant = cross_fitted(Candidate("constant"), value, spread, reference, fold, 0.9, groups)
    banded = cross_fitted(Candidate("banded", edges=(100.0, 200.0)), value, spread, reference, fold, 0.9, groups)
    assert constant.coverage() == pytest.approx(0.9, abs=0.03) and constant.coverage(groups["big"]) < 0.8
    assert banded.coverage(groups["big"]) == pytest.approx(0.9, abs=0.05)
    assert banded.coverage(groups["rest"]) == pytest.approx(0.9, abs=0.04)
    assert not eligible(constant, 0.88, 0.85) and eligible(banded, 0.88, 0.85)
    assert choose([constant, banded], 0.88, 0.85) is banded
    rule = calibrate(Candidate("banded", edges=(100.0, 200.0)), value, spread, reference, 0.9, unit="mm")
    assert rule.unit == "mm" and rule.band_q[2] > 2.5 * rule.band_q[0]  # the noisy band gets the wide interval
    fresh = _heteroscedastic(seed=1)
    coverage, width = coverage_and_width(rule, fresh[0], fresh[1], fresh[2], unit="mm")
    assert coverage == pytest.approx(0.9, abs=0.04) and width > 0
    with pytest.raises(UnsupportedError, match="in mm, the values in px"):
        coverage_and_width(rule, fresh[0], fresh[1], fresh[2], unit="px")


HEAD = Ellipse(180, 120, 100, 80, 20)


def _image() -> UltrasoundImage:
    pixels = np.zeros((240, 360, 3), np.uint8)
    pixels[HEAD.rasterise((240, 360))] = 250
    return UltrasoundImage(pixels=pixels, source="drawn.png")


def _drawn_head(self, image, flip=None):
    """The head probability read off the image (grey >= 200) at the model's input size: a crop gives its own map,
    as a network would."""
    import cv2

    h, w = self.bundle.preprocess.input_size
    grey = image.pixels[..., 0].astype(np.float32)
    return {"head": cv2.resize((grey >= 200).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)}


def _head_bundle(tmp_path: Path, inference: dict) -> Path:
    model = EllipseUNet(("head",), pretrained=False)
    return save_seg_bundle(model, tmp_path / "head", segmentation_preprocess("efficientnet_lite0", (48, 72)),
                           {"name": "t-interval", "measurement": "head", "inference": inference})


def test_the_cards_rule_reaches_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(Measurer, "probabilities", _drawn_head)
    rule = IntervalRule("banded", 1.0, 0.9, floor=0.01, unit="mm", edges=(100.0, 200.0), band_q=(3.0, 2.0, 1.5))
    m = Measurer("head", _head_bundle(tmp_path, {"ellipse_average": ["plain", "zoom:0.15", "zoom:0.35"],
                                                  "hc_interval": rule.to_dict()}))
    rec = m.measure(_image(), pixel_size_mm=0.2)
    hc, (low, high) = rec["hc_mm"], rec["hc_interval_mm"]
    sd_mm = rec["hc_views_sd_px"] * 0.2
    assert 100 <= hc < 200 and rec["hc_interval_coverage"] == 0.9 and rec["hc_views_sd_px"] > 0
    assert high - low == pytest.approx(2 * 2.0 * (sd_mm + 0.01 * hc), abs=0.02)
    assert low < hc < high
    no_px = m.measure(_image())
    assert no_px["hc_interval_mm"] is None and no_px["hc_views_sd_px"] == rec["hc_views_sd_px"]
    rejected = m.measure(_image(), pixel_size_mm=0.2, reject=["not_head_plane: test"])
    assert rejected["quality"] == "rejected" and rejected["hc_interval_mm"] is None
    bad = _head_bundle(tmp_path / "bad", {"hc_interval": rule.to_dict()})
    card = json.loads((bad / "card.json").read_text())
    card["inference"]["hc_interval"]["band_q"] = [1.0]  # one quantile for three bands: a hand-edited card
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(UnsupportedError, match="hc_interval"):
        Measurer("head", bad)


def _drawn_heart_and_thorax(self, image, flip=None):
    """Probability maps read off the image (thorax: grey >= 100, heart: grey >= 200) at the model's input size."""
    import cv2

    h, w = self.bundle.preprocess.input_size
    grey = image.pixels[..., 0].astype(np.float32)
    return {s: cv2.resize((grey >= t).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
            for s, t in (("heart", 200), ("thorax", 100))}


def test_the_cards_ctr_rule_reaches_the_record(tmp_path, monkeypatch):
    from fetalscope.biometry.cardiothoracic import ctr_ratios

    pixels = np.zeros((240, 360, 3), np.uint8)
    thorax, heart = Ellipse(180, 120, 100, 90, 10), Ellipse(200, 110, 50, 40, 60)
    pixels[thorax.rasterise((240, 360))] = 150
    pixels[heart.rasterise((240, 360))] = 250
    monkeypatch.setattr(Measurer, "probabilities", _drawn_heart_and_thorax)
    rule = IntervalRule("spread", 1.8, 0.9, floor=0.04)
    model = EllipseUNet(("heart", "thorax"), pretrained=False)
    folder = save_seg_bundle(model, tmp_path / "ctr", segmentation_preprocess("efficientnet_lite0", (48, 72)),
                             {"name": "t-ctr", "measurement": "cardiothoracic",
                              "inference": {"ellipse_average": ["plain", "zoom:0.1", "zoom:0.35"],
                                            "ctr_interval": rule.to_dict()}})
    m = Measurer("cardiothoracic", folder)
    rec = m.measure(UltrasoundImage(pixels=pixels, source="drawn.png"), plane="Fetal thorax")
    ctr, (low, high) = rec["ctr"]["circumference"], rec["ctr_interval"]
    assert ctr == pytest.approx(ctr_ratios(heart, thorax)["circumference"], abs=0.02)
    assert rec["ctr_views_sd"] > 0 and rec["ctr_interval_coverage"] == 0.9
    assert high - low == pytest.approx(2 * 1.8 * (rec["ctr_views_sd"] + 0.04 * ctr), abs=2e-4)
    rejected = m.measure(UltrasoundImage(pixels=pixels, source="drawn.png"), plane="Fetal femur")
    assert rejected["ctr"] is None and rejected["ctr_interval"] is None  # no CTR, no interval


def test_the_shipped_head_bundle_carries_a_calibrated_rule():
    card = json.loads((bundled_models_dir() / "hc18-head" / "card.json").read_text())
    rule = IntervalRule.from_dict(card["inference"]["hc_interval"])
    assert rule.coverage == 0.9 and rule.unit == "mm" and "out-of-fold" in rule.basis
    assert card["metrics"]["hc_interval_coverage"]["value"] >= 0.85  # measured on validation by the report
    assert "HC interval" in (bundled_models_dir() / "hc18-head" / "card.md").read_text()
    ctr_card = json.loads((bundled_models_dir() / "focus-ctr" / "card.json").read_text())
    ctr_rule = IntervalRule.from_dict(ctr_card["inference"]["ctr_interval"])
    assert ctr_rule.coverage == 0.9 and ctr_card["metrics"]["ctr_interval_coverage"]["value"] >= 0.85


def test_drawn_labels_carry_the_interval():
    from fetalscope.biometry.uncertainty import interval_label

    head = {"hc_interval_mm": [164.6, 171.0], "hc_interval_coverage": 0.9}
    assert interval_label(head, "hc_interval_mm", 1, " mm") == " +/- 3.2 mm (90%)"
    ctr = {"ctr_interval": [0.466, 0.558], "ctr_interval_coverage": 0.9}
    assert interval_label(ctr, "ctr_interval", 3) == " +/- 0.046 (90%)"
    assert interval_label({"hc_interval_mm": None}, "hc_interval_mm", 1, " mm") == " mm"
