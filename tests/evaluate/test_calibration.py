"""ECE on a hand-made case; temperature scaling recovers a known temperature."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from fetalscope.evaluate.calibration import (
    T_BOUNDS,
    apply_temperature,
    calibration_errors,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    nll,
    reliability_bins,
    temperature_report,
)


def test_ece_and_mce_by_hand():
    # two classes, ten equal-width bins
    probs = np.array([
        [0.95, 0.05],  # conf 0.95, predicts 0, true 0: right   -> bin (0.9, 1.0]
        [0.92, 0.08],  # conf 0.92, predicts 0, true 1: wrong   -> bin (0.9, 1.0]
        [0.35, 0.65],  # conf 0.65, predicts 1, true 1: right   -> bin (0.6, 0.7]
        [0.62, 0.38],  # conf 0.62, predicts 0, true 1: wrong   -> bin (0.6, 0.7]
        [0.22, 0.78],  # conf 0.78, predicts 1, true 1: right   -> bin (0.7, 0.8]
    ])
    y = [0, 1, 1, 1, 1]
    # bin 9: conf (0.95+0.92)/2 = 0.935, acc 0.5 -> gap 0.435 (2 images)
    # bin 6: conf (0.65+0.62)/2 = 0.635, acc 0.5 -> gap 0.135 (2 images)
    # bin 7: conf 0.78, acc 1.0              -> gap 0.22  (1 image)
    ece = (2 * 0.435 + 2 * 0.135 + 1 * 0.22) / 5
    out = calibration_errors(probs, y, n_bins=10)
    assert out["ece"] == pytest.approx(ece)
    assert out["mce"] == pytest.approx(0.435)
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(ece)
    assert max_calibration_error(probs, y, n_bins=10) == pytest.approx(0.435)
    bins = out["bins"]
    assert bins["count"] == [0, 0, 0, 0, 0, 0, 2, 1, 0, 2]
    assert bins["accuracy"][6] == pytest.approx(0.5) and bins["confidence"][9] == pytest.approx(0.935)
    assert bins["accuracy"][0] is None  # empty bins have no value, not 0
    # one bin: ECE is |overall accuracy - mean confidence|
    assert calibration_errors(probs, y, n_bins=1)["ece"] == pytest.approx(abs(3 / 5 - 3.92 / 5))


def test_bin_edges_are_right_closed():
    # 0.7 belongs to (0.6, 0.7] even though 0.7 * 10 is 7.000000000000001 in floating point
    b = reliability_bins([[0.7, 0.3], [0.3, 0.7], [0.5, 0.5]], [0, 0, 0], n_bins=10)
    assert b["count"][6] == 2 and b["count"][4] == 1


def test_perfectly_calibrated_sample_has_small_ece():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(20000, 4))
    p = softmax(z, axis=1)
    y = np.minimum((rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1), 3)
    assert expected_calibration_error(p, y, n_bins=15) < 0.02


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_fit_temperature_recovers_known_temperature(t_true):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(4000, 5))
    p_true = softmax(z / t_true, axis=1)
    u = rng.random((len(z), 1))
    y = np.minimum((u > np.cumsum(p_true, axis=1)).sum(axis=1), 4)  # inverse-CDF sample per row
    t = fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.08)
    assert nll(z, y, t) < nll(z, y, 1.0)


def test_fit_temperature_is_finite_on_tiny_sets():
    z = np.array([[4.0, 0.0, -1.0]])
    t_right = fit_temperature(z, [0])  # one right answer: sharper is always better -> lower bound
    t_wrong = fit_temperature(z, [2])  # one wrong answer: flatter is always better -> upper bound
    assert t_right == pytest.approx(T_BOUNDS[0]) and t_wrong == pytest.approx(T_BOUNDS[1])
    t_two = fit_temperature([[2.0, 0.0], [2.0, 0.0]], [0, 1])
    assert T_BOUNDS[0] <= t_two <= T_BOUNDS[1]
    assert np.isfinite(t_two)


def test_apply_temperature_keeps_argmax_and_sums_to_one():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(50, 6))
    for t in (0.3, 1.0, 4.0):
        p = apply_temperature(z, t)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(z, 1.0), softmax(z, axis=1))
    assert apply_temperature(z, 4.0).max(axis=1).mean() < apply_temperature(z, 1.0).max(axis=1).mean()
    # a class the model cannot output (-inf) keeps probability 0 at any temperature
    z[:, 2] = -np.inf
    assert apply_temperature(z, 10.0)[:, 2].max() == 0.0


def test_temperature_report_improves_an_overconfident_model():
    rng = np.random.default_rng(4)

    def draw(n):
        z = rng.normal(scale=2.0, size=(n, 4))
        p = softmax(z, axis=1)
        y = np.minimum((rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), 3)
        return 3.0 * z, y  # the model reports logits 3x too sharp

    zv, yv = draw(1500)
    zt, yt = draw(1500)
    rep = temperature_report(zv, yv, zt, yt, n_bins=10)
    assert rep["temperature"] == pytest.approx(3.0, rel=0.15)
    assert rep["after"]["ece"] < rep["before"]["ece"] / 2
    assert rep["after"]["nll"] < rep["before"]["nll"]
    assert rep["at_bound"] is False
