"""The one result type. The CLI writes it, the API returns it, the UI renders it: same field names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def top_and_scores(probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """``{label, probability, probabilities: [{label, probability}]}`` of a secondary model's output:
    its top class and every class's probability (rounded to 6 digits)."""
    top = int(np.argmax(probs))
    return {
        "label": classes[top],
        "probability": round(float(probs[top]), 6),
        "probabilities": [{"label": c, "probability": round(float(p), 6)}
                          for c, p in zip(classes, probs, strict=True)],
    }


@dataclass
class ClassScore:
    """A class of the model's label space and its probability (``None``: the model does not cover it)."""

    label: str
    probability: float | None


@dataclass
class Analysis:
    """Everything fetalscope says about one image.

    - ``plane`` / ``plane_probability``: top class of the plane model and its calibrated probability.
    - ``probabilities``: every class of the label space in order; not-covered classes have ``None``.
    - ``classes_not_covered``: classes the model cannot predict (e.g. Maternal cervix for SonoNet).
    - ``detail``: model-specific extras (e.g. SonoNet's own 14-plane probabilities).
    - ``brain_plane``: sub-plane result for brain images (``label``, ``probabilities``, ``note``).
    - ``brain_findings``: normal/abnormal result for brain images: ``label``, ``probability``,
      ``probabilities`` (``[{label, probability}]``, every class), ``model`` (``id``, ``version``, ``task``,
      ``runtime``) and the model card's ``status`` and ``warning`` verbatim; ``None`` when it did not run,
      with the reason in ``brain_findings_skipped`` (not a brain image, not ultrasound, no model installed).
    - ``uncertain`` / ``uncertainty``: low top-1 or high entropy, with the numbers and reasons.
    - ``ood``: out-of-distribution check (``flag``, ``score``, ``reasons``).
    - ``detections``, ``measurement``, ``findings``: filled when those capabilities ran.
    - ``warnings``: human-readable cautions shown to the user.
    """

    image: str
    width: int
    height: int
    model: dict[str, Any]
    plane: str | None
    plane_probability: float | None
    probabilities: list[ClassScore]
    classes_not_covered: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    brain_plane: dict[str, Any] | None = None
    brain_findings: dict[str, Any] | None = None
    brain_findings_skipped: str | None = None
    uncertain: bool = False
    uncertainty: dict[str, Any] = field(default_factory=dict)
    ood: dict[str, Any] = field(default_factory=dict)
    detections: list[dict[str, Any]] | None = None
    measurement: dict[str, Any] | None = None
    findings: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def probability_map(self) -> dict[str, float | None]:
        return {c.label: c.probability for c in self.probabilities}

    def to_row(self) -> dict[str, Any]:
        """Flat CSV row: image, predicted plane, its probability, one column per class, the brain sub-plane,
        flags and model, then the brain findings (label, status; ``brain_findings_p_<class>`` columns only
        when findings ran, so a CSV writer takes the union of the rows' keys)."""
        row: dict[str, Any] = {
            "image": self.image,
            "plane": self.plane,
            "plane_probability": self.plane_probability,
        }
        for c in self.probabilities:
            row[f"p_{c.label}"] = "" if c.probability is None else round(c.probability, 6)
        row["brain_plane"] = (self.brain_plane or {}).get("label") or ""
        row["uncertain"] = self.uncertain
        row["ood"] = bool(self.ood.get("flag", False))
        row["model"] = self.model.get("id", "")
        findings = self.brain_findings or {}
        row["brain_findings"] = findings.get("label") or ""
        row["brain_findings_status"] = findings.get("status") or ""
        for c in findings.get("probabilities") or []:
            row[f"brain_findings_p_{c['label']}"] = c["probability"]
        return row
