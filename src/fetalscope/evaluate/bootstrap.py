"""Bootstrap confidence intervals, resampling whole patients when patient ids are given.

Images of one patient are not independent, so when ``groups`` is given each bootstrap replicate
draws as many groups as there are, with replacement, and keeps all images of each drawn group.
Without groups single images are resampled. Intervals are percentile intervals of the replicates;
the seed is fixed, so a report is reproducible.

- :func:`bootstrap_ci`: any metric ``fn(y_true, y_pred_or_probs) -> float`` (one call per replicate).
- :func:`bootstrap_confusion_metrics`: accuracy / balanced accuracy / macro F1 / weighted F1 for all
  replicates at once from resampled confusion matrices (fast: a matrix product per chunk).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from fetalscope.errors import BadInputError
from fetalscope.evaluate.metrics import confusion_scores
from fetalscope.evaluate.validate import check_groups, check_labels, check_same_length

N_BOOT = 1000
CONFIDENCE = 0.95
SEED = 0
#: With fewer resampling units (patients or images) than this an interval is flagged unreliable.
MIN_UNITS = 10
_CHUNK = 256  # replicates per vectorised chunk (bounds memory at _CHUNK x n_units)


def _check_settings(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise BadInputError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < confidence < 1:
        raise BadInputError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def resampling_units(n: int, groups: object | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Map each of ``n`` images to a resampling unit: its group (patient) index, else itself.

    Returns ``unit`` (n,) int array and the group names (``None`` when resampling single images).
    """
    if groups is None:
        return np.arange(n), None
    g = check_groups(groups, n)
    names, unit = np.unique(g, return_inverse=True)
    return unit.astype(np.int64), [str(x) for x in names]


def _draw_counts(rng: np.random.Generator, n_units: int, n_rep: int) -> np.ndarray:
    """(n_rep, n_units) how often each unit is drawn when drawing n_units with replacement."""
    draws = rng.integers(0, n_units, size=(n_rep, n_units))
    flat = (draws + n_units * np.arange(n_rep)[:, None]).ravel()
    return np.bincount(flat, minlength=n_rep * n_units).reshape(n_rep, n_units)


def resample_indices(n: int, groups: object | None = None, *, n_boot: int = N_BOOT,
                     seed: int = SEED) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` arrays of image indices, each one bootstrap replicate.

    With ``groups`` every drawn group contributes all its images (as often as it was drawn).
    """
    _check_settings(n_boot, CONFIDENCE)
    unit, _ = resampling_units(n, groups)
    n_units = int(unit.max()) + 1
    order = np.argsort(unit, kind="stable")
    starts = np.searchsorted(unit[order], np.arange(n_units + 1))
    members = [order[starts[u]:starts[u + 1]] for u in range(n_units)]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        drawn = rng.integers(0, n_units, size=n_units)
        yield np.concatenate([members[u] for u in drawn])


def _interval(values: np.ndarray, estimate: float | None, confidence: float, *, n_boot: int,
              unit: str, n_units: int, seed: int) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    alpha = (1 - confidence) / 2
    lower = upper = None
    if finite.size:
        lower, upper = (float(v) for v in np.quantile(finite, [alpha, 1 - alpha]))
    return {
        "estimate": None if estimate is None or not np.isfinite(estimate) else float(estimate),
        "lower": lower, "upper": upper, "confidence": confidence, "n_boot": int(n_boot),
        "n_valid": int(finite.size), "unit": unit, "n_units": int(n_units), "seed": int(seed),
        "method": "percentile", "too_few_units": bool(n_units < MIN_UNITS),
    }


def bootstrap_ci(metric: Callable[[np.ndarray, np.ndarray], float], y_true: object, y_pred: object, *,
                 groups: object | None = None, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                 seed: int = SEED) -> dict[str, Any]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)``; ``y_pred`` may be labels or N x C probs.

    Replicates where the metric raises ``ValueError`` or returns NaN (e.g. AUC on a replicate with
    one class) are dropped and ``n_valid`` says how many remain.
    """
    _check_settings(n_boot, confidence)
    y = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if y.ndim == 0 or len(y) == 0:
        raise BadInputError("y_true is empty; bootstrap needs at least one image")
    check_same_length(len(y), pred, name="y_pred")
    _, names = resampling_units(len(y), groups)
    values = np.empty(n_boot)
    with warnings.catch_warnings():  # undefined replicates are counted in n_valid instead
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for b, idx in enumerate(resample_indices(len(y), groups, n_boot=n_boot, seed=seed)):
            try:
                values[b] = float(metric(y[idx], pred[idx]))
            except ValueError:
                values[b] = np.nan
    estimate = float(metric(y, pred))
    return _interval(values, estimate, confidence, n_boot=n_boot,
                     unit="group" if names is not None else "image",
                     n_units=len(names) if names is not None else len(y), seed=seed)


def bootstrap_confusions(y_true: object, y_pred: object, n_classes: int, *, groups: object | None = None,
                         n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Confusion matrices (n_boot, C, C) of bootstrap replicates, vectorised over replicates."""
    _check_settings(n_boot, CONFIDENCE)
    y = check_labels(y_true, n_classes)
    p = check_labels(y_pred, n_classes, name="y_pred")
    check_same_length(len(y), p, name="y_pred")
    unit, _ = resampling_units(len(y), groups)
    n_units = int(unit.max()) + 1
    cells = y * n_classes + p
    per_unit = np.zeros((n_units, n_classes * n_classes))
    np.add.at(per_unit, (unit, cells), 1.0)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, n_classes * n_classes))
    for start in range(0, n_boot, _CHUNK):
        stop = min(n_boot, start + _CHUNK)
        out[start:stop] = _draw_counts(rng, n_units, stop - start) @ per_unit
    return out.reshape(n_boot, n_classes, n_classes)


def bootstrap_confusion_metrics(y_true: object, y_pred: object, n_classes: int, *,
                                groups: object | None = None, covered: Sequence[bool] | None = None,
                                metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_f1",
                                                          "weighted_f1"),
                                n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                                seed: int = SEED) -> dict[str, dict[str, Any]]:
    """Bootstrap intervals of confusion-matrix metrics (names as in :func:`confusion_scores`).

    ``covered`` masks classes the model cannot predict out of the class averages (see metrics.py).
    """
    _check_settings(n_boot, confidence)
    cms = bootstrap_confusions(y_true, y_pred, n_classes, groups=groups, n_boot=n_boot, seed=seed)
    y = check_labels(y_true, n_classes)
    p = check_labels(y_pred, n_classes, name="y_pred")
    full = np.zeros((n_classes, n_classes))
    np.add.at(full, (y, p), 1.0)
    cov = None if covered is None else np.asarray(covered, dtype=bool)
    replicate_scores = confusion_scores(cms, cov)
    point = confusion_scores(full, cov)
    unknown = [m for m in metrics if m not in point]
    if unknown:
        raise BadInputError(f"unknown metrics {unknown}; choose from {sorted(point)}")
    _, names = resampling_units(len(y), groups)
    n_units = len(names) if names is not None else len(y)
    return {m: _interval(replicate_scores[m], float(point[m]), confidence, n_boot=n_boot,
                         unit="group" if names is not None else "image", n_units=n_units, seed=seed)
            for m in metrics}
