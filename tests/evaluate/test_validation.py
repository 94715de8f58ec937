"""Bad inputs raise BadInputError with messages that say what is wrong and how to fix it."""

from __future__ import annotations

import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.evaluate import (
    bootstrap_confusion_metrics,
    classification_metrics,
    evaluate_predictions,
    fit_temperature,
    reliability_bins,
)

CLASSES = ["a", "b", "c"]
GOOD_P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
GOOD_Y = [0, 1, 2, 1]


@pytest.mark.parametrize(
    ("y", "probs", "classes", "message"),
    [
        ([0, 1, 2], GOOD_P, CLASSES, "probs has 4 entries but y_true has 3"),
        (GOOD_Y, GOOD_P * 0.9, CLASSES, "row 0 sums to 0.9000"),
        (GOOD_Y, np.log(GOOD_P), CLASSES, "If these are logits, pass them through softmax"),
        (GOOD_Y, np.where(np.eye(4, 3) == 1, np.nan, GOOD_P), CLASSES, r"contains NaN \(first in row 0"),
        (GOOD_Y, GOOD_P, ["a", "b"], "classes has 2 names but the scores have 3 columns"),
        (GOOD_Y, GOOD_P, ["a", "b", "a"], "duplicate names \\['a'\\]"),
        ([0, 1, 3, 1], GOOD_P, CLASSES, "y_true\\[2\\] = 3 is not a valid class index"),
        ([0, 1, 2.5, 1], GOOD_P, CLASSES, "whole-number class indices"),
        ([0, 1, np.nan, 1], GOOD_P, CLASSES, "y_true contains NaN"),
        (["a", "b", "c", "b"], GOOD_P, CLASSES, "map class names to indices"),
        ([], np.zeros((0, 3)), CLASSES, "y_true is empty|probs is empty"),
        (GOOD_Y, GOOD_P[0], CLASSES, "probs must be 2-D"),
    ],
)
def test_bad_predictions_raise_clear_errors(y, probs, classes, message):
    with pytest.raises(BadInputError, match=message):
        classification_metrics(y, probs, classes)
    with pytest.raises(BadInputError, match=message):
        evaluate_predictions(y, probs, classes, n_boot=10)


def test_unknown_not_covered_class_is_named():
    with pytest.raises(BadInputError, match="classes_not_covered names \\['cervix'\\]"):
        classification_metrics(GOOD_Y, GOOD_P, CLASSES, classes_not_covered=["cervix"])


def test_groups_and_calibration_inputs_are_checked():
    with pytest.raises(BadInputError, match="groups has 2 entries but y_true has 4"):
        evaluate_predictions(GOOD_Y, GOOD_P, CLASSES, groups=["p1", "p2"], n_boot=10)
    with pytest.raises(BadInputError, match="groups has no id for 1 images"):
        bootstrap_confusion_metrics(GOOD_Y, [0, 1, 2, 0], 3, groups=["p1", None, "p2", "p2"], n_boot=10)
    with pytest.raises(BadInputError, match="val_logits was given without val_labels"):
        evaluate_predictions(GOOD_Y, GOOD_P, CLASSES, val_logits=np.zeros((2, 3)), n_boot=10)
    with pytest.raises(BadInputError, match="softmax\\(test_logits\\) differs from probs"):
        evaluate_predictions(GOOD_Y, GOOD_P, CLASSES, test_logits=np.zeros((4, 3)), n_boot=10)
    with pytest.raises(BadInputError, match="val_logits has 2 columns but probs has 3"):
        evaluate_predictions(GOOD_Y, GOOD_P, CLASSES, val_logits=np.zeros((2, 2)), val_labels=[0, 1],
                             n_boot=10)
    with pytest.raises(BadInputError, match="logits has 2 entries but labels has 3"):
        fit_temperature(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(BadInputError, match="logits contains infinity"):
        fit_temperature([[np.inf, 0.0]], [0])
    with pytest.raises(BadInputError, match="n_bins must be a positive integer"):
        reliability_bins(GOOD_P, GOOD_Y, n_bins=0)
    with pytest.raises(BadInputError, match="n_boot must be a positive integer"):
        bootstrap_confusion_metrics(GOOD_Y, [0, 1, 2, 0], 3, n_boot=0)


def test_errors_are_value_errors_with_http_400():
    with pytest.raises(ValueError) as info:
        classification_metrics([0], [[0.5, 0.6]], ["a", "b"])
    assert info.value.http_status == 400
