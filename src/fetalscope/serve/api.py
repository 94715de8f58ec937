"""The HTTP API: ``/v1/predict``, ``/v1/report`` (PDF), ``/v1/explain``, ``/v1/detect``, ``/v1/measure``,
``/v1/quality``, ``/v1/video``, ``/v1/models``, ``/healthz``.

Every POST route takes the image as the multipart field ``file`` and returns the same records as the
CLI (``/v1/predict`` is ``Analysis.to_dict()``). Errors are ``{"detail": message}`` with the status of
the :mod:`fetalscope.errors` class (400 bad input, 413 too large, 422 unsupported, 503 model missing,
504 too slow).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from fetalscope import __version__
from fetalscope.errors import BadInputError, FetalscopeError
from fetalscope.explain.overlay import png_bytes
from fetalscope.serve.dicom_sr import check_dicom, check_format, sr_response, with_sr
from fetalscope.serve.docs import add_offline_docs
from fetalscope.serve.limits import DEFAULT_VIDEO_FRAMES, InferenceGate, check_upload_size, too_large_message
from fetalscope.serve.schemas import (
    AnalysisRecord,
    DetectionRecord,
    ErrorRecord,
    ExplanationRecord,
    MeasurementRecord,
    QualityRecord,
    VideoSummaryRecord,
)
from fetalscope.serve.service import Service, safe_name

LOG = logging.getLogger("fetalscope.serve")
API_DESCRIPTION = """\
Fetal ultrasound plane classification, explanations, detection and biometry over HTTP.

Send the image as the multipart field **`file`** (PNG, JPEG, TIFF, BMP or DICOM). Uploads stay in
memory; DICOM patient fields never appear in responses or logs.

**Research and education use only; not a medical device.**
"""

bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with a token.")
MAX_VIDEO_FRAMES = 600
SAFE = " !#$&'()*+,/:;=?@[]-._~"  # header values: printable ASCII kept, anything else percent-encoded
UploadField = Annotated[UploadFile, File(description="The image: PNG, JPEG, TIFF, BMP or DICOM.")]
# the form fields of an analysis (/v1/predict and /v1/report)
FrameField = Annotated[int | None, Form(description="Frame of a multi-frame DICOM/TIFF (default: middle/first)")]
DetectField = Annotated[str, Form(description="Also detect brain structures: no (default), auto (on brain images) "
                                              "or yes")]
MeasureField = Annotated[str | None, Form(description="Also measure: auto (what the plane calls for), head or "
                                                      "cardiothoracic (default: no measurement)")]
PixelSizeField = Annotated[float | None, Form(description="Pixel size in mm for the measurement")]
ExplainField = Annotated[str | None, Form(description="Also explain the plane with these methods, comma-separated "
                                                      "(e.g. gradcam,gradcam++)")]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Unreadable, corrupt or malformed input", "model": ErrorRecord},
    401: {"description": "Missing or wrong bearer token", "model": ErrorRecord},
    413: {"description": "Upload over the size or pixel limit", "model": ErrorRecord},
    422: {"description": "Unsupported request or missing field", "model": ErrorRecord},
    503: {"description": "The model this route needs is not installed", "model": ErrorRecord},
    504: {"description": "Took longer than the server's time limit", "model": ErrorRecord},
}


def _answers(model: type, description: str) -> dict[int | str, dict[str, Any]]:
    """The documented answers of a route: ``model`` with status 200, and the errors."""
    return {**ERRORS, 200: {"description": description, "model": model}}


async def _read(file: UploadFile) -> tuple[bytes, str]:
    data = await file.read()
    await file.close()
    return data, safe_name(file.filename)


def _detect_mode(value: str | None) -> bool | str:
    """The ``detect`` form field: no/false/0 -> False, auto -> "auto", yes/true/1 -> True."""
    key = str(value or "no").strip().lower()
    if key in ("no", "false", "0", "off"):
        return False
    if key == "auto":
        return "auto"
    if key in ("yes", "true", "1", "on"):
        return True
    raise BadInputError(f"detect must be no, auto or yes, got '{value}'")


def _analyser(service: Service, data: bytes, name: str, frame: int | None, detect: str | None, measure: str | None,
              pixel_size_mm: float | None, explain: str | None) -> Callable[[], Any]:
    """The analysis an upload's form fields ask for, as a call for the inference gate (the fields are checked
    now: a bad ``detect`` is a 400 before any work)."""
    detect_mode = _detect_mode(detect)
    methods = [m.strip() for m in (explain or "").split(",") if m.strip()]

    def analyse() -> Any:
        return service.session.analyse(service.load(data, name, frame), name=name, detect=detect_mode,
                                       measure=measure, pixel_size_mm=pixel_size_mm, explain=methods)

    return analyse


def add_routes(app: FastAPI, service: Service, gate: InferenceGate) -> None:
    """Attach the API routes to ``app``."""
    secured = [Depends(bearer)]

    async def _record_of_upload(file: UploadFile, frame: int | None,
                                call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """Read the upload, decode it (``frame`` of a multi-frame file) and answer ``call(image)`` named after
        the file, inside the inference gate (one rule for /v1/detect, /v1/measure and /v1/quality)."""
        data, name = await _read(file)

        def work() -> dict[str, Any]:
            record = call(service.load(data, name, frame))
            record["image"] = name
            return record

        return await gate.run(work)

    @app.exception_handler(FetalscopeError)
    async def fetalscope_error(_request: Request, exc: FetalscopeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.get("/healthz", tags=["service"], summary="Liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "model": service.session.analyser.model_info.get("id"),
                "uptime_s": round(time.time() - service.started, 1)}

    @app.get("/v1/models", tags=["models"], summary="Loaded and bundled models with their cards",
             dependencies=secured, responses=ERRORS)
    def models() -> dict[str, Any]:
        return service.models()

    @app.post("/v1/predict", tags=["analysis"], summary="Plane probabilities for one image",
              dependencies=secured, response_model=None,
              responses=with_sr(_answers(AnalysisRecord, "The Analysis record of the image")))
    async def predict(
        file: UploadField,
        frame: FrameField = None,
        detect: DetectField = "no",
        measure: MeasureField = None,
        pixel_size_mm: PixelSizeField = None,
        explain: ExplainField = None,
        format: Annotated[str, Form(description="json (default) or dicom-sr: the DICOM SR (TID 1500) of a DICOM "
                                                "upload, as application/dicom")] = "json",
    ) -> dict[str, Any] | Response:
        """The `Analysis` record (same fields as `fetalscope predict --output F.json`): every class
        probability (`probabilities`, `null` for classes the model does not cover), the top class
        (`plane`, `plane_probability`), the brain sub-plane (`brain_plane`), the normal/abnormal brain findings
        (`brain_findings`: `label`, `probability`, `probabilities`, `model`, and the model card's `status` and
        `warning`; `null` for non-brain images, with the reason in `brain_findings_skipped`), the uncertainty warning
        (`uncertain`), the out-of-distribution check (`ood`: `flag`, `score`, `reasons`) and the model
        id and version (`model`). On request it also carries `detections` (`detect=auto|yes`), `measurement`
        (`measure=auto|head|cardiothoracic`) and `explanations` (`explain=gradcam,...`: the records of
        `/v1/explain` without maps); what did not run says why in `detections_skipped` / `measurement_skipped`."""
        data, name = await _read(file)
        analyse = _analyser(service, data, name, frame, detect, measure, pixel_size_mm, explain)
        if check_format(format) == "dicom-sr":
            check_dicom(data, name)
            return await gate.run(lambda: sr_response(analyse(), data, name, frame))
        return await gate.run(lambda: analyse().to_dict())

    @app.post("/v1/report", tags=["analysis"], summary="Print-ready PDF report for one image",
              dependencies=secured, response_class=Response,
              responses={**ERRORS, 200: {"description": "The A4 PDF report of the image's analysis",
                                         "content": {"application/pdf": {"schema": {"type": "string",
                                                                                    "format": "binary"}}}}})
    async def report(
        file: UploadField,
        frame: FrameField = None,
        detect: DetectField = "no",
        measure: MeasureField = None,
        pixel_size_mm: PixelSizeField = None,
        explain: ExplainField = None,
    ) -> Response:
        """The analysis of `/v1/predict` (same form fields) as a print-ready A4 PDF for a clinic's records
        (`Analysis.to_pdf()`, as the app's "Download PDF" and `fetalscope predict --pdf DIR`): image name, date and
        time, fetalscope and model versions, the image with its measurement and detections drawn, every class
        probability, sub-plane, findings with their caution, the measurement table, the requested explanation
        maps with their colour scales, all warnings and the research-use disclaimer. Errors are JSON as for
        every route (400 for an unreadable or corrupt file)."""
        data, name = await _read(file)
        analyse = _analyser(service, data, name, frame, detect, measure, pixel_size_mm, explain)
        pdf = await gate.run(lambda: analyse().to_pdf())
        stem = (name.rsplit(".", 1)[0] or "image")
        filename = quote(f"fetalscope-report-{stem}.pdf", safe="")
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"})

    @app.post("/v1/explain", tags=["analysis"], summary="Attribution map for one image",
              dependencies=secured, responses={**ERRORS, 200: {
                  "description": "PNG overlay (`format=png`) or the map as JSON (`format=json`)",
                  "model": ExplanationRecord, "content": {"image/png": {}}}})
    async def explain(
        file: UploadField,
        method: Annotated[str, Form(description="gradcam, gradcam++, guided_backprop, guided_gradcam, "
                                                "integrated_gradients (ig), occlusion, lime or saliency")] = "gradcam",
        target: Annotated[str | None, Form(description="Class name or index to explain (default: the predicted class)")]
        = None,
        format: Annotated[Literal["png", "json"], Form(description="png: overlay image; json: the raw map")] = "png",
        frame: Annotated[int | None, Form()] = None,
        model: Annotated[str, Form(description="Which prediction to explain: plane (the plane classifier) or "
                                               "brain_findings (the normal/abnormal demonstration model; its card's "
                                               "status and warning come with the answer)")] = "plane",
    ) -> Response:
        """Explains the output of the prediction `model` (`plane`, the default, or `brain_findings`) for
        `target` (default: that model's predicted class) with `method`. `png` returns the heat map drawn on
        the model's input image (headers `X-Explain-Method`, `X-Explain-Target`, `X-Explain-Seconds`,
        `X-Explain-Model`; for `brain_findings` also `X-Explain-Status`, `X-Explain-Warning` and, for an image
        that is not a brain, `X-Explain-Note`, percent-encoded UTF-8); `json` returns `map` (H x W floats at
        the model's input size) with the method's parameters and timing, `explains` (the prediction) and
        `model` (id, version, task, runtime); for `brain_findings` also the card's `status` and `warning`,
        and `note` (null for an ultrasound image the plane model calls Fetal brain, else why the findings
        model is not meant for it). 503 when the findings model is not installed."""
        data, name = await _read(file)

        def work() -> Any:
            return service.session.explain(service.load(data, name, frame), method, target, model=model)

        result = await gate.run(work)
        record = result.to_dict(include_map=(format == "json"))
        if format == "json":
            record["image"] = name
            return JSONResponse(record)
        headers = {"X-Explain-Method": record["method"], "X-Explain-Target": quote(record["target_label"], safe=SAFE),
                   "X-Explain-Seconds": f"{record['seconds']:.4f}", "X-Explain-Model": str(result.model.get("id"))}
        for key in ("status", "warning", "note"):
            if record.get(key):
                headers[f"X-Explain-{key.title()}"] = quote(str(record[key]), safe=SAFE)
        return Response(png_bytes(result.overlay), media_type="image/png", headers=headers)

    @app.post("/v1/detect", tags=["analysis"], summary="Brain structure boxes for one image",
              dependencies=secured, response_model=None,
              responses=_answers(DetectionRecord, "The detection record of the image"))
    async def detect(
        file: UploadField,
        score_threshold: Annotated[float | None, Form(description="Keep boxes at or above this score "
                                                                  "(default: the detector's operating point)")]
        = None,
        frame: Annotated[int | None, Form()] = None,
    ) -> dict[str, Any]:
        """The record of `fetalscope detect`: `boxes` with `label`, `score` and pixel `xyxy` after the
        operating threshold and plausibility rules, and the `plausibility` outcome. 503 when no detector
        bundle is installed."""
        return await _record_of_upload(file, frame, lambda image: service.session.detect(image, score_threshold))

    @app.post("/v1/measure", tags=["analysis"], summary="Head biometry or cardiothoracic ratio",
              dependencies=secured, response_model=None,
              responses=with_sr(_answers(MeasurementRecord, "The measurement record of the image")))
    async def measure(
        file: UploadField,
        what: Annotated[Literal["head", "cardiothoracic", "auto"], Form(
            description="head (HC/BPD/OFD, GA), cardiothoracic (CTR) or auto (what the plane call and the "
            "segmentations' own evidence call for; `route` says which chose)")]
        = "head",
        pixel_size_mm: Annotated[float | None, Form(description="Pixel size in mm (DICOM spacing is used "
                                                                "when absent)")] = None,
        frame: Annotated[int | None, Form()] = None,
        format: Annotated[str, Form(description="json (default) or dicom-sr: the DICOM SR (TID 1500) of a DICOM "
                                                "upload, as application/dicom")] = "json",
    ) -> dict[str, Any] | Response:
        """Same record as `fetalscope measure`. `pixel_size_mm` must lie in 0.005-5 mm. 503 when the biometry
        model is not installed. `format=dicom-sr` answers the DICOM SR of a DICOM upload instead."""
        if check_format(format) == "dicom-sr":
            data, name = await _read(file)
            check_dicom(data, name)

            def sr() -> Response:
                record = service.session.measure(service.load(data, name, frame), what, pixel_size_mm)
                return sr_response({**record, "image": name}, data, name, frame)

            return await gate.run(sr)
        return await _record_of_upload(file, frame,
                                       lambda image: service.session.measure(image, what, pixel_size_mm))

    @app.post("/v1/quality", tags=["analysis"], summary="Acquisition checklist: is this a good standard plane?",
              dependencies=secured, response_model=None,
              responses=_answers(QualityRecord, "The acquisition checklist of the image"))
    async def quality(
        file: UploadField,
        what: Annotated[Literal["auto", "head", "cardiothoracic"], Form(
            description="auto (the head checklist for brain images, four-chamber for thorax images), head or "
                        "cardiothoracic")] = "auto",
        pixel_size_mm: Annotated[float | None, Form(description="Pixel size in mm (0.005-5)")] = None,
        frame: Annotated[int | None, Form()] = None,
    ) -> dict[str, Any]:
        """Same record as `fetalscope quality`: `criteria` (`id`, `passed`, `value`, `expected`, `advice`),
        `score` 0-100 and `grade`, the `ellipses` and `boxes` it was judged on, and the `model` versions. An image
        of another plane (with `what=auto`) is not assessed: `score` null and the `reason`."""
        return await _record_of_upload(
            file, frame, lambda image: service.session.quality(image, what, pixel_size_mm).to_dict())

    @app.post("/v1/video", tags=["analysis"], summary="Planes over a cine loop or video",
              dependencies=secured, response_model=None,
              responses=_answers(VideoSummaryRecord, "The summary of the clip (summary.json of fetalscope video)"))
    async def video(
        file: Annotated[UploadFile, File(description="A video (MP4, AVI, MOV, WebM, MKV), multi-frame DICOM or "
                                                     "multi-page TIFF")],
        stride: Annotated[int, Form(description="Analyse every N-th frame")] = 1,
        max_frames: Annotated[int, Form(description="Frame budget (at most 600 here); the stride grows to fit")]
        = DEFAULT_VIDEO_FRAMES,
        pixel_size_mm: Annotated[float | None, Form(description="Pixel size in mm (overrides the file's "
                                                                "calibration)")] = None,
    ) -> dict[str, Any]:
        """Per-frame planes of a clip, smoothed: `segments` (`plane`, `start_frame`, `end_frame`), `best_frames`
        (per plane seen: `frame`, `time_s`, `probability`), `measurements` (head on the best brain frame, CTR on
        the best thorax frame, each with its `frame`), `frames`, `fps_source`, `fps_processed`. The upload limit
        is the server's; the clip is decoded in memory, at most 600 frames of it."""
        from fetalscope.imaging.video import VideoLimits
        from fetalscope.pipeline.video import analyse_video

        data, name = await _read(file)
        check_upload_size(data, service.settings.max_upload_bytes, name)
        if not 1 <= max_frames <= MAX_VIDEO_FRAMES:
            raise BadInputError(f"max_frames must lie in 1-{MAX_VIDEO_FRAMES}, got {max_frames}")
        limits = VideoLimits(max_bytes=service.settings.max_upload_bytes, max_pixels=service.settings.max_pixels)

        def work() -> dict[str, Any]:
            return analyse_video(service.session, data, name=name, stride=stride, max_frames=max_frames,
                                 pixel_size_mm=pixel_size_mm, limits=limits).to_dict()

        return await gate.run(work)


def build_api(service: Service, *, timeout_s: float, max_concurrent: int, max_body_bytes: int,
              on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """A FastAPI app with the API routes and offline docs. ``max_body_bytes`` words the 413 answers (the
    limit itself is :class:`~fetalscope.serve.limits.BodySizeLimitMiddleware`); ``on_shutdown`` runs when
    the server stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(title="fetalscope", version=__version__, description=API_DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  license_info={"name": "Apache-2.0"}, lifespan=lifespan,
                  form_limits={"max_files": 1, "max_fields": 16, "max_part_size": 64 * 1024})
    gate = InferenceGate(max_concurrent, timeout_s)
    app.state.gate = gate
    app.state.service = service
    add_routes(app, service, gate)
    add_offline_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413:
            return JSONResponse({"detail": too_large_message(max_body_bytes)}, status_code=413)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the log names the error type and route only: messages can carry file names or pixel values
        LOG.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server keeps running"},
                            status_code=500)

    return app
