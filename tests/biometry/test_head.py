"""Head biometry: Hadlock GA, units, pixel sizes, HC18 reference ellipses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetalscope.biometry.ellipse import Ellipse, fit_ellipse, fit_ellipse_points, ramanujan_circumference
from fetalscope.biometry.head import (
    check_pixel_size,
    hadlock_ga_weeks,
    hc18_reference_ellipse,
    head_measurements,
    weeks_days,
)
from fetalscope.errors import BadInputError


@pytest.mark.parametrize("hc_mm", [100.0, 175.0, 250.0, 346.0])
def test_hadlock_formula_in_centimetres(hc_mm):
    hc_cm = hc_mm / 10
    assert hadlock_ga_weeks(hc_mm) == pytest.approx(8.96 + 0.540 * hc_cm + 0.0003 * hc_cm**3)


def test_hadlock_is_monotonic_and_plausible():
    hcs = np.linspace(80, 360, 50)
    ga = [hadlock_ga_weeks(h) for h in hcs]
    assert all(b > a for a, b in zip(ga, ga[1:], strict=False))
    assert 19.5 < hadlock_ga_weeks(175) < 20.5  # mid-trimester head
    assert 39.5 < hadlock_ga_weeks(346) < 40.5  # term head
    with pytest.raises(BadInputError):
        hadlock_ga_weeks(0)


def test_weeks_days():
    assert weeks_days(20.0) == "20w0d"
    assert weeks_days(20 + 3 / 7) == "20w3d"


def test_head_measurements_in_mm():
    e = Ellipse(300, 200, 80, 100, 30)  # a < b on purpose: BPD is the minor axis whatever the order
    out = head_measurements(e, 0.1)
    assert out["hc_mm"] == pytest.approx(ramanujan_circumference(100, 80) * 0.1, abs=0.01)
    assert out["bpd_mm"] == pytest.approx(16.0)
    assert out["ofd_mm"] == pytest.approx(20.0)
    assert out["cephalic_index"] == pytest.approx(80.0)
    assert out["ga_weeks"] == pytest.approx(hadlock_ga_weeks(out["hc_mm"]), abs=0.01)
    # same ellipse, pixel size in mm doubled -> every length doubles
    twice = head_measurements(e, 0.2)
    assert twice["hc_mm"] == pytest.approx(2 * out["hc_mm"], abs=0.02)
    assert twice["hc_px"] == out["hc_px"]


def test_no_pixel_size_means_no_millimetres():
    out = head_measurements(Ellipse(300, 200, 100, 80, 0), None)
    assert out["hc_mm"] is None and out["ga_weeks"] is None and out["bpd_mm"] is None
    assert out["hc_px"] > 0
    assert any(f.startswith("no_pixel_size") for f in out["flags"])


def test_no_pixel_size_flag_names_every_way_to_give_one():
    # the flag reaches CLI, API and app users alike: it names each way, not only the CLI option
    flag = next(f for f in head_measurements(Ellipse(300, 200, 100, 80, 0), None)["flags"]
                if f.startswith("no_pixel_size: "))
    for way in ("mm per pixel", "--pixel-size", "pixel_size_mm", "Pixel size field", "PixelSpacing"):
        assert way in flag, (way, flag)


def test_small_head_is_flagged_as_extrapolated():
    out = head_measurements(Ellipse(100, 100, 40, 30, 0), 0.1)  # HC ~22 mm
    assert any(f.startswith("ga_extrapolated") for f in out["flags"])


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), 10.0, 0.0001, "abc"])
def test_pixel_size_validation(bad):
    with pytest.raises(BadInputError):
        check_pixel_size(bad)


def test_pixel_size_accepts_mm_and_strings():
    assert check_pixel_size(0.1) == 0.1
    assert check_pixel_size("0.07") == pytest.approx(0.07)
    assert check_pixel_size(None) is None


def test_reference_ellipse_removes_annotation_margin():
    truth = Ellipse(400, 270, 150, 110, 20)
    drawn = Ellipse(400, 270, 151.4, 111.4, 20).rasterise((540, 800))  # filled to the line's outer edge
    ref = hc18_reference_ellipse(drawn, truth.circumference())
    assert ref.circumference() == pytest.approx(truth.circumference(), rel=1e-6)
    assert ref.a == pytest.approx(150, abs=0.2) and ref.b == pytest.approx(110, abs=0.2)


@pytest.mark.shared
def test_hc18_reference_matches_published_hc(shared_data):
    """On real HC18 images: the filled mask's fit is ~1.4 px too big, the annotation line's fit matches
    the published HC, and the reference ellipse reproduces it exactly."""
    from fetalscope.data.hc18 import load_hc18
    from fetalscope.data.segsets import load_mask_file
    from fetalscope.imaging import load_image

    samples = [s for s in load_hc18(shared_data / "hc18") if s.name in ("000_HC.png", "010_HC.png", "500_HC.png")]
    assert len(samples) == 3
    for s in samples:
        px, hc = s.meta["pixel_size_mm"], s.meta["hc_mm"]
        mask = load_mask_file(s.masks["head"])
        margin = (fit_ellipse(mask).circumference() - hc / px) / (2 * math.pi)
        assert 1.2 < margin < 1.6
        ref = hc18_reference_ellipse(mask, hc / px)
        assert ref.circumference() * px == pytest.approx(hc, abs=0.01)
        line = load_image(shared_data / "hc18" / "training_set_annotations_original" /
                          s.name.replace(".png", "_Annotation.png")).gray > 127
        ys, xs = np.nonzero(line)
        assert fit_ellipse_points(np.stack([xs, ys], 1)).circumference() * px == pytest.approx(hc, abs=0.1)
