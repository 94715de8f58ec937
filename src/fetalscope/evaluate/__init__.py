"""The shared statistics and reporting engine every task uses; pure numbers in, numbers and files out.

- classification: :mod:`.metrics`, :mod:`.calibration`, :mod:`.breakdown` (by acquisition metadata),
  :mod:`.plots`, :mod:`.markdown`, and :mod:`.classification_report` (``report.json`` + ``report.md`` +
  PNGs; entry point :func:`evaluate_predictions`); :mod:`.bundle_eval` evaluates a classifier bundle on a
  labelled set, ``collect_logits`` (:mod:`.inference`) runs a model over a data loader;
- every task: :mod:`.bootstrap` (percentile intervals resampling whole groups), :mod:`.validate`;
- detection: :mod:`.detection` (mAP, precision/recall, threshold choice, group-bootstrap mAP on boxes);
- measurements: :mod:`.agreement` (MAE, bias, Bland-Altman limits, Pearson r with intervals);
- shortcuts: :mod:`.shortcut` (does a nuisance variable predict the label?).

It imports only :mod:`fetalscope.models`, :mod:`fetalscope.data` and below, never ``train`` or a capability.
The names below load eagerly except ``collect_logits`` (torch); import :mod:`.detection` (torch,
torchmetrics) and :mod:`.agreement` directly.
"""

from fetalscope.evaluate.bootstrap import (
    bootstrap_ci,
    bootstrap_confusion_metrics,
    bootstrap_confusions,
    resample_indices,
)
from fetalscope.evaluate.breakdown import breakdown_by
from fetalscope.evaluate.calibration import (
    apply_temperature,
    calibration_errors,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    nll,
    reliability_bins,
    temperature_report,
)
from fetalscope.evaluate.classification_report import evaluate_predictions, summarise, write_report
from fetalscope.evaluate.markdown import render_markdown
from fetalscope.evaluate.metrics import classification_metrics, confusion_scores, roc_auc_per_class
from fetalscope.evaluate.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves

__all__ = [
    "apply_temperature",
    "bootstrap_ci",
    "bootstrap_confusion_metrics",
    "bootstrap_confusions",
    "breakdown_by",
    "calibration_errors",
    "classification_metrics",
    "collect_logits",
    "confusion_scores",
    "evaluate_predictions",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "nll",
    "plot_confusion_matrix",
    "plot_reliability",
    "plot_roc_curves",
    "reliability_bins",
    "render_markdown",
    "resample_indices",
    "roc_auc_per_class",
    "summarise",
    "temperature_report",
    "write_report",
]


def __getattr__(name: str):  # torch is imported only when collect_logits is used
    if name == "collect_logits":
        from fetalscope.evaluate.inference import collect_logits

        return collect_logits
    raise AttributeError(name)
