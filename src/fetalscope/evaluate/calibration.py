"""Calibration: do the model's confidences match how often it is right?

- :func:`reliability_bins` / :func:`calibration_errors`: top-label confidence in equal-width bins
  over [0, 1] (bin k holds confidences in ``(k/n, (k+1)/n]``, the first also holds 0). Expected
  calibration error (ECE) is the image-weighted mean |accuracy - confidence| over bins; maximum
  calibration error (MCE) the largest gap over non-empty bins (Guo et al., ICML 2017).
- :func:`fit_temperature` fits one temperature T > 0 on validation logits by minimising the
  negative log-likelihood over log T (bounded scalar search, so one-image sets stay finite);
  :func:`apply_temperature` gives ``softmax(logits / T)``. T does not change the arg-max, so accuracy
  is unchanged; only confidences move.

Logits may hold ``-inf`` for a class the model cannot output (probability stays 0 at any T).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from fetalscope.errors import BadInputError
from fetalscope.evaluate.validate import check_labels, check_matrix, check_probs, check_same_length

#: Default number of equal-width confidence bins.
N_BINS = 15
#: Temperatures are searched in this range; a fit at a bound is reported as such.
T_BOUNDS = (0.05, 20.0)


def _check_bins(n_bins: int) -> int:
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise BadInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def check_logits(logits: object, labels: object, *, name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """Validate logits (N x C, finite or -inf) and labels (N,) whose own logit is finite."""
    z = check_matrix(logits, name=name, allow_neg_inf=True)
    y = check_labels(labels, z.shape[1], name="labels")
    check_same_length(len(y), z, name=name, against="labels")
    own = z[np.arange(len(y)), y]
    if not np.all(np.isfinite(own)):
        row = int(np.flatnonzero(~np.isfinite(own))[0])
        raise BadInputError(
            f"{name} row {row} gives its true class {y[row]} a logit of -inf (probability 0); drop images "
            "of classes the model does not cover before fitting or scoring calibration"
        )
    if np.all(np.isneginf(z), axis=1).any():
        row = int(np.flatnonzero(np.all(np.isneginf(z), axis=1))[0])
        raise BadInputError(f"{name} row {row} is -inf for every class; the model produced no score")
    return z, y


def reliability_bins(probs: object, y_true: object, n_bins: int = N_BINS) -> dict[str, Any]:
    """Per-bin data of a reliability diagram from probabilities (N x C) and labels (N,).

    Returns ``edges`` (n_bins + 1), and per bin ``count``, mean ``confidence`` and ``accuracy``
    (``None`` for empty bins).
    """
    p = check_probs(probs)
    y = check_labels(y_true, p.shape[1])
    check_same_length(len(y), p, name="probs", against="y_true")
    n_bins = _check_bins(n_bins)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    nonempty = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.zeros(n_bins), where=nonempty)
    mean_acc = np.divide(acc_sum, count, out=np.zeros(n_bins), where=nonempty)
    return {
        "n_bins": n_bins,
        "edges": edges.tolist(),
        "count": count.astype(int).tolist(),
        "confidence": [float(c) if ok else None for c, ok in zip(mean_conf, nonempty, strict=True)],
        "accuracy": [float(a) if ok else None for a, ok in zip(mean_acc, nonempty, strict=True)],
    }


def calibration_errors(probs: object, y_true: object, n_bins: int = N_BINS) -> dict[str, Any]:
    """ECE and MCE (top-label, equal-width bins) plus the reliability bins they came from."""
    bins = reliability_bins(probs, y_true, n_bins)
    count = np.asarray(bins["count"], dtype=np.float64)
    nonempty = count > 0
    gaps = np.zeros_like(count)
    conf = np.array([c if c is not None else 0.0 for c in bins["confidence"]])
    acc = np.array([a if a is not None else 0.0 for a in bins["accuracy"]])
    gaps[nonempty] = np.abs(acc[nonempty] - conf[nonempty])
    return {
        "ece": float((gaps * count).sum() / count.sum()),
        "mce": float(gaps[nonempty].max()),
        "n_bins": bins["n_bins"],
        "bins": bins,
    }


def expected_calibration_error(probs: object, y_true: object, n_bins: int = N_BINS) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins."""
    return calibration_errors(probs, y_true, n_bins)["ece"]


def max_calibration_error(probs: object, y_true: object, n_bins: int = N_BINS) -> float:
    """Largest |accuracy - confidence| over non-empty equal-width bins."""
    return calibration_errors(probs, y_true, n_bins)["mce"]


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    logp = log_softmax(z / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def nll(logits: object, labels: object, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z, y = check_logits(logits, labels)
    return _nll(z, y, _check_temperature(temperature))


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise BadInputError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def fit_temperature(logits: object, labels: object, *, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature T minimising validation NLL of ``softmax(logits / T)``.

    Searched over log T in ``bounds`` (bounded Brent), so tiny or separable validation sets give a
    temperature at a bound instead of 0 or infinity.
    """
    z, y = check_logits(logits, labels, name="logits")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not (0 < lo < hi and np.isfinite(hi)):
        raise BadInputError(f"bounds must be 0 < low < high, got {bounds!r}")
    res = minimize_scalar(lambda log_t: _nll(z, y, float(np.exp(log_t))),
                          bounds=(np.log(lo), np.log(hi)), method="bounded",
                          options={"xatol": 1e-6})
    t = float(np.exp(res.x))
    # Brent never evaluates the exact bounds: snap there when they are at least as good
    for edge in (lo, hi):
        if _nll(z, y, edge) <= _nll(z, y, t):
            t = edge
    return t


def apply_temperature(logits: object, temperature: float) -> np.ndarray:
    """Probabilities ``softmax(logits / temperature)`` (N x C, float64)."""
    z = check_matrix(logits, name="logits", allow_neg_inf=True)
    return softmax(z / _check_temperature(temperature), axis=1)


def temperature_report(val_logits: object, val_labels: object, test_logits: object, test_labels: object,
                       *, n_bins: int = N_BINS, bounds: tuple[float, float] = T_BOUNDS) -> dict[str, Any]:
    """Fit T on validation logits; ECE, MCE and NLL on the test set before (T=1) and after."""
    zt, yt = check_logits(test_logits, test_labels, name="test_logits")
    zv, yv = check_logits(val_logits, val_labels, name="val_logits")
    if zv.shape[1] != zt.shape[1]:
        raise BadInputError(f"val_logits has {zv.shape[1]} columns but test_logits has {zt.shape[1]}; "
                            "both must come from the same model")
    t = fit_temperature(zv, yv, bounds=bounds)
    out: dict[str, Any] = {"temperature": t, "n_val": len(yv), "n_test": len(yt),
                           "at_bound": bool(np.isclose(t, bounds[0]) or np.isclose(t, bounds[1]))}
    for key, temp in (("before", 1.0), ("after", t)):
        errs = calibration_errors(softmax(zt / temp, axis=1), yt, n_bins)
        out[key] = {"ece": errs["ece"], "mce": errs["mce"], "nll": _nll(zt, yt, temp), "bins": errs["bins"]}
    return out
