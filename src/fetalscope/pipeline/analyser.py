"""Turn one image into an :class:`Analysis` with the bundled (or a given) plane model."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.config import DEFAULT_MODELS
from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.transforms import model_input
from fetalscope.imaging.loader import UltrasoundImage, load_image
from fetalscope.imaging.quality import ood_check
from fetalscope.pipeline.analysis import Analysis, ClassScore, top_and_scores
from fetalscope.pipeline.brain_findings import DEFAULT_BRAIN_FINDINGS_MODEL, BrainFindingsModel
from fetalscope.pipeline.cautions import FINDINGS_WARNING_PREFIX, SUBPLANE_WARNING_PREFIX

DEFAULT_PLANE_MODEL = DEFAULT_MODELS["plane"]
DEFAULT_BRAIN_PLANE_MODEL = DEFAULT_MODELS["brain_plane"]
BRAIN = "Fetal brain"
OTHER = "Other"


@dataclass(frozen=True)
class UncertaintyPolicy:
    """When to warn that the model is unsure: top-1 below ``min_top1`` or normalised entropy above
    ``max_entropy`` (entropy divided by log(number of covered classes), so 0..1)."""

    min_top1: float = 0.5
    max_entropy: float = 0.75


def uncertainty_of(probs: np.ndarray, policy: UncertaintyPolicy) -> tuple[bool, dict[str, Any]]:
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    entropy = float(-(p * np.log(p)).sum())
    norm = entropy / math.log(len(p)) if len(p) > 1 else 0.0
    top1 = float(p.max())
    reasons = []
    if top1 < policy.min_top1:
        reasons.append(f"top-1 probability {top1:.2f} is below {policy.min_top1:.2f}")
    if norm > policy.max_entropy:
        reasons.append(f"normalised entropy {norm:.2f} is above {policy.max_entropy:.2f}")
    return bool(reasons), {"top1": round(top1, 4), "entropy": round(entropy, 4),
                           "normalised_entropy": round(norm, 4), "reasons": reasons}


def findings_route_reason(plane: str, ood_flag: bool) -> str | None:
    """Why the brain findings do not apply to an image with this ``plane`` and out-of-distribution flag,
    or ``None`` when they do (an ultrasound image the plane model calls Fetal brain)."""
    if ood_flag:
        return "the image does not look like B-mode ultrasound"
    if plane != BRAIN:
        return f"the plane is '{plane}', not '{BRAIN}'"
    return None


class Analyser:
    """Loads the plane model once; ``analyse`` runs it (and any extra capabilities) on one image."""

    def __init__(self, plane_model: str | Path = DEFAULT_PLANE_MODEL, runtime: str = "auto",
                 policy: UncertaintyPolicy | None = None,
                 brain_plane_model: str | Path | None = DEFAULT_BRAIN_PLANE_MODEL,
                 brain_findings_model: str | Path | None = DEFAULT_BRAIN_FINDINGS_MODEL) -> None:
        from fetalscope.models.bundle import available_bundles, load_bundle
        from fetalscope.models.runtime import make_predictor, secondary_runtime

        self.bundle = load_bundle(plane_model)
        self.predictor = make_predictor(self.bundle, runtime=runtime)
        # the brain sub-plane model runs on images the plane model calls Fetal brain
        self.brain_bundle = None
        self.brain_predictor = None
        if brain_plane_model is not None and (
            str(brain_plane_model) != DEFAULT_BRAIN_PLANE_MODEL or DEFAULT_BRAIN_PLANE_MODEL in available_bundles()
        ):
            self.brain_bundle = load_bundle(brain_plane_model)
            self.brain_predictor = make_predictor(self.brain_bundle,
                                                  runtime=secondary_runtime(self.brain_bundle, runtime))
        # the normal/abnormal findings model runs on the same images (absent bundle: skipped, with a reason)
        self.findings_model: BrainFindingsModel | None = None
        self.findings_unavailable = "no brain findings model was asked for"
        if brain_findings_model is not None and str(brain_findings_model) == DEFAULT_BRAIN_FINDINGS_MODEL:
            self.findings_model = BrainFindingsModel.default(runtime)
            if self.findings_model is None:
                self.findings_unavailable = (f"the brain findings bundle '{DEFAULT_BRAIN_FINDINGS_MODEL}' "
                                             "is not installed")
        elif brain_findings_model is not None:
            self.findings_model = BrainFindingsModel(brain_findings_model, runtime)
        self.policy = policy or UncertaintyPolicy()
        card = self.bundle.card
        self.classes: list[str] = list(self.bundle.classes)
        self.not_covered: list[str] = list(card.get("classes_not_covered", []))
        space = list(card.get("label_space") or [])
        if not space:
            space = list(PLANE_CLASSES) if set(self.classes) <= set(PLANE_CLASSES) else list(self.classes)
        self.label_space = space
        self.model_info = {"id": card.get("name", str(plane_model)), "version": str(card.get("version", "")),
                           "task": card.get("task", ""), "runtime": self.predictor.name}

    def top_plane(self, image: UltrasoundImage, memo: dict | None = None) -> tuple[str, float]:
        """The top class of the plane model and its calibrated probability (rounded to 6 digits)."""
        probs, _ = self.predict_with_detail(image, memo)
        top = int(np.argmax(probs))
        return self.classes[top], round(float(probs[top]), 6)

    def predict_with_detail(self, image: UltrasoundImage,
                            memo: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Calibrated probabilities over the model's classes, and model-specific detail
        (SonoNet's own 14-plane probabilities when the model has them)."""
        from fetalscope.models.runtime import softmax

        x = model_input(image, self.bundle.preprocess, memo)
        outputs = self.predictor.predict_outputs(x)
        probs = softmax(outputs["logits"], self.predictor.temperature)[0]
        detail: dict[str, Any] = {}
        native_classes = (self.bundle.card.get("native_output") or {}).get("classes")
        if "native_logits" in outputs and native_classes:
            native = softmax(outputs["native_logits"], 1.0)[0]
            order = np.argsort(native)[::-1]
            detail["sononet_planes"] = {
                "top": native_classes[int(order[0])],
                "probabilities": {native_classes[int(i)]: round(float(native[i]), 6) for i in order},
                "note": "SonoNet-16's own standard-plane output (13 planes + background), calibrated.",
            }
        return probs, detail

    def brain_plane(self, image: UltrasoundImage, memo: dict | None = None) -> dict[str, Any] | None:
        """Sub-plane of a brain image (Trans-thalamic / Trans-cerebellum / Trans-ventricular), with the
        model's own caveats (e.g. ``source_confounded``) passed through."""
        if self.brain_bundle is None or self.brain_predictor is None:
            return None
        card = self.brain_bundle.card
        x = model_input(image, self.brain_bundle.preprocess, memo)
        probs = np.asarray(self.brain_predictor.predict_proba(x))[0]
        result: dict[str, Any] = {
            **top_and_scores(probs, list(self.brain_bundle.classes)),
            "model": {"id": card.get("name", ""), "version": str(card.get("version", ""))},
            "status": card.get("status", ""),
            "source_confounded": bool(card.get("source_confounded", False)),
        }
        if result["source_confounded"]:
            result["note"] = ("Experimental: this sub-plane model partly learned the image source, not only the "
                              "anatomy (see its model card). Do not rely on it.")
        return result

    def findings_skip_reason(self, image: UltrasoundImage, memo: dict | None = None) -> str | None:
        """Why :meth:`analyse` would not run the findings model on ``image`` (not ultrasound, not a brain;
        the same words as ``brain_findings_skipped``), or ``None`` when it would. The model itself being
        absent is not checked here (see :attr:`findings_unavailable`)."""
        return findings_route_reason(self.top_plane(image, memo)[0], ood_check(image).flag)

    def _add_brain_findings(self, analysis: Analysis, image: UltrasoundImage, memo: dict, ood_flag: bool) -> None:
        """Normal/abnormal findings for a brain image into ``analysis.brain_findings`` (with the card's
        warning added to ``warnings``), else ``None`` and the reason in ``brain_findings_skipped``."""
        reason = findings_route_reason(analysis.plane, ood_flag)
        if reason is not None:
            analysis.brain_findings_skipped = reason
        elif self.findings_model is None:
            analysis.brain_findings_skipped = self.findings_unavailable
        else:
            findings = self.findings_model.findings(image, memo)
            analysis.brain_findings = findings
            if findings.get("warning"):
                analysis.warnings.append(f"{FINDINGS_WARNING_PREFIX} ({findings['status']}): {findings['warning']}")

    def analyse(self, image: UltrasoundImage | str | Path | bytes, name: str | None = None) -> Analysis:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if not isinstance(image, UltrasoundImage):
            image = load_image(image, name=name)
        timings["load"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        memo: dict[str, np.ndarray] = {}
        probs, detail = self.predict_with_detail(image, memo)
        timings["plane"] = (time.perf_counter() - t1) * 1000
        by_class = dict(zip(self.classes, probs.tolist(), strict=True))
        scores = [ClassScore(label, None if label not in by_class else round(float(by_class[label]), 6))
                  for label in self.label_space]
        top = int(np.argmax(probs))
        uncertain, unc = uncertainty_of(probs, self.policy)
        t2 = time.perf_counter()
        ood = ood_check(image)
        timings["ood"] = (time.perf_counter() - t2) * 1000
        warnings = []
        if ood.flag:
            warnings.append("This image does not look like B-mode ultrasound: " + "; ".join(ood.reasons)
                            + ". The prediction is meaningless for it.")
        if uncertain:
            warnings.append("The model is unsure about this image: " + "; ".join(unc["reasons"]) + ".")
        if self.not_covered and not ood.flag and (uncertain or self.classes[top] == OTHER):
            # only where it may matter: an image of an uncovered plane lands in Other or leaves the model unsure
            warnings.append(f"This model does not cover: {', '.join(self.not_covered)}; an image of that plane "
                            "would be called Other or leave the model unsure.")
        analysis = Analysis(
            image=name or image.source,
            width=image.width,
            height=image.height,
            model=dict(self.model_info),
            plane=self.classes[top],
            plane_probability=round(float(probs[top]), 6),
            probabilities=scores,
            classes_not_covered=list(self.not_covered),
            detail=detail,
            uncertain=uncertain,
            uncertainty=unc,
            ood=ood.to_dict(),
            warnings=warnings,
            timings_ms=timings,
        )
        if analysis.plane == BRAIN and not ood.flag:
            t3 = time.perf_counter()
            analysis.brain_plane = self.brain_plane(image, memo)
            timings["brain_plane"] = (time.perf_counter() - t3) * 1000
            if analysis.brain_plane and analysis.brain_plane.get("note"):
                analysis.warnings.append(SUBPLANE_WARNING_PREFIX + analysis.brain_plane["note"])
        t4 = time.perf_counter()
        self._add_brain_findings(analysis, image, memo, ood.flag)
        if analysis.brain_findings is not None:
            timings["brain_findings"] = (time.perf_counter() - t4) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        for k in timings:
            timings[k] = round(timings[k], 2)
        return analysis
