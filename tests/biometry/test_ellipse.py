"""Ellipse geometry and fitting on synthetic ellipses of known size."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.special import ellipe

from fetalscope.biometry.ellipse import (
    Ellipse,
    draw_ellipse,
    ellipse_overlap,
    fit_ellipse,
    fit_ellipse_points,
    fit_points,
    hausdorff_distance,
    largest_component,
    mean_ellipse,
    ramanujan_circumference,
)
from fetalscope.errors import BadInputError

CASES = [  # cx, cy, a, b, angle
    (300.0, 250.0, 180.0, 120.0, 0.0),
    (310.3, 240.7, 150.2, 100.9, 33.0),
    (280.0, 260.0, 90.0, 85.0, 125.0),
    (305.5, 255.5, 60.0, 25.0, 170.0),
    (300.0, 250.0, 40.0, 40.0, 0.0),
]


def exact_perimeter(a: float, b: float) -> float:
    a, b = max(a, b), min(a, b)
    return 4 * a * ellipe(1 - (b / a) ** 2)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (100.0, 80.0), (120.0, 60.0), (50.0, 10.0)])
def test_ramanujan_matches_elliptic_integral(a, b):
    assert ramanujan_circumference(a, b) == pytest.approx(exact_perimeter(a, b), rel=1e-6)
    assert ramanujan_circumference(b, a) == pytest.approx(ramanujan_circumference(a, b))


def test_circle_and_area():
    e = Ellipse(0, 0, 10, 10, 0)
    assert e.circumference() == pytest.approx(2 * math.pi * 10)
    assert e.area() == pytest.approx(math.pi * 100)
    with pytest.raises(BadInputError):
        ramanujan_circumference(-1, 2)


@pytest.mark.parametrize("cx,cy,a,b,angle", CASES)
def test_fit_recovers_rasterised_ellipse_within_half_percent(cx, cy, a, b, angle):
    truth = Ellipse(cx, cy, a, b, angle)
    mask = truth.rasterise((500, 600))
    fit = fit_ellipse(mask)
    assert fit is not None
    assert fit.circumference() == pytest.approx(truth.circumference(), rel=0.005)
    assert fit.area() == pytest.approx(truth.area(), rel=0.005)
    assert fit.major == pytest.approx(truth.major, rel=0.005)
    assert fit.minor == pytest.approx(truth.minor, rel=0.005)
    assert math.hypot(fit.cx - cx, fit.cy - cy) < 0.5
    if abs(a - b) > 10:  # the angle of a near-circle is undefined
        t = truth.normalised().angle_deg
        diff = abs((fit.angle_deg - t + 90) % 180 - 90)
        assert diff < 1.0


def test_fit_agrees_with_opencv_drawn_ellipse():
    """cv2.ellipse's own drawing (its angle convention) is recovered: same centre, axes, angle."""
    mask = np.zeros((400, 500), np.uint8)
    cv2.ellipse(mask, ((250.0, 200.0), (240.0, 140.0), 30.0), 255, -1)
    fit = fit_ellipse(mask)
    assert fit.angle_deg == pytest.approx(30.0, abs=1.0)
    assert fit.a == pytest.approx(120.0, rel=0.01)
    assert fit.b == pytest.approx(70.0, rel=0.01)


def test_fit_ignores_frame_when_structure_is_cut():
    truth = Ellipse(60.0, 200.0, 150.0, 100.0, 20.0)  # a third of it lies left of the image
    fit = fit_ellipse(truth.rasterise((400, 500)))
    assert fit.circumference() == pytest.approx(truth.circumference(), rel=0.01)


def test_fit_from_low_resolution_probability_maps_to_original_grid():
    truth = Ellipse(412.3, 268.9, 231.0, 170.5, 62.0)
    full = truth.rasterise((540, 800)).astype(np.float32)
    small = cv2.resize(full, (200, 135), interpolation=cv2.INTER_AREA)  # soft, as a network would see it
    fit = fit_ellipse(small, out_shape=(540, 800))
    assert fit.circumference() == pytest.approx(truth.circumference(), rel=0.005)
    assert math.hypot(fit.cx - truth.cx, fit.cy - truth.cy) < 1.0


def test_largest_component_and_empty_mask():
    mask = Ellipse(100, 100, 50, 30, 0).rasterise((300, 400)) | Ellipse(300, 200, 10, 10, 0).rasterise((300, 400))
    big = largest_component(mask)
    assert big.sum() == Ellipse(100, 100, 50, 30, 0).rasterise((300, 400)).sum()
    fit = fit_ellipse(mask)
    assert fit.cx == pytest.approx(100, abs=0.5)
    assert fit_ellipse(np.zeros((50, 50), bool)) is None
    assert fit_ellipse(np.zeros((50, 50), np.float32)) is None


def test_normalise_dict_round_trip_and_errors():
    e = Ellipse(1, 2, 3, 5, 10).normalised()
    assert e.a == 5 and e.b == 3 and e.angle_deg == pytest.approx(100)
    assert Ellipse.from_dict(e.to_dict(ndigits=None)) == e
    with pytest.raises(BadInputError):
        Ellipse.from_dict({"cx": 1})


def test_overlap_and_hausdorff():
    a = Ellipse(200, 150, 80, 60, 0)
    assert ellipse_overlap(a, a, (300, 400))["dice"] == 1.0
    shifted = Ellipse(210, 150, 80, 60, 0)
    ov = ellipse_overlap(a, shifted, (300, 400))
    assert 0.8 < ov["iou"] < ov["dice"] < 1.0
    assert hausdorff_distance(a, shifted) == pytest.approx(10.0, abs=0.1)
    bigger = Ellipse(200, 150, 85, 65, 0)
    assert hausdorff_distance(a, bigger) == pytest.approx(5.0, abs=0.1)


def test_draw_marks_the_outline():
    e = Ellipse(100, 80, 60, 40, 15)
    img = np.zeros((160, 200, 3), np.uint8)
    out = draw_ellipse(img, e, (255, 0, 0), thickness=1, axes=True)
    assert out.shape == img.shape and img.sum() == 0
    red = out[..., 0] > 100
    ys, xs = np.nonzero(red)
    on_outline = np.abs(np.hypot(*(np.stack([xs, ys], 1) - [e.cx, e.cy]).T)).max()
    assert red.sum() > 300 and on_outline <= e.a + 2


def test_mean_ellipse_averages_axes_and_wraps_the_angle():
    # 179 and 1 degrees are 2 degrees apart (an ellipse repeats after 180): the mean lies at 0, not 90
    m = mean_ellipse([Ellipse(10, 20, 50, 30, 179.0), Ellipse(12, 22, 30, 54, 91.0)])  # the second: b > a
    assert (m.cx, m.cy, m.a, m.b) == pytest.approx((11, 21, 52, 30))
    assert min(m.angle_deg, 180 - m.angle_deg) == pytest.approx(0.0, abs=1e-6)
    assert mean_ellipse([None, Ellipse(1, 2, 3, 2, 45)]) == Ellipse(1, 2, 3, 2, 45)
    assert mean_ellipse([]) is None


def test_sharp_outline_fit_ignores_a_fuzzy_stretch_of_the_outline():
    """A probability map whose right end is smeared (an edge in shadow) pulls the plain fit's outline outwards;
    fitting only the sharp part of the outline recovers the true ellipse, and on a uniformly sharp map the option
    changes nothing."""
    from fetalscope.biometry.ellipse import fit_ellipse, sharp_outline

    true = Ellipse(200, 150, 120, 90, 0)
    sharp_map = cv2.GaussianBlur(true.rasterise((300, 400)).astype(np.float32), (0, 0), 1.5)
    fuzzy = cv2.GaussianBlur(true.rasterise((300, 400)).astype(np.float32), (0, 0), 25)
    weight = np.clip((np.arange(400) - 260) / 40.0, 0, 1)[None, :]  # the right end (x > 260) gets fuzzy
    smeared = (1 - weight) * sharp_map + weight * np.maximum(sharp_map, fuzzy * 1.3)
    plain = fit_ellipse(smeared)
    chosen = fit_ellipse(smeared, min_sharpness=0.7)
    assert abs(plain.circumference() - true.circumference()) > 3  # the smear biases the plain fit
    assert abs(chosen.circumference() - true.circumference()) < abs(plain.circumference() - true.circumference()) / 2
    from fetalscope.biometry.ellipse import outline_points

    pts, _ = outline_points(smeared)
    kept = sharp_outline(smeared, pts, 0.7)
    assert 0.5 < kept.mean() < 1.0 and pts[~kept, 0].min() > 250  # only the smeared end is dropped
    same = fit_ellipse(sharp_map, min_sharpness=0.7)
    assert same.circumference() == pytest.approx(fit_ellipse(sharp_map).circumference(), rel=2e-3)


def test_fit_points_are_what_fit_ellipse_fits_placed_by_the_offset():
    truth = Ellipse(cx=60.0, cy=40.0, a=30.0, b=18.0, angle_deg=20.0)
    prob = truth.rasterise((80, 120)).astype(np.float32)
    pts = fit_points(prob, scale_xy=(2.0, 2.0))
    assert pts is not None and pts.shape[1] == 2
    assert fit_ellipse_points(pts) == fit_ellipse(prob, scale_xy=(2.0, 2.0))
    moved = fit_points(prob, scale_xy=(2.0, 2.0), offset=(100.0, 50.0))
    np.testing.assert_allclose(moved, pts + [100.0, 50.0])
    assert fit_points(np.zeros((80, 120), np.float32)) is None  # no outline: nothing to fit
