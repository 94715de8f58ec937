"""The head-circumference error study (fetalscope.train.recipes.head_error) on synthetic outlines and rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetalscope.biometry.ellipse import ramanujan_circumference
from fetalscope.train.recipes.head_error import FITTERS, circumference, error_correlation, summarise


def _ellipse_probability(shape: tuple[int, int], cx: float, cy: float, a: float, b: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
    return np.clip(1.5 - r, 0, 1).astype(np.float32)  # 0.5 exactly on the ellipse, smooth across it


@pytest.mark.parametrize("fitter", list(FITTERS))
def test_circumference_of_a_drawn_ellipse(fitter):
    prob = _ellipse_probability((120, 160), 80, 60, 50, 35)
    expected = ramanujan_circumference(50, 35)
    assert circumference(prob, (120, 160), 0.5, fitter) == pytest.approx(expected, rel=0.01)
    # the probability map at half the image's resolution: the outline is scaled back to image pixels
    small = _ellipse_probability((60, 80), 39.75, 29.75, 25, 17.5)
    assert circumference(small, (120, 160), 0.5, fitter) == pytest.approx(expected, rel=0.02)


def test_summary_and_error_correlation():
    rows_a = [{"image": f"{i}.png", "hc_ref_mm": ref, "least squares @ 0.5": err, "AMS @ 0.5": -err}
              for i, (ref, err) in enumerate([(150, 1.0), (210, -2.0), (250, 3.0)])]
    summary = summarise(rows_a)
    assert list(summary) == ["least squares @ 0.5", "AMS @ 0.5"]
    assert summary["least squares @ 0.5"] == pytest.approx({"mad_mm": 2.0, "bias_mm": 2 / 3, "mad_ge_200_mm": 2.5})
    assert summary["AMS @ 0.5"]["bias_mm"] == pytest.approx(-2 / 3)
    assert summarise(rows_a[:1])["least squares @ 0.5"]["mad_ge_200_mm"] is None  # no head >= 200 mm

    rows_b = [{**r, "least squares @ 0.5": 2 * r["least squares @ 0.5"] + 1} for r in rows_a[1:]]
    rows_b.append({"image": "other.png", "hc_ref_mm": 100, "least squares @ 0.5": 9.0})
    corr, n = error_correlation({"rows": rows_a}, {"rows": rows_b})
    assert n == 2 and corr == pytest.approx(1.0)
    assert math.isclose(error_correlation({"rows": rows_a}, {"rows": rows_a}, variant="AMS @ 0.5")[0], 1.0)
