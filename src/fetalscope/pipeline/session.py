"""The one door: a :class:`Session` holds the loaded models and does every operation on an image.

The CLI verbs, the HTTP API, the web app (and batch runs) all go through one session, so an input is
validated by one rule, an explanation is drawn and named one way, and a measurement is routed one way::

    session = Session()                          # the bundled plane, sub-plane, findings and detector models
    image = session.load("scan.dcm")             # the one loader, with this session's limits
    analysis = session.analyse(image, detect="auto", measure="auto", explain=["gradcam"])
    analysis.to_dict(); analysis.to_row(); analysis.plot(); analysis.to_html()
    session.explain(image, "occlusion", target="Fetal brain")   # -> ExplanationResult
    session.detect(image)                        # -> the detection record
    session.measure(image, "auto", pixel_size_mm=0.1)           # -> the measurement record
    session.quality(image, "auto")               # -> the acquisition checklist (QualityRecord)

Models load once, on first use (a server touches them at start-up). A session is thread-safe:
classification runs in parallel; explanations (hooks on a private copy of each model), detection and
measurement each run one at a time.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fetalscope.config import DEFAULT_MODELS
from fetalscope.errors import BadInputError, MissingWeightsError, UnsupportedError
from fetalscope.explain.methods import parse_methods
from fetalscope.explain.overlay import DEFAULT_ALPHA, model_region, overlay
from fetalscope.explain.runner import ModelView, explain_images, resolve_target
from fetalscope.imaging.loader import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, UltrasoundImage, load_image
from fetalscope.pipeline.analyser import (
    BRAIN,
    DEFAULT_BRAIN_PLANE_MODEL,
    DEFAULT_PLANE_MODEL,
    Analyser,
    UncertaintyPolicy,
)
from fetalscope.pipeline.analysis import Analysis
from fetalscope.pipeline.brain_findings import DEFAULT_BRAIN_FINDINGS_MODEL
from fetalscope.pipeline.explanation import EXPLAIN_MODELS, ExplainedImage, ExplanationResult, explain_model_name
from fetalscope.pipeline.measure import (
    check_pixel_size,
    choose_route,
    measurement_choice,
    not_measured_record,
    rejection_for,
)
from fetalscope.pipeline.quality import QualityRecord

LOG = logging.getLogger("fetalscope.pipeline")
DEFAULT_DETECTOR = DEFAULT_MODELS["detector"]
ImageInput = UltrasoundImage | str | Path | bytes


class _Explained:
    """A model a session can explain: its bundle, classes, public info and card caution."""

    def __init__(self, bundle: Any, classes: list[str], model_info: dict[str, Any], status: str | None = None,
                 warning: str | None = None) -> None:
        self.bundle, self.classes, self.model_info = bundle, classes, model_info
        self.status, self.warning = status, warning


class Session:
    """Loaded models and every operation fetalscope does on one image.

    ``plane_model``: the plane classifier (bundled name or folder); ``brain_plane_model`` /
    ``brain_findings_model``: the brain sub-plane and normal/abnormal models run on brain images (``None``: not
    run); ``detector``: the brain-structure detector bundle (``None``: none; loaded on first use);
    ``runtime``: ``auto | torch | onnx | onnx-int8`` for the plane model (the others use it when they can);
    ``max_bytes`` / ``max_pixels``: the limits of :meth:`load`.
    """

    def __init__(self, plane_model: str | Path = DEFAULT_PLANE_MODEL, *, runtime: str = "auto",
                 brain_plane_model: str | Path | None = DEFAULT_BRAIN_PLANE_MODEL,
                 brain_findings_model: str | Path | None = DEFAULT_BRAIN_FINDINGS_MODEL,
                 detector: str | Path | None = DEFAULT_DETECTOR, policy: UncertaintyPolicy | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._analyser_args = {"plane_model": plane_model, "runtime": runtime, "policy": policy,
                               "brain_plane_model": brain_plane_model, "brain_findings_model": brain_findings_model}
        self._analyser: Analyser | None = None
        self._analyser_lock = threading.Lock()
        self.runtime = runtime
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self._detector_name = detector
        self._detector: Any = None
        self._detector_error: str | None = None
        self._detector_tried = False
        self._explain_models: dict[str, Any] = {}  # private eval copies, by EXPLAIN_MODELS name
        self._explain_lock = threading.Lock()
        self._detector_lock = threading.Lock()
        self._measure_lock = threading.Lock()

    # ------------------------------------------------------------------------------------- the models
    @property
    def analyser(self) -> Analyser:
        """The classification models (plane, brain sub-plane, findings), loaded on first use."""
        if self._analyser is None:
            with self._analyser_lock:
                if self._analyser is None:
                    self._analyser = Analyser(**self._analyser_args)
        return self._analyser

    @property
    def bundle(self) -> Any:
        """The plane model's bundle."""
        return self.analyser.bundle

    @property
    def classes(self) -> list[str]:
        return list(self.analyser.classes)

    def model_info(self) -> dict[str, Any]:
        """The plane model: id, version, task, runtime, classes, classes not covered, label space, folder."""
        info = dict(self.analyser.model_info)
        info.update({"classes": self.classes, "classes_not_covered": list(self.analyser.not_covered),
                     "label_space": list(self.analyser.label_space), "path": str(self.bundle.path)})
        return info

    def plane(self, image: ImageInput) -> tuple[str, float]:
        """The plane model's top class for ``image`` and its calibrated probability (rounded to 6 digits), without
        the rest of an analysis."""
        return self.analyser.top_plane(self.load(image))

    def findings_info(self) -> dict[str, Any]:
        """The normal/abnormal brain findings model: ``available``, its id, version, status and card (or the
        reason it is not loaded)."""
        fm = self.analyser.findings_model
        if fm is None:
            return {"available": False, "reason": self.analyser.findings_unavailable}
        return {"available": True, **fm.model_info, "classes": list(fm.classes), "status": fm.status,
                "path": str(fm.bundle.path), "card": fm.bundle.card}

    # ------------------------------------------------------------------------------------------ input
    def load(self, src: ImageInput, *, frame: int | None = None, name: str | None = None) -> UltrasoundImage:
        """Decode a file, bytes or stream with the one loader and this session's limits."""
        if isinstance(src, UltrasoundImage):
            return src
        return load_image(src, frame=frame, max_bytes=self.max_bytes, max_pixels=self.max_pixels, name=name)

    # --------------------------------------------------------------------------------------- analysis
    def analyse(self, image: ImageInput, *, name: str | None = None, frame: int | None = None,
                detect: bool | str = False, measure: str | None = None, pixel_size_mm: float | None = None,
                explain: str | Sequence[str] = (), target: str | int | None = None,
                quality: bool = False) -> Analysis:
        """Everything asked for about one image, as one :class:`~fetalscope.pipeline.analysis.Analysis`.

        Always: the plane (every class probability), and on brain images the sub-plane and the normal/abnormal
        findings. ``detect``: ``True`` runs the detector, ``"auto"`` runs it on ultrasound images the plane
        model calls Fetal brain (when a detector is installed). ``measure``: ``head`` / ``cardiothoracic``
        measure that, ``"auto"`` measures what the plane calls for (head on brain, CTR on thorax images; none
        on other or non-ultrasound images). ``explain``: methods (e.g. ``["gradcam"]``) explaining ``target``
        (default: the predicted plane). ``quality``: the acquisition checklist of the image's plane
        (:meth:`quality`, ``auto``) in ``analysis.quality``. What did not run says why in ``*_skipped``."""
        t0 = time.perf_counter()
        pixel_size_mm = check_pixel_size(pixel_size_mm, "pixel_size_mm")
        img = self.load(image, frame=frame, name=name)
        load_ms = (time.perf_counter() - t0) * 1000
        analysis = self.analyser.analyse(img, name=name)
        analysis.loaded = img
        timings = analysis.timings_ms
        timings["load"] = round(load_ms, 2)
        if detect:
            t = time.perf_counter()
            self._detect_into(analysis, img, auto=(detect == "auto"))
            timings["detect"] = round((time.perf_counter() - t) * 1000, 2)
        if measure:
            t = time.perf_counter()
            self._measure_into(analysis, img, measurement_choice(measure, "measure"), pixel_size_mm)
            timings["measure"] = round((time.perf_counter() - t) * 1000, 2)
        if quality:
            t = time.perf_counter()
            analysis.quality = self.quality(img, "auto", pixel_size_mm, analysis=analysis).to_dict()
            timings["quality"] = round((time.perf_counter() - t) * 1000, 2)
        methods = parse_methods(explain) if explain else []
        if methods:
            t = time.perf_counter()
            for result in self.explain_many([img], methods, target, analyses=[analysis])[0].results:
                analysis.add_explanation(result)
            timings["explain"] = round((time.perf_counter() - t) * 1000, 2)
        timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
        return analysis

    def _detect_into(self, analysis: Analysis, image: UltrasoundImage, auto: bool) -> None:
        if auto:
            if analysis.ood.get("flag"):
                analysis.detections_skipped = "the image does not look like B-mode ultrasound"
                return
            if analysis.plane != BRAIN:
                analysis.detections_skipped = f"the plane is '{analysis.plane}', not '{BRAIN}'"
                return
            if not self.detector_available:
                analysis.detections_skipped = self._detector_error or "no detector loaded"
                return
        analysis.detections = self.detect(image)

    def _measure_into(self, analysis: Analysis, image: UltrasoundImage, what: str,
                      pixel_size_mm: float | None) -> None:
        if what == "auto" and analysis.ood.get("flag"):
            analysis.measurement_skipped = "the image does not look like B-mode ultrasound"
            return
        try:
            record = self.measure(image, what, pixel_size_mm, analysis=analysis)
        except MissingWeightsError as exc:
            if what != "auto":
                raise
            analysis.measurement_skipped = f"the measurement model is not available: {exc}"
            return
        if record.get("measurement") is None:
            analysis.measurement_skipped = record["flags"][0]
        else:
            analysis.measurement = record

    # ----------------------------------------------------------------------------------- explanations
    def _explained(self, model: str = "plane") -> _Explained:
        """The model behind prediction ``model`` (``plane`` or ``brain_findings``); 400 for another name,
        503 when the findings bundle is not loaded."""
        which = explain_model_name(model)
        if which == "plane":
            return _Explained(self.bundle, self.classes, dict(self.analyser.model_info))
        if which == "brain_findings":
            fm = self.analyser.findings_model
            if fm is None:
                raise MissingWeightsError(
                    f"cannot explain the brain findings: {self.analyser.findings_unavailable}. Install the "
                    f"'{DEFAULT_BRAIN_FINDINGS_MODEL}' bundle (or start with --brain-findings BUNDLE), or explain "
                    "the plane model (model=plane)")
            return _Explained(fm.bundle, list(fm.classes), dict(fm.model_info), fm.status, fm.warning)
        raise BadInputError(f"unknown model '{model}' to explain; use one of {', '.join(EXPLAIN_MODELS)}")

    def explain_model_info(self, model: str = "plane") -> dict[str, Any]:
        """``id``, ``version``, ``task``, ``runtime`` of the model behind prediction ``model``."""
        return dict(self._explained(model).model_info)

    def explain_classes(self, model: str = "plane") -> list[str]:
        """Class names of the model behind prediction ``model`` (see :meth:`explain`)."""
        return list(self._explained(model).classes)

    def resolve_target(self, target: str | int | None, model: str = "plane") -> int | None:
        """Class index of ``model``'s classes from a class name, an index (as int or digits) or None / blank
        (the predicted class); a class the plane model does not cover is refused as such."""
        if target is None or (isinstance(target, str) and not target.strip()):
            return None
        which = explain_model_name(model)
        classes = self.explain_classes(which)
        if which == "plane" and str(target) in self.analyser.not_covered:
            raise UnsupportedError(f"target '{target}' is a class this model does not cover; "
                                   f"choose one of {', '.join(classes)}")
        return resolve_target(target, classes)

    def findings_note(self, image: UltrasoundImage, analysis: Analysis | None = None) -> str | None:
        """A note when ``image`` is not one the findings model is meant for (the pipeline's own routing
        reason, from ``analysis`` when given, else computed), or ``None`` for an ultrasound brain image."""
        if analysis is not None:
            reason = analysis.brain_findings_skipped if analysis.brain_findings is None else None
        else:
            reason = self.analyser.findings_skip_reason(image)
        if not reason:
            return None
        return (f"The normal/abnormal findings model is meant for fetal brain ultrasound images and fetalscope "
                f"does not run it on this one ({reason}); this map explains the model applied outside its "
                "intended input.")

    def _model_for_explain(self, which: str, bundle: Any) -> Any:
        if which not in self._explain_models:
            self._explain_models[which] = copy.deepcopy(bundle.model).eval()
        return self._explain_models[which]

    def explain(self, image: ImageInput, method: str, target: str | int | None = None, *, model: str = "plane",
                analysis: Analysis | None = None, alpha: float = DEFAULT_ALPHA, cmap: str | None = None,
                **params: Any) -> ExplanationResult:
        """The attribution map of ``method`` for ``target`` (default: the predicted class) of the prediction
        ``model`` (``plane``: the plane classifier; ``brain_findings``: the normal/abnormal model, with its
        card's status and warning and a ``note`` when the image is not a brain), drawn on the region the model
        saw. ``analysis`` (the image's analysis, when the caller has it) saves re-running the plane model for
        that note; ``params`` are the method's parameters."""
        return self.explain_many([image], [method], target, model=model, params=params, alpha=alpha, cmap=cmap,
                                 analyses=[analysis])[0].results[0]

    def explain_many(self, images: Sequence[ImageInput], methods: str | Sequence[str],
                     target: str | int | None = None, *, model: str = "plane",
                     params: dict[str, Any] | None = None, method_params: dict[str, dict[str, Any]] | None = None,
                     batch_size: int = 8, alpha: float = DEFAULT_ALPHA, cmap: str | None = None,
                     analyses: Sequence[Analysis | None] | None = None) -> list[ExplainedImage]:
        """:meth:`explain` for many images and methods at once (batched): one
        :class:`~fetalscope.pipeline.explanation.ExplainedImage` per image, with its explanations in method
        order and the explained model's calibrated probabilities. ``params`` go to every method that takes
        them, ``method_params`` (``{method: {key: value}}``) to one method."""
        which = explain_model_name(model)
        chosen = self._explained(which)
        index = self.resolve_target(target, model=which)
        decoded = [self.load(img) for img in images]
        cfg = chosen.bundle.preprocess
        with self._explain_lock:
            view = ModelView(self._model_for_explain(which, chosen.bundle), cfg, chosen.classes,
                             str(chosen.model_info.get("id", "")), float(chosen.bundle.temperature or 1.0))
            computed = explain_images(decoded, view, methods, index, params=params, method_params=method_params,
                                      batch_size=batch_size)
        out = []
        for i, (img, item) in enumerate(zip(decoded, computed, strict=True)):
            analysis = analyses[i] if analyses is not None and i < len(analyses) else None
            note = self.findings_note(img, analysis) if which == "brain_findings" else None
            region, box = model_region(img, cfg)
            results = [ExplanationResult(e, chosen.classes[int(e.target)], region,
                                         overlay(region, e.map, cmap=cmap, alpha=alpha, signed=bool(e.signed)),
                                         explains=which, model=chosen.model_info, status=chosen.status,
                                         warning=chosen.warning, note=note, crop_xyxy=box, cmap=cmap)
                       for e in item.explanations.values()]
            probs = {c: float(p) for c, p in zip(chosen.classes, item.probabilities.tolist(), strict=True)}
            out.append(ExplainedImage(img, results, probs))
        return out

    # -------------------------------------------------------------------------------------- detection
    def _load_detector(self) -> None:
        with self._detector_lock:
            if self._detector_tried:
                return
            self._detector_tried = True
            name = self._detector_name
            if not name:
                self._detector_error = "no detector configured (start with --detector NAME_OR_FOLDER)"
                return
            from fetalscope.detect import get_bundle

            try:
                self._detector = get_bundle(name)
            except (MissingWeightsError, UnsupportedError) as exc:
                self._detector_error = f"detector bundle not available: {exc}"
            except Exception as exc:  # a broken bundle must not stop the session; report it on use
                LOG.warning("detector could not be loaded (%s)", type(exc).__name__)
                self._detector_error = f"detector bundle '{name}' could not be loaded ({type(exc).__name__})"

    @property
    def detector_available(self) -> bool:
        self._load_detector()
        return self._detector is not None

    def detector_info(self) -> dict[str, Any]:
        """The detector: ``available``, id, version, classes and folder (or the reason it is not loaded)."""
        if not self.detector_available:
            return {"available": False, "reason": self._detector_error}
        det = self._detector
        return {"available": True, "id": det.name, "version": str(det.card.get("version", "")),
                "classes": list(det.classes), "path": str(det.path)}

    @property
    def detector_card(self) -> dict[str, Any] | None:
        return self._detector.card if self.detector_available else None

    def detect(self, image: ImageInput, score_threshold: float | None = None) -> dict[str, Any]:
        """The record of ``fetalscope detect`` for one image (:func:`fetalscope.detect.detect_image`): boxes
        ``{label, score, xyxy}`` in original pixels at the operating threshold, after the plausibility rules."""
        img = self.load(image)
        if not self.detector_available:
            raise MissingWeightsError(self._detector_error or "no detector loaded")
        from fetalscope.detect import detect_image

        t0 = time.perf_counter()
        with self._detector_lock:
            record = detect_image(img, self._detector, score_threshold)
        record["timings_ms"] = {"detect": round((time.perf_counter() - t0) * 1000, 2)}
        return record

    # ------------------------------------------------------------------------------------ measurement
    def measure(self, image: ImageInput, what: str = "auto", pixel_size_mm: float | None = None, *,
                analysis: Analysis | None = None) -> dict[str, Any]:
        """Head biometry (HC/BPD/OFD, GA) or the cardiothoracic ratio of one image (the record of
        ``fetalscope measure`` and ``POST /v1/measure``). ``what="auto"`` measures what the plane model's call
        and the segmentation models' own evidence call for (:func:`~fetalscope.pipeline.measure.choose_route`;
        the record's ``route`` says which evidence chose, and a record with no measurement says why). A
        measurement asked for by name is made, and rejected with the route's reason when the route would not
        have chosen it. ``pixel_size_mm`` (mm per pixel, 0.005-5) overrides a DICOM's PixelSpacing;
        ``analysis`` (the image's analysis, when the caller has it) saves re-running the plane model."""
        from fetalscope.biometry.measure import get_measurer
        from fetalscope.imaging.quality import ood_check

        what = measurement_choice(what, "what")
        pixel_size_mm = check_pixel_size(pixel_size_mm, "pixel_size_mm")
        img = self.load(image)
        if analysis is None:
            plane, probability = self.plane(img)
            ood = ood_check(img).flag
        else:
            plane, probability, ood = analysis.plane, analysis.plane_probability, bool(analysis.ood.get("flag"))
        runtime = "auto" if self.runtime == "onnx-int8" else self.runtime
        with self._measure_lock:
            measurers = {w: get_measurer(w, runtime=runtime) for w in ("head", "cardiothoracic")}
            probs = {w: m.probabilities(img) for w, m in measurers.items()} if not ood else {}
            fits = {w: measurers[w].fit(img, p) for w, p in probs.items()}
            route = choose_route(plane, probability, ood=ood, head_fit=fits.get("head"),
                                 ctr_fit=fits.get("cardiothoracic"))
            route["asked"] = what
            if what == "auto":
                if route["what"] is None:
                    return not_measured_record(img.source, plane, probability, route)
                what = route["what"]
            reject = rejection_for(what, route)
            # the plane call gates the measurement only when it, not the segmentation, chose the route
            gate_plane = route["by"] == "plane" and not reject
            record = measurers[what].measure(
                img, pixel_size_mm, probs=probs.get(what), reject=reject,
                plane=plane if gate_plane else None, plane_probability=probability if gate_plane else None)
        record.setdefault("plane", plane)
        record.setdefault("plane_probability", probability)
        record["route"] = route
        record.setdefault("image", img.source)
        return record

    # -------------------------------------------------------------------------------- acquisition quality
    def quality(self, image: ImageInput, what: str = "auto", pixel_size_mm: float | None = None, *,
                analysis: Analysis | None = None) -> QualityRecord:
        """The acquisition checklist of one image (:mod:`fetalscope.pipeline.quality`): the head
        (trans-thalamic) checklist for brain images, the four-chamber checklist for thorax images
        (``what="auto"``, routed by the plane model; other planes and non-ultrasound images get a "not
        assessed" record with no score), or the one asked for (``head`` | ``cardiothoracic``) whatever the
        plane. ``pixel_size_mm`` is checked by the one rule and recorded (else the DICOM's spacing); the criteria
        are shares and pixels, so none needs it. ``analysis`` (the image's analysis, when the caller has it)
        saves re-running the plane model and the OOD check."""
        from fetalscope.biometry.measure import get_measurer
        from fetalscope.imaging.acquisition import sector_mask
        from fetalscope.imaging.quality import ood_check
        from fetalscope.pipeline import quality as q

        what = measurement_choice(what, "what")
        given = check_pixel_size(pixel_size_mm, "pixel_size_mm")
        img = self.load(image)
        t0 = time.perf_counter()
        spacing = img.pixel_spacing_mm  # read like every measurement does (a corrupt PixelSpacing is a 400)
        pixel_size = given if given is not None else spacing if spacing and spacing > 0 else None
        if analysis is not None:
            probs = {c.label: c.probability for c in analysis.probabilities if c.probability is not None}
            ood_flag = bool(analysis.ood.get("flag"))
        else:
            values, _ = self.analyser.predict_with_detail(img)
            probs = {c: float(p) for c, p in zip(self.classes, values.tolist(), strict=True)}
            ood_flag = ood_check(img).flag
        plane = max(probs, key=probs.__getitem__) if probs else None
        probability = round(probs[plane], 6) if plane else None
        models: dict[str, Any] = {"plane": {k: self.analyser.model_info.get(k) for k in ("id", "version")}}
        if what == "auto":
            if ood_flag:
                return q.not_assessed(img.source, plane, probability, "not assessed: the image does not look "
                                      "like B-mode ultrasound", models)
            routed = q.WHAT_BY_PLANE.get(plane or "")
            if routed is None:
                return q.not_assessed(img.source, plane, probability, q.not_assessed_reason(plane), models)
            what = routed
        runtime = "auto" if self.runtime == "onnx-int8" else self.runtime
        with self._measure_lock:
            measurer = get_measurer(what, runtime=runtime)
            seg = measurer.probabilities(img)
            ellipses = measurer.ellipses(img, seg)
            mask_fits = measurer.ellipses(img, seg, refine=False)
            masks = measurer.masks(img, seg)
        models["segmentation"] = dict(measurer.model_info)
        boxes, note, box_threshold = None, None, None
        if what == "head":
            if self.detector_available:
                # every box (score >= 0) grades a structure the detector misses at its operating threshold; the
                # plausibility rules keep the same boxes at and above it (the record shows only those)
                detections = self.detect(img, score_threshold=0.0)
                box_threshold = float(self._detector.score_threshold)
                boxes = detections["boxes"]
                models["detector"] = {"id": self._detector.name, "version": str(self._detector.card.get("version", ""))}
            else:
                note = f"not assessed: {self._detector_error or 'no detector loaded'}"
        sector = sector_mask(img.pixels)
        judged = q.Judged(img.pixels, sector, probs, masks, ellipses, boxes, note, box_threshold, mask_fits)
        criteria = q.judge(what, judged)
        score = q.score_of(criteria, q.weights(what))
        return q.QualityRecord(
            img.source, plane, probability, what, score, q.grade_of(score), criteria,
            ellipses={k: e.normalised().to_dict() for k, e in ellipses.items() if e is not None},
            boxes=[b for b in boxes or [] if float(b["score"]) >= (box_threshold or 0.0)],
            sector=q.sector_box(sector), pixel_size_mm=pixel_size, model=models,
            thresholds=str(q.thresholds().get("version", "")),
            timing_ms=round((time.perf_counter() - t0) * 1000, 1))
