"""Agreement of continuous measurements with their references (HC in mm, cardiothoracic ratios): mean
absolute difference, bias, Bland-Altman 95% limits of agreement and Pearson r, each with a percentile
bootstrap interval that resamples whole groups (:func:`fetalscope.evaluate.bootstrap.bootstrap_ci`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fetalscope.evaluate.bootstrap import bootstrap_ci


def _mean(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y)))


def _bias(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(p - y))


def _loa_low(y: np.ndarray, p: np.ndarray) -> float:
    d = p - y
    return float(d.mean() - 1.96 * d.std(ddof=1)) if len(d) > 1 else float("nan")


def _loa_high(y: np.ndarray, p: np.ndarray) -> float:
    d = p - y
    return float(d.mean() + 1.96 * d.std(ddof=1)) if len(d) > 1 else float("nan")


def _pearson(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 3 or np.std(y) == 0 or np.std(p) == 0:
        return float("nan")
    return float(np.corrcoef(y, p)[0, 1])


def ci(metric: Callable[[np.ndarray, np.ndarray], float], y: Sequence[float], p: Sequence[float],
       groups: Sequence[str], n_boot: int) -> dict[str, Any]:
    """Point estimate + group-bootstrap 95% interval; ``estimate`` None when undefined."""
    y_arr, p_arr = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y_arr) == 0:
        return {"estimate": None, "lower": None, "upper": None, "n": 0}
    out = bootstrap_ci(metric, y_arr, p_arr, groups=list(groups), n_boot=n_boot)
    out["n"] = int(len(y_arr))
    return out


def agreement(y: Sequence[float], p: Sequence[float], groups: Sequence[str], n_boot: int) -> dict[str, Any]:
    """MAE, bias, Bland-Altman limits and Pearson r of predictions ``p`` against references ``y``."""
    return {"mae": ci(_mae, y, p, groups, n_boot), "bias": ci(_bias, y, p, groups, n_boot),
            "loa_low": ci(_loa_low, y, p, groups, n_boot), "loa_high": ci(_loa_high, y, p, groups, n_boot),
            "pearson_r": ci(_pearson, y, p, groups, n_boot)}


def mean_ci(values: Sequence[float], groups: Sequence[str], n_boot: int) -> dict[str, Any]:
    """Mean of ``values`` with its group-bootstrap 95% interval."""
    v = np.asarray(values, dtype=np.float64)
    return ci(_mean, v, v, groups, n_boot)
