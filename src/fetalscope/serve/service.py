"""What the API and the UI both call: decode an upload, analyse it, explain, detect, measure.

One :class:`Service` per server holds the loaded models. Uploads arrive as bytes and stay in memory;
they are written to disk only into ``settings.save_uploads`` when the user turned that on.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from fetalscope import __version__
from fetalscope.data.transforms import to_tensor
from fetalscope.errors import BadInputError, MissingWeightsError, UnsupportedError
from fetalscope.imaging.loader import UltrasoundImage, load_image
from fetalscope.imaging.sector import crop_to_sector
from fetalscope.pipeline.analyser import Analyser
from fetalscope.serve.limits import check_upload_size
from fetalscope.serve.render import thumbnail
from fetalscope.serve.settings import ServeSettings

LOG = logging.getLogger("fetalscope.serve")
UI_METHODS = ("gradcam", "gradcam++", "guided_backprop", "guided_gradcam", "integrated_gradients",
              "occlusion", "lime")
METHOD_TITLES = {
    "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "guided_backprop": "Guided Backprop",
    "guided_gradcam": "Guided Grad-CAM", "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion", "lime": "LIME", "saliency": "Saliency",
}
MEASURE_KINDS = ("head", "cardiothoracic")
EXPLAIN_MODELS = ("plane", "brain_findings")  # the predictions /v1/explain and the app can explain
OVERLAY_SIDE = 512  # longest side of explanation overlays


def safe_name(name: str | None, default: str = "upload") -> str:
    """A client-supplied file name reduced to its last part, printable, at most 120 characters."""
    if not name:
        return default
    base = PurePath(str(name).replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ()+,]", "_", base).strip() or default
    return base[:120]


@dataclass
class ExplainResult:
    """One explanation: the :class:`~fetalscope.explain.Explanation`, the class it explains, the image region
    the model saw (the sector crop, at most ``OVERLAY_SIDE`` px; ``H x W x 3`` uint8) and the overlay on it.

    ``explains`` names the prediction explained (one of :data:`EXPLAIN_MODELS`) and ``model`` its model
    (``id``, ``version``, ``task``, ``runtime``). For the brain findings, ``status`` and ``warning`` are the
    model card's own, and ``note`` says when the image is not one the findings model is meant for."""

    explanation: Any
    target_label: str
    input_rgb: np.ndarray
    overlay: np.ndarray
    explains: str = "plane"
    model: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    warning: str | None = None
    note: str | None = None

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        d = self.explanation.to_dict(include_map=include_map)
        if include_map:
            d["map"] = np.round(self.explanation.map.astype(np.float64), 5).tolist()
        d["target_label"] = self.target_label
        d["title"] = METHOD_TITLES.get(d["method"], d["method"])
        d["explains"] = self.explains
        d["model"] = dict(self.model)
        if self.explains != "plane":  # the findings model's card caution travels with its maps
            d.update(status=self.status, warning=self.warning, note=self.note)
        return d


def _which(model: str | None) -> str:
    """A ``model`` field as given (any case, ``-`` or ``_``) -> its :data:`EXPLAIN_MODELS` spelling."""
    return str(model or "plane").strip().lower().replace("-", "_")


@dataclass
class _Explained:
    """A model the service can explain: its bundle, classes, public info and card caution."""

    bundle: Any
    classes: list[str]
    model_info: dict[str, Any]
    status: str | None = None
    warning: str | None = None


class Service:
    """Loaded models and the operations of the app. Thread-safe: inference may run in many threads;
    explanations run one at a time on a private copy of the model (hooks never touch the predictor)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.analyser = Analyser(settings.plane_model, runtime=settings.runtime,
                                 brain_findings_model=settings.brain_findings_model or None)
        self.bundle = self.analyser.bundle
        self.classes = list(self.bundle.classes)
        self._explain_models: dict[str, Any] = {}  # private eval copies, by EXPLAIN_MODELS name
        self._explain_lock = threading.Lock()
        self._detector: Any = None
        self._detector_error: str | None = None
        self._detector_lock = threading.Lock()
        self._measure_lock = threading.Lock()
        self.started = time.time()
        self._load_detector()

    # ---------------------------------------------------------------------------------------- input
    def load(self, data: bytes, name: str | None = None, frame: int | None = None, *,
             upload: bool = True) -> UltrasoundImage:
        """Decode bytes with the server's limits. An ``upload`` is saved only when the user opted in."""
        label = safe_name(name)
        check_upload_size(data, self.settings.max_upload_bytes, label)
        if upload and self.settings.save_uploads is not None:
            self._save_upload(data, label)
        return load_image(data, frame=frame, max_bytes=self.settings.max_upload_bytes,
                          max_pixels=self.settings.max_pixels, name=label)

    def _save_upload(self, data: bytes, label: str) -> Path:
        folder = Path(self.settings.save_uploads or ".")
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
        digest = hashlib.sha256(data).hexdigest()[:16]
        suffix = PurePath(label).suffix.lower()[:8] if PurePath(label).suffix else ".bin"
        path = folder / f"{stamp}-{digest}{suffix}"
        path.write_bytes(data)
        return path

    # ------------------------------------------------------------------------------------- analysis
    def analyse(self, image: UltrasoundImage, name: str | None = None) -> dict[str, Any]:
        """The :class:`~fetalscope.pipeline.Analysis` record (``to_dict()``, the fields of ``fetalscope
        predict``: probabilities, plane, brain sub-plane, brain findings, uncertainty, OOD check, model id and
        version)."""
        analysis = self.analyser.analyse(image, name=safe_name(name, image.source))
        record = analysis.to_dict()
        record["fetalscope_version"] = __version__
        return record

    # --------------------------------------------------------------------------------- explanations
    def _explained(self, model: str = "plane") -> _Explained:
        """The model behind prediction ``model`` (``plane`` or ``brain_findings``); 400 for another name,
        503 when the findings bundle is not loaded."""
        which = _which(model)
        if which == "plane":
            return _Explained(self.bundle, self.classes, dict(self.analyser.model_info))
        if which == "brain_findings":
            fm = self.analyser.findings_model
            if fm is None:
                raise MissingWeightsError(
                    f"cannot explain the brain findings: {self.analyser.findings_unavailable}. Install the "
                    "'brain-normal-abnormal-demo' bundle (or start the server with --brain-findings BUNDLE), "
                    "or explain the plane model (model=plane)")
            return _Explained(fm.bundle, list(fm.classes), dict(fm.model_info), fm.status, fm.warning)
        raise BadInputError(f"unknown model '{model}' to explain; use one of {', '.join(EXPLAIN_MODELS)}")

    def explain_classes(self, model: str = "plane") -> list[str]:
        """Class names of the model behind prediction ``model`` (see :meth:`explain`)."""
        return list(self._explained(model).classes)

    def _model_for_explain(self, which: str, bundle: Any) -> Any:
        if which not in self._explain_models:
            self._explain_models[which] = copy.deepcopy(bundle.model).eval()
        return self._explain_models[which]

    def resolve_target(self, target: str | int | None, image: UltrasoundImage | None = None,
                       model: str = "plane") -> int | None:
        """Class index of ``model``'s classes from a class name, an index (as int or digits) or None / blank
        (the predicted class); a class the plane model does not cover is refused as such."""
        from fetalscope.explain.runner import resolve_target

        if target is None or (isinstance(target, str) and not target.strip()):
            return None
        which = _which(model)
        classes = self.explain_classes(which)
        if which == "plane" and str(target) in self.analyser.not_covered:
            raise UnsupportedError(f"target '{target}' is a class this model does not cover; "
                                   f"choose one of {', '.join(classes)}")
        return resolve_target(target, classes)

    def findings_note(self, image: UltrasoundImage, analysis: dict[str, Any] | None = None) -> str | None:
        """A note when ``image`` is not one the findings model is meant for (the pipeline's own routing
        reason, from ``analysis`` when given, else computed), or ``None`` for an ultrasound brain image."""
        if analysis is not None:
            reason = analysis.get("brain_findings_skipped") if analysis.get("brain_findings") is None else None
        else:
            reason = self.analyser.findings_skip_reason(image)
        if not reason:
            return None
        return (f"The normal/abnormal findings model is meant for fetal brain ultrasound images and the app does "
                f"not run it on this one ({reason}); this map explains the model applied outside its intended "
                "input.")

    def explain(self, image: UltrasoundImage, method: str, target: str | int | None = None,
                model: str = "plane", analysis: dict[str, Any] | None = None, **params: Any) -> ExplainResult:
        """Attribution map of ``method`` for ``target`` (default: the predicted class) of the prediction
        ``model`` (``plane``: the plane classifier; ``brain_findings``: the normal/abnormal model, with its
        card's status and warning and a ``note`` when the image is not a brain), and its overlay.
        ``analysis`` (the image's :meth:`analyse` record, when the caller has it) saves re-running the
        plane model for that note."""
        from fetalscope.explain import explain as run_explain
        from fetalscope.explain import method_spec
        from fetalscope.explain.overlay import overlay as draw_overlay

        spec = method_spec(method)  # BadInputError with suggestions for a typo
        which = _which(model)
        chosen = self._explained(which)
        index = self.resolve_target(target, model=which)
        note = self.findings_note(image, analysis) if which == "brain_findings" else None
        cfg = chosen.bundle.preprocess
        x = to_tensor(image, cfg).unsqueeze(0)
        with self._explain_lock:
            result = run_explain(self._model_for_explain(which, chosen.bundle), x, spec.name, index,
                                 preprocess=cfg, **params)
        # draw on the region the model saw (the sector crop) at display resolution, not at input size
        region = crop_to_sector(image.pixels) if cfg.crop_sector else image.pixels
        region = thumbnail(region, OVERLAY_SIDE)
        overlay = draw_overlay(region, result.map, signed=bool(result.signed), alpha=0.45)
        return ExplainResult(result, chosen.classes[int(result.target)], region, overlay, explains=which,
                             model=chosen.model_info, status=chosen.status, warning=chosen.warning, note=note)

    # ------------------------------------------------------------------------------------ detection
    def _load_detector(self) -> None:
        name = self.settings.detector
        if not name:
            self._detector_error = "no detector configured (start the server with --detector NAME_OR_FOLDER)"
            return
        try:
            from fetalscope.detect import get_bundle
        except ImportError:
            self._detector_error = "brain-structure detection is not available in this build of fetalscope"
            return
        try:
            self._detector = get_bundle(name)
        except (MissingWeightsError, UnsupportedError) as exc:
            self._detector_error = f"detector bundle not available: {exc}"
        except Exception as exc:  # a broken bundle must not stop the server; report it on use
            LOG.warning("detector could not be loaded (%s)", type(exc).__name__)
            self._detector_error = f"detector bundle '{name}' could not be loaded ({type(exc).__name__})"

    @property
    def detector_available(self) -> bool:
        return self._detector is not None

    def detect(self, image: UltrasoundImage, score_threshold: float | None = None) -> dict[str, Any]:
        """The record of ``fetalscope detect`` for one image (:func:`fetalscope.detect.detect_image`): boxes
        ``{label, score, xyxy}`` in original pixels at the operating threshold, after the plausibility rules."""
        if self._detector is None:
            raise MissingWeightsError(self._detector_error or "no detector loaded")
        from fetalscope.detect import detect_image

        t0 = time.perf_counter()
        with self._detector_lock:
            record = detect_image(image, self._detector, score_threshold)
        record["timings_ms"] = {"detect": round((time.perf_counter() - t0) * 1000, 2)}
        return record

    def detector_info(self) -> dict[str, Any]:
        det = self._detector
        if det is None:
            return {"available": False, "reason": self._detector_error}
        card = det.card
        return {"available": True, "id": det.name, "version": str(card.get("version", "")),
                "classes": list(det.classes), "path": str(det.path)}

    def detection_overlay(self, image: UltrasoundImage, record: dict[str, Any]) -> np.ndarray:
        from fetalscope.detect import draw_boxes
        from fetalscope.detect.skull import SkullEllipse

        skull = (record.get("plausibility") or {}).get("skull")
        return draw_boxes(image.pixels, record["boxes"], skull=SkullEllipse(**skull) if skull else None)

    # ------------------------------------------------------------------------------------ biometry
    def measure(self, image: UltrasoundImage, what: str = "head", pixel_size_mm: float | None = None) -> dict[str, Any]:
        """Head biometry (HC/BPD/OFD, GA) or the cardiothoracic ratio, from :mod:`fetalscope.biometry`."""
        if what not in MEASURE_KINDS:
            raise BadInputError(f"unknown measurement '{what}'; use one of {', '.join(MEASURE_KINDS)}")
        if pixel_size_mm is not None and not (0.0 < pixel_size_mm < 10.0):
            raise BadInputError(f"pixel_size_mm must be a positive size in millimetres (< 10), got {pixel_size_mm}")
        try:
            from fetalscope.biometry import measure_image  # type: ignore[attr-defined]
        except ImportError as exc:
            raise MissingWeightsError("biometry is not available in this build of fetalscope "
                                      "(fetalscope.biometry.measure_image is missing)") from exc
        # the DICOM PixelSpacing is read by the measurement itself (so the record says where the size came from)
        context: dict[str, Any] = {}
        if what == "cardiothoracic":  # the quality gate wants the plane classifier's opinion
            probs = self.analyser.predict_probabilities(image)
            top = int(np.argmax(probs))
            context = {"plane": self.classes[top], "plane_probability": float(probs[top])}
        with self._measure_lock:
            result = measure_image(image, what=what, pixel_size_mm=pixel_size_mm, **context)
        record = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        record.setdefault("image", image.source)
        return record

    # -------------------------------------------------------------------------------------- models
    def model_info(self) -> dict[str, Any]:
        info = dict(self.analyser.model_info)
        info.update({"classes": self.classes, "classes_not_covered": list(self.analyser.not_covered),
                     "label_space": list(self.analyser.label_space), "path": str(self.bundle.path)})
        return info

    def findings_info(self) -> dict[str, Any]:
        """The normal/abnormal brain findings model: ``available``, its id, version, status and card (or the
        reason it is not loaded)."""
        fm = self.analyser.findings_model
        if fm is None:
            return {"available": False, "reason": self.analyser.findings_unavailable}
        return {"available": True, **fm.model_info, "classes": list(fm.classes), "status": fm.status,
                "path": str(fm.bundle.path), "card": fm.bundle.card}

    def models(self) -> dict[str, Any]:
        """The loaded models (by role) and every bundled model's card."""
        from fetalscope.models.bundle import available_bundles, read_card

        bundled = []
        for name in available_bundles():  # every bundle folder shipped with the package (any task)
            try:
                bundled.append({"name": name, "card": read_card(name)})
            except Exception as exc:  # list a broken bundle rather than fail the listing
                bundled.append({"name": name, "error": f"unreadable card ({type(exc).__name__})"})
        return {
            "loaded": {"plane": {**self.model_info(), "card": self.bundle.card},
                       "detector": {**self.detector_info(), "card": self._detector.card if self._detector else None},
                       "brain_findings": self.findings_info()},
            "bundled": bundled,
        }
