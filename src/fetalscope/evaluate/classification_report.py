"""One call from test predictions to a complete evaluation report (dict, report.json, report.md, PNGs).

Every number in the report is computed here from the arrays passed in; the Markdown only formats
the dict (see :mod:`fetalscope.evaluate.markdown`).

report.json (schema ``fetalscope.evaluation/1``; ``null`` wherever a value is undefined)::

    schema, title, created_utc, fetalscope_version, context {free-form: model, data, split...}
    summary: headline numbers (see summarise()): accuracy, accuracy_ci [lo, hi], balanced_accuracy,
        macro_f1, weighted_f1 (+ _ci), ci_unit, roc_auc_macro, log_loss, ece, ece_before_calibration,
        temperature, n_test_images, n_patients, classes_not_covered, classes_too_few
    n_images, n_groups (patients or null), classes [C names], classes_not_covered [names],
    min_support (images below which a class/group is "too_few")
    metrics:
        n, correct, too_few, accuracy, accuracy_on_covered, n_on_covered,
        balanced_accuracy, macro_f1, weighted_f1, averaged_over [scored class names],
        log_loss, log_loss_on_covered,
        roc_auc: {macro, macro_note, n_classes_averaged, per_class {name: auc|null},
                  notes {name: why null}},
        per_class: [{class, index, support, predicted, correct, precision, recall, f1, roc_auc,
                     covered, status ("ok"|"not_covered"|"no_support"), too_few, never_predicted,
                     notes [str]}],
        confusion_matrix: {labels, counts [C x C], normalized [C rows | null for empty rows]},
        not_covered: [{class, reason, support}]
    confidence_intervals: {accuracy|balanced_accuracy|macro_f1|weighted_f1:
        {estimate, lower, upper, confidence, n_boot, n_valid, unit ("group"|"image"), n_units,
         seed, method ("percentile"), too_few_units}}
    calibration: {n_bins, n_images, scope, logits_source ("test_logits"|"log(probs)"),
        temperature, n_val, at_bound, note,
        before: {ece, mce, nll, bins {n_bins, edges, count, confidence, accuracy}},
        after: same as before, or null without validation logits}
    breakdowns: null | {min_count, missing_columns, columns: {column: [{value, n, correct,
        n_patients, too_few, accuracy, balanced_accuracy, macro_f1, weighted_f1, class_counts}]}}
    plots: {confusion_counts|confusion_normalized|roc|reliability: {png, json}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.evaluate.bootstrap import CONFIDENCE, N_BOOT, SEED, bootstrap_confusion_metrics
from fetalscope.evaluate.breakdown import DEFAULT_COLUMNS, breakdown_by
from fetalscope.evaluate.calibration import (
    N_BINS,
    calibration_errors,
    temperature_report,
)
from fetalscope.evaluate.markdown import render_markdown
from fetalscope.evaluate.metrics import MIN_SUPPORT, check_predictions, classification_metrics, roc_curves
from fetalscope.evaluate.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves
from fetalscope.evaluate.validate import check_groups, check_labels, check_matrix, check_same_length

SCHEMA = "fetalscope.evaluation/1"
CI_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")


def _jsonable(value: Any) -> Any:
    """``value`` with paths, numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _log_probs(p: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Logits equivalent to probabilities (softmax(log p) = p).

    A zero probability becomes -inf in a not-covered column (stays 0 at any temperature) and the
    log of the smallest float in a covered one (an underflow, not an impossibility).
    """
    floor = np.where(covered, np.finfo(np.float64).tiny, 0.0)[None, :]
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(p, floor))


def _calibration(y: np.ndarray, p: np.ndarray, covered: np.ndarray, *, val_logits: object,
                 val_labels: object, test_logits: object, n_bins: int) -> dict[str, Any]:
    keep = covered[y]
    out: dict[str, Any] = {
        "n_bins": n_bins, "n_images": int(keep.sum()),
        "scope": "all test images" if keep.all() else "test images of covered classes",
        "logits_source": None, "temperature": None, "n_val": None, "at_bound": None,
        "before": None, "after": None, "note": None,
    }
    if not keep.any():
        out["note"] = "no test image belongs to a class the model covers"
        return out
    if test_logits is not None:
        z = check_matrix(test_logits, name="test_logits", allow_neg_inf=True)
        if z.shape != p.shape:
            raise BadInputError(f"test_logits has shape {z.shape} but probs has {p.shape}; pass the logits "
                                "the probabilities came from, or leave test_logits out")
        gap = float(np.abs(softmax(z, axis=1) - p).max())
        if gap > 1e-3:
            raise BadInputError(f"softmax(test_logits) differs from probs by up to {gap:.3g}; they must come "
                                "from the same model and images (or leave test_logits out)")
        out["logits_source"] = "test_logits"
    else:
        z = _log_probs(p, covered)
        out["logits_source"] = "log(probs)"
    zk, yk = z[keep], y[keep]
    if val_logits is None:
        before = calibration_errors(p[keep], yk, n_bins)
        logp = np.log(np.clip(p[keep][np.arange(len(yk)), yk], np.finfo(float).tiny, None))
        out["before"] = {"ece": before["ece"], "mce": before["mce"], "nll": float(-logp.mean()),
                         "bins": before["bins"]}
        out["note"] = "no validation logits given: temperature scaling not fitted"
        return out
    if val_labels is None:
        raise BadInputError("val_logits was given without val_labels; pass the validation labels too")
    zv = check_matrix(val_logits, name="val_logits", allow_neg_inf=True)
    yv = check_labels(val_labels, zv.shape[1], name="val_labels")
    check_same_length(len(yv), zv, name="val_logits", against="val_labels")
    if zv.shape[1] != p.shape[1]:
        raise BadInputError(f"val_logits has {zv.shape[1]} columns but probs has {p.shape[1]}; "
                            "both must come from the same model")
    vkeep = covered[yv]
    if not vkeep.any():
        raise BadInputError("no validation image belongs to a class the model covers; temperature scaling "
                            "needs validation images of covered classes")
    temp = temperature_report(zv[vkeep], yv[vkeep], zk, yk, n_bins=n_bins)
    out.update(temperature=temp["temperature"], n_val=temp["n_val"], at_bound=temp["at_bound"],
               before=temp["before"], after=temp["after"])
    if temp["at_bound"]:
        out["note"] = "the fitted temperature sits at a search bound: the validation set is probably too " \
                      "small or separable to fit it"
    return out


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a report (for model cards, ablation tables and the CLI).

    ``*_ci`` are ``[lower, upper]`` or ``None``; ``ece`` is after temperature scaling when fitted.
    """
    m, cis, cal = report["metrics"], report["confidence_intervals"], report["calibration"]

    def ci(name: str) -> list[float] | None:
        c = cis.get(name) or {}
        return None if c.get("lower") is None else [c["lower"], c["upper"]]

    any_ci = next(iter(cis.values()), {})
    return {
        "n_test_images": report["n_images"],
        "n_patients": report["n_groups"],
        "accuracy": m["accuracy"], "accuracy_ci": ci("accuracy"),
        "balanced_accuracy": m["balanced_accuracy"], "balanced_accuracy_ci": ci("balanced_accuracy"),
        "macro_f1": m["macro_f1"], "macro_f1_ci": ci("macro_f1"),
        "weighted_f1": m["weighted_f1"], "weighted_f1_ci": ci("weighted_f1"),
        "ci_unit": "patient" if any_ci.get("unit") == "group" else "image",
        "roc_auc_macro": m["roc_auc"]["macro"],
        "log_loss": m["log_loss"],
        "ece_before_calibration": (cal.get("before") or {}).get("ece"),
        "ece": (cal.get("after") or cal.get("before") or {}).get("ece"),
        "temperature": cal.get("temperature"),
        "classes_not_covered": report["classes_not_covered"],
        "classes_too_few": [c["class"] for c in m["per_class"] if c["too_few"]],
    }


def evaluate_predictions(y_true: object, probs: object, classes: Sequence[str], *,
                         groups: object | None = None, meta: object | None = None,
                         val_logits: object | None = None, val_labels: object | None = None,
                         test_logits: object | None = None,
                         classes_not_covered: Sequence[str] | Mapping[str, str] = (),
                         out_dir: str | Path | None = None, title: str = "Evaluation report",
                         n_boot: int = N_BOOT, seed: int = SEED, confidence: float = CONFIDENCE,
                         n_bins: int = N_BINS, min_support: int = MIN_SUPPORT,
                         breakdown_columns: Sequence[str] = DEFAULT_COLUMNS,
                         context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a classifier from its test predictions; write report files when ``out_dir`` is given.

    ``y_true`` (N,) class indices; ``probs`` (N x C) probabilities; ``classes`` C names; ``groups``
    (N,) patient ids for patient-level bootstrap; ``meta`` per-image metadata for breakdowns
    (columns ``breakdown_columns``); ``val_logits``/``val_labels`` fit a temperature, applied to
    ``test_logits`` (default: log of ``probs``); ``classes_not_covered`` from the model card
    (names, or ``{name: reason}``);
    ``context``: what was evaluated on what (model, data, split...), shown at the top of report.md.
    Returns the report dict (schema ``fetalscope.evaluation/1``, described in this module's docstring).
    """
    y, p, names = check_predictions(y_true, probs, classes)
    g = None if groups is None else check_groups(groups, len(y))
    metrics = classification_metrics(y, p, names, classes_not_covered=classes_not_covered,
                                     min_support=min_support)
    covered = np.array([c["covered"] for c in metrics["per_class"]])
    pred = p.argmax(axis=1)

    cis = bootstrap_confusion_metrics(y, pred, len(names), groups=g, covered=covered, metrics=CI_METRICS,
                                      n_boot=n_boot, confidence=confidence, seed=seed)
    calibration = _calibration(y, p, covered, val_logits=val_logits, val_labels=val_labels,
                               test_logits=test_logits, n_bins=n_bins)
    breakdowns = None
    if meta is not None:
        breakdowns = breakdown_by(y, pred, len(names), meta, columns=breakdown_columns, covered=covered,
                                  groups=g, min_count=min_support)

    report: dict[str, Any] = {
        "schema": SCHEMA,
        "title": title,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "fetalscope_version": __version__,
        "context": _jsonable(dict(context or {})),
        "n_images": int(len(y)),
        "n_groups": None if g is None else len(set(g.tolist())),
        "classes": names,
        "classes_not_covered": [c["class"] for c in metrics["not_covered"]],
        "min_support": int(min_support),
        "metrics": metrics,
        "confidence_intervals": cis,
        "calibration": calibration,
        "breakdowns": breakdowns,
        "plots": {},
    }
    report["summary"] = summarise(report)
    if out_dir is not None:
        write_report(report, out_dir, y=y, probs=p)
    return report


def write_report(report: dict[str, Any], out_dir: str | Path, *, y: np.ndarray, probs: np.ndarray) -> Path:
    """Write the plots, ``report.json`` and ``report.md`` of ``report`` into ``out_dir``; fills
    ``report["plots"]`` with the file names. Returns the folder."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    m = report["metrics"]
    names = report["classes"]
    cm = m["confusion_matrix"]["counts"]
    covered = np.array([c["covered"] for c in m["per_class"]])
    missing = report["classes_not_covered"]
    plots = {
        "confusion_counts": plot_confusion_matrix(cm, names, folder / "confusion_counts.png",
                                                  not_covered=missing),
        "confusion_normalized": plot_confusion_matrix(cm, names, folder / "confusion_normalized.png",
                                                      normalized=True, not_covered=missing),
        "roc": plot_roc_curves(roc_curves(y, probs, names, covered), folder / "roc.png"),
    }
    cal = report["calibration"]
    if cal["before"] is not None:
        before = {**cal["before"]["bins"], "ece": cal["before"]["ece"]}
        after = None if cal["after"] is None else {**cal["after"]["bins"], "ece": cal["after"]["ece"]}
        plots["reliability"] = plot_reliability(before, folder / "reliability.png", after=after)
    report["plots"] = plots
    (folder / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    (folder / "report.md").write_text(render_markdown(report))
    return folder
