"""The one result type. The CLI writes it, the API returns it, the UI and the HTML report render it: same
field names everywhere; it serialises (:meth:`Analysis.to_dict`, ``to_json``, ``to_row``) and draws
(:meth:`Analysis.plot`, ``to_html``, ``to_pdf``) itself."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.imaging.display import DISPLAY_SIDE, thumbnail
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.models.cards import model_label
from fetalscope.pipeline.explanation import ExplanationResult


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
    """Everything fetalscope says about one image, and what ran to say it.

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
    - ``detections``: the brain-structure record (the one ``POST /v1/detect`` returns: ``boxes``,
      ``plausibility``, ``model``...) when detection ran, else ``None`` (the reason in ``detections_skipped``).
    - ``measurement``: the measurement record (the one ``POST /v1/measure`` returns) when a measurement ran,
      else ``None`` (the reason in ``measurement_skipped``).
    - ``quality``: the acquisition checklist record (the one ``POST /v1/quality`` returns: ``score``, ``grade``,
      ``criteria``...) when it ran (``analyse(..., quality=True)``), else ``None``.
    - ``explanations``: the :class:`~fetalscope.pipeline.explanation.ExplanationResult` s computed for this
      image (serialised without their maps).
    - ``warnings``: human-readable cautions shown to the user; ``timings_ms``: what took how long.

    The decoded image (``loaded``) rides along for :meth:`plot` and :meth:`to_html`; it is never serialised.
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
    detections: dict[str, Any] | None = None
    detections_skipped: str | None = None
    measurement: dict[str, Any] | None = None
    measurement_skipped: str | None = None
    quality: dict[str, Any] | None = None
    explanations: list[ExplanationResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    loaded: UltrasoundImage | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------------------------------- records
    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``predict --output F.json``, ``POST /v1/predict``, the report's ``analysis``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "loaded":
                continue
            value = getattr(self, f.name)
            if f.name == "probabilities":
                value = [asdict(c) for c in value]
            elif f.name == "explanations":
                value = [e.to_dict() for e in value]
            else:
                value = copy.deepcopy(value)
            out[f.name] = value
        out["fetalscope_version"] = __version__
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def probability_map(self) -> dict[str, float | None]:
        return {c.label: c.probability for c in self.probabilities}

    def to_row(self) -> dict[str, Any]:
        """Flat CSV row: image, predicted plane, its probability, one column per class, the brain sub-plane,
        flags and the plane model (``model``, ``model_version``), then the brain findings (label, status;
        ``brain_findings_p_<class>`` columns only when findings ran), the detections (``detections``: boxes kept,
        ``detected``: their labels) and the measurement's numbers (``measurement``, ``measurement_quality``,
        ``measurement_model``: the bundle with the revision of its weights, ``hc_mm``, ``hc_interval_low_mm``,
        ``hc_interval_high_mm``, ``bpd_mm``, ``ofd_mm``, ``ga_weeks``, ``ctr``, ``ctr_interval_low``,
        ``ctr_interval_high``) and the acquisition checklist
        (``quality_score``, ``quality_grade``, ``quality_failed``) only when they ran, so a CSV writer takes the
        union of the rows' keys; last, what took how long (``time_<step>_ms``: ``time_load_ms``,
        ``time_plane_ms``, ..., ``time_total_ms``)."""
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
        row["model_version"] = str(self.model.get("version", ""))
        findings = self.brain_findings or {}
        row["brain_findings"] = findings.get("label") or ""
        row["brain_findings_status"] = findings.get("status") or ""
        for c in findings.get("probabilities") or []:
            row[f"brain_findings_p_{c['label']}"] = c["probability"]
        if self.detections is not None:
            boxes = self.detections.get("boxes") or []
            row["detections"] = len(boxes)
            row["detected"] = ";".join(str(b["label"]) for b in boxes)
        if self.measurement is not None:
            m = self.measurement
            row["measurement"] = m.get("measurement") or ""
            row["measurement_quality"] = m.get("quality") or ""
            model = m.get("model")
            row["measurement_model"] = model_label(model) if isinstance(model, dict) and model.get("id") else ""
            if m.get("measurement") == "head":
                interval = m.get("hc_interval_mm") or ["", ""]
                row["hc_mm"] = "" if m.get("hc_mm") is None else m["hc_mm"]
                row["hc_interval_low_mm"], row["hc_interval_high_mm"] = interval
                for key in ("bpd_mm", "ofd_mm", "ga_weeks"):
                    row[key] = "" if m.get(key) is None else m[key]
            elif m.get("measurement") == "cardiothoracic":
                row["ctr"] = "" if not m.get("ctr") else m["ctr"].get("circumference")
                row["ctr_interval_low"], row["ctr_interval_high"] = m.get("ctr_interval") or ["", ""]
        if self.quality is not None:
            row["quality_score"] = "" if self.quality.get("score") is None else self.quality["score"]
            row["quality_grade"] = self.quality.get("grade") or ""
            row["quality_failed"] = ";".join(c["id"] for c in self.quality.get("criteria") or []
                                             if c.get("passed") is False)
        for step, ms in self.timings_ms.items():
            row[f"time_{step}_ms"] = ms
        return row

    # ------------------------------------------------------------------------------------- drawings
    def explanation(self, method: str) -> ExplanationResult:
        """The explanation computed with ``method`` (the last one, when it ran twice)."""
        for e in reversed(self.explanations):
            if e.method == method:
                return e
        ran = ", ".join(e.method for e in self.explanations) or "none"
        raise BadInputError(f"no '{method}' explanation was computed for {self.image} (computed: {ran})")

    def add_explanation(self, result: ExplanationResult) -> None:
        """Keep ``result`` (replacing an earlier one of the same method, model and class)."""
        key = (result.method, result.explains, result.target_label)
        self.explanations = [e for e in self.explanations if (e.method, e.explains, e.target_label) != key]
        self.explanations.append(result)

    def plot(self, *, explanation: str | None = None, show: Sequence[str] = ("measurement", "detections"),
             max_side: int | None = DISPLAY_SIDE, labels: bool = True) -> np.ndarray:
        """The image with what was found drawn on it: measurement ellipses (with HC or CTR), detection boxes
        (with the skull ellipse) (``show`` picks which of the two) and, with ``labels``, the plane and its
        probability in the corner.
        ``explanation="gradcam"`` gives that explanation's overlay instead. ``H x W x 3`` uint8 RGB, at most
        ``max_side`` px on its longest side (``None``: the image's own size)."""
        if explanation is not None:
            return self.explanation(explanation).overlay
        if self.loaded is None:
            raise BadInputError(f"{self.image}: this analysis holds no image to draw on (it was read from a record)")
        out = draw_findings(self.loaded.pixels, detections=self.detections if "detections" in show else None,
                            measurement=self.measurement if "measurement" in show else None)
        if max_side is not None:
            out = thumbnail(out, max_side)
        if labels and self.plane is not None:
            text = self.plane + ("" if self.plane_probability is None else f" {self.plane_probability:.2f}")
            out = _caption(out, text)
        return out

    def to_html(self) -> str:
        """The self-contained HTML report of this analysis (see :mod:`fetalscope.pipeline.html_report`)."""
        from fetalscope.pipeline.html_report import report_html

        return report_html(self)

    def to_pdf(self, path: str | Path | None = None) -> bytes:
        """The print-ready A4 PDF report of this analysis as bytes, also written to ``path`` when given (see
        :mod:`fetalscope.pipeline.pdf_report`)."""
        from fetalscope.pipeline.pdf_report import report_pdf

        return report_pdf(self, path)


def draw_findings(rgb: np.ndarray, *, detections: dict[str, Any] | None = None,
                  measurement: dict[str, Any] | None = None) -> np.ndarray:
    """A copy of ``rgb`` with a measurement record's ellipses and a detection record's boxes (and skull
    ellipse) drawn on it: the drawing of :meth:`Analysis.plot`, for records made without an analysis."""
    out = np.ascontiguousarray(rgb.copy())
    if measurement is not None:
        from fetalscope.biometry import draw_measurement

        out = draw_measurement(out, measurement)
    if detections is not None:
        from fetalscope.detect import draw_boxes
        from fetalscope.detect.skull import SkullEllipse

        skull = (detections.get("plausibility") or {}).get("skull")
        out = draw_boxes(out, detections.get("boxes") or [], skull=SkullEllipse(**skull) if skull else None)
    return out


def _caption(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` with ``text`` in white on a dark band in the bottom-left corner (labels of drawings sit above
    their shapes, so the top is often taken)."""
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    scale = max(0.4, max(h, w) / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, h - th - base - 8)
    cv2.rectangle(out, (0, top), (min(w - 1, tw + 8), h - 1), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
