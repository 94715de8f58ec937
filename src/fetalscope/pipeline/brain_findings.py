"""Normal vs abnormal findings for brain images, from a bundled (or given) binary classifier.

The findings record carries the model card's own ``status`` and ``warning`` verbatim (the shipped
``brain-normal-abnormal-demo`` card says "demonstration, confounded data"); nothing here types a
caution in. The :class:`~fetalscope.pipeline.analyser.Analyser` runs it only on images its plane model
calls ``Fetal brain`` (the routing of the brain sub-plane), and otherwise records why it did not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.config import DEFAULT_MODELS
from fetalscope.data.transforms import model_input
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.pipeline.analysis import top_and_scores

DEFAULT_BRAIN_FINDINGS_MODEL = DEFAULT_MODELS["brain_findings"]
NO_STATUS = "no status given in the model card"


class BrainFindingsModel:
    """A loaded normal/abnormal bundle and its predictor.

    ``bundle`` is the :class:`~fetalscope.models.bundle.Bundle`; ``predictor`` runs it with the requested
    runtime when the bundle supports it (e.g. ONNX needs ``model.onnx``), else with ``auto``.
    """

    def __init__(self, name_or_path: str | Path = DEFAULT_BRAIN_FINDINGS_MODEL, runtime: str = "auto") -> None:
        from fetalscope.models.bundle import load_bundle
        from fetalscope.models.runtime import make_predictor, secondary_runtime

        self.bundle = load_bundle(name_or_path)
        self.predictor = make_predictor(self.bundle, runtime=secondary_runtime(self.bundle, runtime))
        self.classes: list[str] = list(self.bundle.classes)
        card = self.bundle.card
        self.status: str = str(card.get("status") or NO_STATUS)
        self.warning: str | None = card.get("warning") or None
        self.model_info = {"id": self.bundle.name, "version": str(card.get("version", "")),
                           "task": card.get("task", ""), "runtime": self.predictor.name}

    @classmethod
    def default(cls, runtime: str = "auto") -> BrainFindingsModel | None:
        """The shipped default model, or ``None`` when it is not installed."""
        from fetalscope.models.bundle import available_bundles

        if DEFAULT_BRAIN_FINDINGS_MODEL not in available_bundles():
            return None
        return cls(DEFAULT_BRAIN_FINDINGS_MODEL, runtime)

    def probabilities(self, image: UltrasoundImage, memo: dict | None = None) -> np.ndarray:
        """Calibrated probabilities over :attr:`classes` (the card's temperature applied)."""
        return np.asarray(self.predictor.predict_proba(model_input(image, self.bundle.preprocess, memo)))[0]

    def findings(self, image: UltrasoundImage, memo: dict | None = None) -> dict[str, Any]:
        """The findings record of one image (see :func:`findings_record`)."""
        return findings_record(self.probabilities(image, memo), self.classes, self.model_info, self.status,
                               self.warning)


def findings_record(probs: np.ndarray, classes: list[str], model: dict[str, Any], status: str,
                    warning: str | None) -> dict[str, Any]:
    """``{label, probability, probabilities: [{label, probability}], model: {id, version, task, runtime},
    status, warning}``: every class's probability, the top one, and the card's status and warning."""
    return {
        **top_and_scores(probs, classes),
        "model": dict(model),
        "status": status,
        "warning": warning,
    }
