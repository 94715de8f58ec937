"""Bootstrap intervals: contain the estimate, widen with fewer patients, resample whole patients."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from fetalscope.evaluate.bootstrap import (
    bootstrap_ci,
    bootstrap_confusion_metrics,
    bootstrap_confusions,
    resample_indices,
)


def clustered_predictions(n_groups: int, per_group: int, seed: int = 0):
    """Labels and predictions where being right depends on the patient (as it does in practice)."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    groups = np.repeat([f"patient{i:03d}" for i in range(n_groups)], per_group)
    skill = np.repeat(rng.uniform(0.3, 1.0, n_groups), per_group)  # per-patient chance of being right
    y = rng.integers(0, 3, n)
    wrong = (y + rng.integers(1, 3, n)) % 3
    pred = np.where(rng.random(n) < skill, y, wrong)
    return y, pred, groups


def test_interval_contains_point_estimate_for_accuracy_and_weighted_f1():
    y, pred, groups = clustered_predictions(40, 5)
    for fn in (accuracy_score, lambda a, b: f1_score(a, b, average="weighted")):
        ci = bootstrap_ci(fn, y, pred, groups=groups, n_boot=100, seed=1)
        assert ci["lower"] <= ci["estimate"] <= ci["upper"]
        assert ci["lower"] < ci["upper"]
        assert ci["estimate"] == pytest.approx(fn(y, pred))
        assert ci["unit"] == "group" and ci["n_units"] == 40 and ci["n_valid"] == 100


def test_interval_widens_with_fewer_patients():
    # the same 240 images, grouped into 60 patients of 4 images or 6 patients of 40
    y_many, pred_many, g_many = clustered_predictions(60, 4, seed=2)
    y_few, pred_few, g_few = clustered_predictions(6, 40, seed=2)
    many = bootstrap_confusion_metrics(y_many, pred_many, 3, groups=g_many, n_boot=1000)["accuracy"]
    few = bootstrap_confusion_metrics(y_few, pred_few, 3, groups=g_few, n_boot=1000)["accuracy"]
    assert few["upper"] - few["lower"] > 1.5 * (many["upper"] - many["lower"])
    # ignoring the patients understates the uncertainty when images of a patient go together
    naive = bootstrap_confusion_metrics(y_few, pred_few, 3, n_boot=1000)["accuracy"]
    assert naive["unit"] == "image"
    assert few["upper"] - few["lower"] > 1.5 * (naive["upper"] - naive["lower"])


def test_grouped_resampling_draws_whole_patients():
    groups = np.array(["a"] * 3 + ["b"] * 1 + ["c"] * 5 + ["d"] * 2)
    rng = np.random.default_rng(0)
    groups = groups[rng.permutation(len(groups))]  # members of a group need not be adjacent
    sizes = Counter(groups.tolist())
    for idx in resample_indices(len(groups), groups, n_boot=200, seed=3):
        seen = Counter(idx.tolist())
        drawn = Counter(groups[idx].tolist())
        for g, count in drawn.items():
            members = np.flatnonzero(groups == g)
            times = count // sizes[g]
            assert count % sizes[g] == 0  # a group comes whole, never in part
            assert all(seen[m] == times for m in members)
        assert sum(drawn[g] // sizes[g] for g in drawn) == 4  # as many draws as groups


def test_vectorised_confusions_equal_explicit_resampling():
    y, pred, groups = clustered_predictions(25, 6, seed=4)
    cms = bootstrap_confusions(y, pred, 3, groups=groups, n_boot=150, seed=9)
    explicit = [accuracy_score(y[i], pred[i]) for i in resample_indices(len(y), groups, n_boot=150, seed=9)]
    np.testing.assert_allclose(np.trace(cms, axis1=1, axis2=2) / cms.sum(axis=(1, 2)), explicit)
    wf1 = [f1_score(y[i], pred[i], average="weighted") for i in
           resample_indices(len(y), groups, n_boot=150, seed=9)]
    cis = bootstrap_confusion_metrics(y, pred, 3, groups=groups, n_boot=150, seed=9)
    alpha = 0.025
    assert cis["weighted_f1"]["lower"] == pytest.approx(np.quantile(wf1, alpha))
    assert cis["weighted_f1"]["upper"] == pytest.approx(np.quantile(wf1, 1 - alpha))
    assert cis["weighted_f1"]["estimate"] == pytest.approx(f1_score(y, pred, average="weighted"))


def test_fixed_seed_is_reproducible_and_seed_matters():
    y, pred, groups = clustered_predictions(30, 3, seed=5)
    a = bootstrap_confusion_metrics(y, pred, 3, groups=groups, n_boot=200, seed=0)
    b = bootstrap_confusion_metrics(y, pred, 3, groups=groups, n_boot=200, seed=0)
    c = bootstrap_confusion_metrics(y, pred, 3, groups=groups, n_boot=200, seed=1)
    assert a == b
    bounds = [(r["accuracy"]["lower"], r["accuracy"]["upper"]) for r in (a, c)]
    assert bounds[0] != bounds[1]


def test_generic_metric_on_probabilities_drops_undefined_replicates():
    # 8 images, 2 of them positive: some replicates hold no positive and AUC is undefined there
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.7, 0.9])
    ci = bootstrap_ci(roc_auc_score, y, score, n_boot=200, seed=0)
    assert 0 < ci["n_valid"] < 200
    assert ci["estimate"] == pytest.approx(roc_auc_score(y, score))
    assert ci["lower"] <= ci["estimate"] <= ci["upper"] <= 1.0


def test_thousand_replicates_on_a_realistic_test_set_are_fast():
    import time

    rng = np.random.default_rng(6)
    n = 3000
    y = rng.integers(0, 6, n)
    pred = np.where(rng.random(n) < 0.8, y, rng.integers(0, 6, n))
    groups = rng.integers(0, 800, n)
    start = time.perf_counter()
    cis = bootstrap_confusion_metrics(y, pred, 6, groups=groups, n_boot=1000)
    assert time.perf_counter() - start < 5.0
    assert all(ci["n_valid"] == 1000 for ci in cis.values())
