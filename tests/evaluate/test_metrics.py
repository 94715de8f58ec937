"""Metrics against small cases computed by hand, coverage and zero-support handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from fetalscope.evaluate.metrics import classification_metrics, confusion_scores


def probs_for(pred: list[int], n_classes: int, top: float = 0.7) -> np.ndarray:
    """Rows giving ``top`` to the predicted class and the rest spread evenly."""
    rest = (1 - top) / (n_classes - 1)
    p = np.full((len(pred), n_classes), rest)
    p[np.arange(len(pred)), pred] = top
    return p


# 3 classes, 6 images.
#   y_true: 0 0 1 1 2 2
#   pred:   0 1 1 1 2 0
Y = [0, 0, 1, 1, 2, 2]
PRED = [0, 1, 1, 1, 2, 0]
CLASSES = ["a", "b", "c"]


def test_hand_computed_three_class_example():
    m = classification_metrics(Y, probs_for(PRED, 3), CLASSES)
    # confusion by hand: rows true, columns predicted
    assert m["confusion_matrix"]["counts"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_matrix"]["normalized"] == [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["correct"] == 4
    # class a: TP 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
    # class b: TP 2, predicted 3, support 2 -> P 2/3, R 1,   F1 0.8
    # class c: TP 1, predicted 1, support 2 -> P 1,   R 1/2, F1 2/3
    expected = {"a": (0.5, 0.5, 0.5), "b": (2 / 3, 1.0, 0.8), "c": (1.0, 0.5, 2 / 3)}
    for row in m["per_class"]:
        p, r, f = expected[row["class"]]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f))
        assert row["support"] == 2
        assert row["too_few"] is True  # 2 < 10 images
        assert row["status"] == "ok"
    assert [r["predicted"] for r in m["per_class"]] == [2, 3, 1]
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # equal supports
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # 4 right answers at p=0.7, 2 wrong where the true class got 0.15
    assert m["log_loss"] == pytest.approx((4 * -math.log(0.7) + 2 * -math.log(0.15)) / 6)
    assert m["too_few"] is True and m["n"] == 6


def test_hand_computed_roc_auc_with_ties():
    m = classification_metrics(Y, probs_for(PRED, 3, top=0.7), CLASSES)
    # class a scores: positives (0.7, 0.15), negatives (0.15, 0.15, 0.15, 0.7)
    # pairs won: 0.7 beats three 0.15 and ties one 0.7 -> 3.5; 0.15 ties three -> 1.5; total 5 of 8
    assert m["roc_auc"]["per_class"]["a"] == pytest.approx(5 / 8)
    # class c scores: positives (0.7, 0.15), negatives all 0.15 -> 0.7 wins 4, 0.15 ties 4 -> 6 of 8
    assert m["roc_auc"]["per_class"]["c"] == pytest.approx(6 / 8)
    # class b: positives (0.7, 0.7), negatives (0.15, 0.7, 0.15, 0.15) -> each wins 3, ties 1 -> 7 of 8
    assert m["roc_auc"]["per_class"]["b"] == pytest.approx(7 / 8)
    assert m["roc_auc"]["macro"] == pytest.approx((5 / 8 + 6 / 8 + 7 / 8) / 3)
    assert m["roc_auc"]["n_classes_averaged"] == 3


def test_declared_not_covered_class_is_not_a_zero():
    # 4 classes; the card says "d" is not covered; its 2 images are called "a" and "b"
    y = [0, 0, 1, 1, 2, 2, 3, 3]
    pred = [0, 0, 1, 1, 2, 1, 0, 1]
    p = probs_for(pred, 4, top=0.85)
    p[:, 3] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    m = classification_metrics(y, p, ["a", "b", "c", "d"], classes_not_covered=["d"])
    d = m["per_class"][3]
    assert d["status"] == "not_covered" and d["covered"] is False
    assert d["precision"] is None and d["recall"] is None and d["f1"] is None and d["roc_auc"] is None
    assert d["support"] == 2
    assert any("not covered" in n for n in d["notes"])
    assert m["roc_auc"]["notes"]["d"] == "not covered by the model"
    # its images still count as errors overall ...
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["accuracy_on_covered"] == pytest.approx(5 / 6)
    # ... but class averages run over covered classes only, and say so
    assert m["averaged_over"] == ["a", "b", "c"]
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=[0, 1, 2], average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(recall_score(y, pred, labels=[0, 1, 2], average="macro"))
    assert m["not_covered"] == [{"class": "d", "reason": "listed in the model card's classes_not_covered",
                                 "support": 2}]


def test_class_with_zero_probability_everywhere_is_detected_as_not_covered():
    y = [0, 1, 2, 0, 1, 2]
    p = np.array([[0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0],
                  [0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.5, 0.5, 0.0]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    c = m["per_class"][2]
    assert c["status"] == "not_covered" and c["f1"] is None
    assert "probability 0" in m["not_covered"][0]["reason"]


def test_zero_support_class_gives_nulls_with_reasons_not_a_crash():
    # class "c" has no test images but is predicted once; class "d" has none and is never predicted
    y = [0, 0, 1, 1]
    pred = [0, 2, 1, 1]
    m = classification_metrics(y, probs_for(pred, 4), ["a", "b", "c", "d"])
    c, d = m["per_class"][2], m["per_class"][3]
    assert c["status"] == "no_support" and c["recall"] is None and c["f1"] is None
    assert c["precision"] == 0.0 and c["predicted"] == 1
    assert d["status"] == "no_support" and d["precision"] is None
    assert m["roc_auc"]["per_class"]["c"] is None
    assert "no test images" in m["roc_auc"]["notes"]["c"]
    assert m["confusion_matrix"]["normalized"][2] is None
    assert m["averaged_over"] == ["a", "b"]
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=[0, 1], average="macro"))
    assert np.isfinite(m["log_loss"])


def test_covered_class_never_predicted_has_undefined_precision():
    y = [0, 0, 1, 1, 2, 2]
    pred = [0, 0, 1, 1, 1, 1]  # "c" has images but is never predicted
    m = classification_metrics(y, probs_for(pred, 3), ["a", "b", "c"])
    c = m["per_class"][2]
    assert c["never_predicted"] is True and c["precision"] is None
    assert c["recall"] == 0.0 and c["f1"] == 0.0 and c["status"] == "ok"


def test_single_class_test_set_auc_is_null_with_reason():
    m = classification_metrics([1, 1, 1], probs_for([1, 0, 1], 2), ["a", "b"])
    assert m["roc_auc"]["per_class"]["b"] is None
    assert "every test image" in m["roc_auc"]["notes"]["b"]
    assert m["roc_auc"]["macro"] is None and m["roc_auc"]["macro_note"]


def test_confusion_scores_match_sklearn_on_random_predictions():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    cm = np.zeros((5, 5))
    np.add.at(cm, (y, pred), 1)
    s = confusion_scores(cm)
    assert s["accuracy"] == pytest.approx((y == pred).mean())
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert s["balanced_accuracy"] == pytest.approx(recall_score(y, pred, average="macro"))
    # vectorised over a stack of matrices
    stack = confusion_scores(np.stack([cm, cm.T]))
    assert stack["accuracy"].shape == (2,)
    assert stack["weighted_f1"][1] == pytest.approx(f1_score(pred, y, average="weighted"))
