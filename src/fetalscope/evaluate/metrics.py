"""Classification metrics from predictions: what a model got right, per class and overall.

Point estimates come from scikit-learn. :func:`confusion_scores` recomputes the summary scores
from confusion matrices (vectorised over any leading axes) so the bootstrap and the breakdowns
use exactly the same definitions; the tests check both agree with scikit-learn.

Definitions kept honest:

- *Covered* classes are those the model can predict. A class is not covered when the model card
  says so (``classes_not_covered``) or when the model gives it probability 0 on every image.
  Not-covered classes get ``null`` precision/recall/F1/AUC with status ``"not_covered"``, never a 0
  that reads as a measured failure. Their images still count as errors in ``accuracy``.
- *Scored* classes are covered classes with at least one test image. Balanced accuracy, macro F1
  and weighted F1 average over the scored classes; ``averaged_over`` names them.
- A class with fewer than ``min_support`` test images keeps its numbers but carries
  ``too_few: true`` so reports print counts instead of a bare percentage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from fetalscope.evaluate.validate import (
    check_classes,
    check_labels,
    check_not_covered,
    check_probs,
    check_same_length,
)

#: Fewer test images than this in a class (or group) and a percentage is not worth printing.
MIN_SUPPORT = 10


def check_predictions(y_true: object, probs: object, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray,
                                                                                      list[str]]:
    """Validate one evaluation input: labels (N,), probabilities (N x C), C class names."""
    p = check_probs(probs)
    names = check_classes(classes, p.shape[1])
    y = check_labels(y_true, p.shape[1])
    check_same_length(len(y), p, name="probs", against="y_true")
    return y, p, names


NotCovered = Sequence[str] | Mapping[str, str]


def coverage(probs: np.ndarray, classes: Sequence[str],
             classes_not_covered: NotCovered = ()) -> tuple[np.ndarray, dict[str, str]]:
    """Which classes the model can predict: a boolean mask (C,) and a reason for each one it cannot.

    ``classes_not_covered``: names (from a model card) or ``{name: reason}``.
    """
    declared = check_not_covered(classes_not_covered, classes)
    mask = np.ones(len(classes), dtype=bool)
    reasons: dict[str, str] = {}
    never = probs.max(axis=0) <= 0.0
    for i, name in enumerate(classes):
        if name in declared:
            mask[i] = False
            reasons[name] = declared[name]
        elif never[i]:
            mask[i] = False
            reasons[name] = "the model gives this class probability 0 on every test image"
    return mask, reasons


def confusion_scores(cm: np.ndarray, covered: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro F1 and weighted F1 from confusion matrices (..., C, C).

    Rows are true classes, columns predicted classes. Averages run over *scored* classes (covered
    and with support in that matrix); where none is scored the value is NaN.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n_classes = cm.shape[-1]
    covered = np.ones(n_classes, dtype=bool) if covered is None else np.asarray(covered, dtype=bool)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    total = support.sum(axis=-1)
    scored = (support > 0) & covered
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=-1) / total
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), 0.0)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        n_scored = scored.sum(axis=-1)
        w_support = np.where(scored, support, 0.0)
        balanced = np.where(scored, recall, 0.0).sum(axis=-1) / n_scored
        macro_f1 = np.where(scored, f1, 0.0).sum(axis=-1) / n_scored
        weighted_f1 = (w_support * f1).sum(axis=-1) / w_support.sum(axis=-1)
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": macro_f1,
            "weighted_f1": weighted_f1}


def _float(x: float | np.floating | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else x


def roc_auc_per_class(y: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                      covered: np.ndarray) -> dict[str, Any]:
    """One-vs-rest ROC AUC per class and their macro mean; null with a reason where undefined."""
    per_class: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for i, name in enumerate(classes):
        positives = int((y == i).sum())
        if not covered[i]:
            per_class[name], notes[name] = None, "not covered by the model"
        elif positives == 0:
            per_class[name], notes[name] = None, "no test images of this class (AUC undefined)"
        elif positives == len(y):
            per_class[name], notes[name] = None, "every test image is this class (AUC undefined)"
        else:
            per_class[name] = float(roc_auc_score(y == i, probs[:, i]))
    values = [v for v in per_class.values() if v is not None]
    return {
        "macro": float(np.mean(values)) if values else None,
        "macro_note": None if values else "no class has both positive and negative test images",
        "n_classes_averaged": len(values),
        "per_class": per_class,
        "notes": notes,
    }


def roc_curves(y: np.ndarray, probs: np.ndarray, classes: Sequence[str],
               covered: np.ndarray) -> dict[str, dict[str, Any]]:
    """One-vs-rest ROC curve points (fpr, tpr lists and AUC) for each class where it is defined."""
    curves: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(classes):
        pos = y == i
        if not covered[i] or pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos, probs[:, i])
        curves[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                        "auc": float(roc_auc_score(pos, probs[:, i]))}
    return curves


def classification_metrics(y_true: object, probs: object, classes: Sequence[str], *,
                           classes_not_covered: NotCovered = (),
                           min_support: int = MIN_SUPPORT) -> dict[str, Any]:
    """All point metrics of a classifier from its test predictions (JSON-ready dict).

    ``y_true``: N integer class indices; ``probs``: N x C probabilities (rows sum to 1);
    ``classes``: C names in column order; ``classes_not_covered``: names the model cannot predict
    (or ``{name: reason}``).
    """
    y, p, names = check_predictions(y_true, probs, classes)
    n_classes = len(names)
    labels = list(range(n_classes))
    covered, cover_reasons = coverage(p, names, classes_not_covered)
    pred = p.argmax(axis=1)

    cm = confusion_matrix(y, pred, labels=labels)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    scored = covered & (support > 0)
    scored_idx = [i for i in labels if scored[i]]

    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    auc = roc_auc_per_class(y, p, names, covered)

    per_class = []
    for i, name in enumerate(names):
        entry: dict[str, Any] = {
            "class": name, "index": i, "support": int(support[i]), "predicted": int(predicted[i]),
            "correct": int(cm[i, i]), "precision": float(prec[i]), "recall": float(rec[i]),
            "f1": float(f1[i]), "roc_auc": auc["per_class"][name], "covered": bool(covered[i]),
            "status": "ok", "too_few": bool(0 < support[i] < min_support), "never_predicted": False,
            "notes": [],
        }
        if not covered[i]:
            entry.update(status="not_covered", precision=None, recall=None, f1=None)
            entry["notes"].append(f"not covered: {cover_reasons[name]}")
            if support[i]:
                entry["notes"].append(f"its {int(support[i])} test images count as errors in accuracy")
        elif support[i] == 0:
            entry.update(status="no_support", recall=None, f1=None)
            entry["notes"].append("no test images of this class")
            if predicted[i] == 0:
                entry["precision"] = None
            else:
                entry["notes"].append(f"predicted {int(predicted[i])} times, always wrongly")
        elif predicted[i] == 0:
            entry.update(precision=None, never_predicted=True)
            entry["notes"].append("never predicted on the test set: precision undefined")
        if entry["too_few"] and covered[i]:
            entry["notes"].append(f"too few test images ({int(support[i])} < {min_support}) for a "
                                  "percentage to mean much")
        per_class.append(entry)

    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = cm / support[:, None]
    normalised_rows = [row.tolist() if support[i] else None for i, row in enumerate(normalised)]

    on_covered = covered[y]
    result: dict[str, Any] = {
        "n": int(len(y)),
        "classes": names,
        "min_support": int(min_support),
        "too_few": bool(len(y) < min_support),
        "accuracy": float(accuracy_score(y, pred)),
        "correct": int((y == pred).sum()),
        "accuracy_on_covered": _float(accuracy_score(y[on_covered], pred[on_covered]))
        if on_covered.any() else None,
        "n_on_covered": int(on_covered.sum()),
        "balanced_accuracy": _float(recall_score(y, pred, labels=scored_idx, average="macro",
                                                 zero_division=0)) if scored_idx else None,
        "macro_f1": _float(f1_score(y, pred, labels=scored_idx, average="macro", zero_division=0))
        if scored_idx else None,
        "weighted_f1": _float(f1_score(y, pred, labels=scored_idx, average="weighted", zero_division=0))
        if scored_idx else None,
        "averaged_over": [names[i] for i in scored_idx],
        "log_loss": float(log_loss(y, p, labels=labels)),
        "log_loss_on_covered": float(log_loss(y[on_covered], p[on_covered], labels=labels))
        if on_covered.any() else None,
        "roc_auc": auc,
        "per_class": per_class,
        "confusion_matrix": {"labels": names, "counts": cm.tolist(), "normalized": normalised_rows},
        "not_covered": [{"class": c, "reason": r, "support": int(support[names.index(c)])}
                        for c, r in cover_reasons.items()],
    }
    return result
