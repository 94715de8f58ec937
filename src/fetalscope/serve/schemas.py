"""The response records of the HTTP API as schemas, for the OpenAPI document (``/docs``, ``/openapi.json``).

They describe what the routes already return (``Analysis.to_dict()``, the detection and measurement records,
``ExplanationResult.to_dict()``, ``{"detail": message}``); the routes do not validate through them, and
``tests/serve/test_api.py`` checks that their fields are the records' fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorRecord(BaseModel):
    """Every error: the message the CLI prints for the same input."""

    detail: str = Field(description="What is wrong with the request and how to fix it")


class ClassScoreRecord(BaseModel):
    label: str
    probability: float | None = Field(description="Calibrated probability; null for a class the model does not cover")


class ModelRecord(_Record):
    id: str
    version: str
    task: str = ""
    runtime: str = Field("", description="auto-chosen runtime: onnx, torch or onnx-int8")


class BoxRecord(BaseModel):
    label: str = Field(description="MIDLINE_FALX, CSP or CHOROID_PLEXUS for the shipped detector")
    score: float
    xyxy: list[float] = Field(description="x0, y0, x1, y1 in the original image's pixels")


class DetectionRecord(_Record):
    """`POST /v1/detect` (and an analysis's `detections`)."""

    image: str
    width: int
    height: int
    model: str
    score_threshold: float
    boxes: list[BoxRecord]
    plausibility: dict[str, Any] = Field(description="rule outcome of the raw boxes and the boxes removed")


class MeasurementRecord(_Record):
    """`POST /v1/measure` (and an analysis's `measurement`). Head: `ellipse`, `hc_mm`, `bpd_mm`, `ofd_mm`,
    `ga_weeks`, `ga`, `pixel_size_mm`, `pixel_size_source`, `hc_interval_mm` ([low, high], calibrated out of
    fold to hold the reference HC in `hc_interval_coverage` of unseen heads; null without a pixel size),
    `hc_views_sd_px`; cardiothoracic: `heart`, `thorax`, `ctr`, `ctr_interval` ([low, high] of the circumference
    ratio, calibrated alike; null when no CTR is given), `ctr_interval_coverage`, `ctr_views_sd`."""

    image: str
    measurement: str | None = Field(description="head, cardiothoracic, or null when nothing was measured")
    quality: str = Field(description="ok, no_pixel_size, rejected or not_measured")
    flags: list[str] = []
    route: dict[str, Any] | None = Field(None, description="which evidence chose the measurement: what, by (plane, "
                                         "segmentation or ood), plane, plane_probability, head_fit, ctr_fit, reason, "
                                         "asked")


class CriterionRecord(BaseModel):
    """One item of the acquisition checklist."""

    id: str = Field(description="stable id, e.g. head_size, head_in_view, midline_falx, gain, sharpness")
    passed: bool | None = Field(description="null: could not be assessed (e.g. no detector); not counted")
    value: float | None = Field(description="the measured value (null: the structure was not found)")
    expected: str = Field(description="the expected range, with its unit")
    advice: str | None = Field(description="what to change, for a failed criterion; null when it passed")
    label: str = Field("", description="the criterion's name for people")
    compliance: float | None = Field(None, description="graded pass in [0, 1]: 1 inside the expected range, "
                                     "falling with the distance outside it; null when not judged")


class QualityRecord(_Record):
    """`POST /v1/quality` (and an analysis's `quality`): the acquisition checklist of one image."""

    image: str
    plane: str | None
    plane_probability: float | None
    what: str | None = Field(description="head or cardiothoracic: the checklist used; null when not assessed")
    assessed: bool
    score: int | None = Field(description="0-100: 100 x the weighted mean compliance of the judged criteria; "
                                           "null when not assessed")
    grade: str | None = Field(description="standard (>= 80), acceptable (60-79), not standard (< 60)")
    criteria: list[CriterionRecord]
    reason: str | None = Field(description="why the image was not assessed (e.g. another plane)")
    ellipses: dict[str, dict[str, float]] = Field(description="head, or heart and thorax: cx, cy, a, b, angle_deg")
    boxes: list[BoxRecord] = Field(description="the detector's boxes the head checklist was judged on")
    sector: list[int] | None = Field(description="the scan sector's box: x0, y0, x1, y1")
    pixel_size_mm: float | None = Field(description="the pixel size given, else the DICOM's spacing, else null")
    model: dict[str, Any] = Field(description="ids and versions of the plane, segmentation and detector models")
    thresholds: str = Field(description="version of the threshold card")
    timing_ms: float | None


class ExplanationRecord(_Record):
    """`POST /v1/explain` with `format=json` (with `map`) and each of an analysis's `explanations`."""

    method: str
    title: str
    target: int
    target_label: str
    target_class: str = Field(description="alias of target_label, kept for one release")
    probability: float | None
    signed: bool
    shape: list[int]
    seconds: float
    params: dict[str, Any]
    explains: str = Field(description="plane or brain_findings")
    model: ModelRecord
    to_original: dict[str, Any] | None = Field(None, description="crop_xyxy, map_size and the rule mapping a map "
                                                                 "pixel to the original image")
    colour_scale: dict[str, Any] | None = Field(None, description="cmap, range (the map values at the two ends of "
                                                                  "the colour map) and symmetric (signed maps: "
                                                                  "range is -top..+top)")


class AnalysisRecord(_Record):
    """`POST /v1/predict`: everything fetalscope says about one image (`fetalscope predict --output F.json`)."""

    image: str
    width: int
    height: int
    model: ModelRecord
    plane: str | None
    plane_probability: float | None
    probabilities: list[ClassScoreRecord]
    classes_not_covered: list[str]
    detail: dict[str, Any]
    brain_plane: dict[str, Any] | None
    brain_findings: dict[str, Any] | None
    brain_findings_skipped: str | None
    uncertain: bool
    uncertainty: dict[str, Any]
    ood: dict[str, Any] = Field(description="the not-ultrasound check: flag, score, reasons, features")
    detections: DetectionRecord | None
    detections_skipped: str | None
    measurement: MeasurementRecord | None
    measurement_skipped: str | None
    quality: QualityRecord | None = None
    explanations: list[ExplanationRecord]
    warnings: list[str]
    timings_ms: dict[str, float]
    fetalscope_version: str


class VideoSegmentRecord(BaseModel):
    plane: str
    start_frame: int = Field(description="First frame of the segment (index in the file, 0-based)")
    end_frame: int = Field(description="Last frame of the segment (inclusive)")
    start_time_s: float | None = None
    end_time_s: float | None = None
    frames_processed: int


class BestFrameRecord(_Record):
    frame: int
    time_s: float | None = Field(description="Seconds from the start; null when the file gives no frame rate")
    probability: float = Field(description="Smoothed probability of the plane on this frame")
    frame_probability: float = Field(description="The frame's own (unsmoothed) probability")


class VideoSummaryRecord(_Record):
    """`POST /v1/video` (and `summary.json` of `fetalscope video`)."""

    frames: int = Field(description="Frames analysed")
    frames_source: int = Field(description="Frames in the file")
    fps_source: float | None = Field(description="The file's frame rate; null when it gives none")
    fps_processed: float | None = Field(description="Frame rate of the analysed frames (fps_source / stride)")
    stride: int
    segments: list[VideoSegmentRecord] = Field(description="Planes entered and left with hysteresis, in time order")
    best_frames: dict[str, BestFrameRecord] = Field(description="Per plane seen: its best frame")
    measurements: dict[str, MeasurementRecord] = Field(
        description="head (on the best brain frame) and cardiothoracic (on the best thorax frame), with `frame`")
    measurements_skipped: dict[str, str]
    classes: list[str]
    model: ModelRecord
    warnings: list[str]
