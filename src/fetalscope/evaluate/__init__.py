"""Honest evaluation of a classifier from its predictions: metrics, calibration, bootstrap CIs,
breakdowns by acquisition metadata, plots and the report files (report.json, report.md, PNGs).

Entry point: :func:`evaluate_predictions`. ``collect_logits`` runs a model over a data loader.
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
from fetalscope.evaluate.markdown import render_markdown
from fetalscope.evaluate.metrics import classification_metrics, confusion_scores, roc_auc_per_class
from fetalscope.evaluate.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves
from fetalscope.evaluate.report import evaluate_predictions, summarise, write_report

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
