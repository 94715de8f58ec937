"""A cine loop or video through the session's plane model: per-frame probabilities (in batches), smoothed over
time, segments with hysteresis, the best frame of each plane seen and the measurement on the best brain (head)
and thorax (cardiothoracic) frames with the file's calibration::

    result = analyse_video(Session(runtime="onnx-int8"), "sweep.mp4", stride=2)
    result.to_dict()        # the summary.json contract; result.rows() the frames.csv rows

When the session can score acquisition quality (``Session.quality``, the quality checklist), the best frame is
the one with the highest smoothed probability times ``0.5 + 0.5 * score / 100`` among each plane's top
:data:`QUALITY_CANDIDATES` frames; otherwise the highest smoothed probability.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.data.transforms import model_inputs
from fetalscope.errors import MissingWeightsError
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.imaging.sector_tracker import SectorTracker
from fetalscope.imaging.video import DEFAULT_FRAME_BUDGET, Frame, FrameSource, VideoLimits, open_frames
from fetalscope.pipeline.measure import WHAT_BY_PLANE, check_pixel_size, measurement_for_plane
from fetalscope.pipeline.video_segments import Segment, SegmentRules, best_positions, segments, smooth

BATCH_SIZE = 16
QUALITY_CANDIDATES = 3
QualityFn = Callable[[UltrasoundImage, str], float | None]


@dataclass
class VideoAnalysis:
    """What ran on one clip. ``probabilities`` / ``smoothed`` are ``N x K`` over ``classes`` for the processed
    frames ``frame_indices`` (their indices in the file) at ``times_s``; ``best_images`` holds each best frame's
    pixels (never serialised)."""

    source: str
    info: dict[str, Any]
    classes: list[str]
    model: dict[str, Any]
    stride: int
    frame_indices: list[int]
    times_s: list[float | None]
    probabilities: np.ndarray
    smoothed: np.ndarray
    rules: SegmentRules
    segments: list[Segment]
    best_frames: dict[str, dict[str, Any]]
    measurements: dict[str, dict[str, Any]]
    measurements_skipped: dict[str, str] = field(default_factory=dict)
    best_images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def fps_source(self) -> float | None:
        return self.info.get("fps")

    @property
    def fps_processed(self) -> float | None:
        return None if not self.fps_source else round(self.fps_source / self.stride, 6)

    def segment_records(self) -> list[dict[str, Any]]:
        return [{"plane": s.plane, "start_frame": self.frame_indices[s.start], "end_frame": self.frame_indices[s.end],
                 "start_time_s": self.times_s[s.start], "end_time_s": self.times_s[s.end],
                 "frames_processed": s.end - s.start + 1} for s in self.segments]

    def to_dict(self) -> dict[str, Any]:
        """The summary (``summary.json``, ``POST /v1/video``)."""
        return {
            "source": self.source,
            "format": self.info.get("format"),
            "frames": len(self.frame_indices),
            "frames_source": self.info.get("n_frames"),
            "fps_source": self.fps_source,
            "fps_processed": self.fps_processed,
            "stride": self.stride,
            "duration_s": self.info.get("duration_s"),
            "width": self.info.get("width"),
            "height": self.info.get("height"),
            "pixel_spacing_mm": self.info.get("pixel_spacing_mm"),
            "pixel_spacing_source": self.info.get("pixel_spacing_source"),
            "classes": list(self.classes),
            "model": dict(self.model),
            "smoothing": {"window_frames": self.rules.window, "enter": self.rules.enter, "leave": self.rules.leave,
                          "min_frames": self.rules.min_frames},
            "segments": self.segment_records(),
            "best_frames": {k: dict(v) for k, v in self.best_frames.items()},
            "measurements": {k: dict(v) for k, v in self.measurements.items()},
            "measurements_skipped": dict(self.measurements_skipped),
            "warnings": list(self.warnings),
            "timings_ms": dict(self.timings_ms),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per processed frame (``frames.csv``): ``frame``, ``time_s``, the per-frame top ``plane`` and
        ``plane_probability``, ``p_<class>`` per class, then the smoothed top plane and the segment's plane."""
        by_position = {i: s.plane for s in self.segments for i in range(s.start, s.end + 1)}
        out = []
        for i, (index, t) in enumerate(zip(self.frame_indices, self.times_s, strict=True)):
            probs, smoothed = self.probabilities[i], self.smoothed[i]
            top = int(np.argmax(probs))
            row: dict[str, Any] = {"frame": index, "time_s": t, "plane": self.classes[top],
                                   "plane_probability": round(float(probs[top]), 6)}
            row.update({f"p_{c}": round(float(p), 6) for c, p in zip(self.classes, probs, strict=True)})
            row["plane_smoothed"] = self.classes[int(np.argmax(smoothed))]
            row["segment"] = by_position.get(i, "")
            out.append(row)
        return out


def classify_frames(session: Any, frames: list[np.ndarray], tracker: SectorTracker | None = None) -> np.ndarray:
    """Plane probabilities (``N x K``) of frames of one clip (``H x W x 3`` uint8 RGB) with the session's plane
    model, as one batch; ``tracker`` keeps the clip's sector between calls (found once, not per frame)."""
    analyser = session.analyser
    batch = model_inputs(frames, analyser.bundle.preprocess, tracker)
    return np.asarray(analyser.predictor.predict_proba(batch), dtype=np.float64)


def _session_quality(session: Any) -> QualityFn | None:
    """The session's acquisition quality score (0..1) of an image for a checklist, when it has one."""
    scorer = getattr(session, "quality", None)
    if scorer is None:
        return None

    def score(image: UltrasoundImage, what: str) -> float | None:
        record = scorer(image, what)
        value = record.get("score") if isinstance(record, dict) else getattr(record, "score", None)
        return None if value is None else float(value) / 100.0

    return score


def _frame_image(frame: Frame, source: FrameSource, pixel_size_mm: float | None) -> UltrasoundImage:
    info = source.info
    return UltrasoundImage(pixels=frame.pixels, source=f"{Path(info.source).name} frame {frame.index}",
                           format=info.format, pixel_spacing_mm=pixel_size_mm or info.pixel_spacing_mm,
                           frame=frame.index, n_frames=info.n_frames, meta=dict(info.meta))


def analyse_video(session: Any, src: str | Path | bytes, *, name: str | None = None, stride: int = 1,
                  max_frames: int | None = DEFAULT_FRAME_BUDGET, fps: float | None = None,
                  pixel_size_mm: float | None = None, measure: bool = True, quality: bool | str = "auto",
                  rules: SegmentRules | None = None, limits: VideoLimits | None = None,
                  progress: Callable[[int], None] | None = None) -> VideoAnalysis:
    """Analyse a clip (a video file, multi-frame DICOM, multi-page TIFF or folder of frames) with ``session``'s
    plane model (its runtime, e.g. ``onnx-int8``). ``stride`` / ``max_frames`` choose the frames (the stride
    grows to keep at most ``max_frames``); ``fps`` supplies a frame rate the file lacks; ``pixel_size_mm``
    overrides the file's calibration; ``measure`` measures the best brain and thorax frames; ``quality``
    (``auto``: when the session has ``quality``) weighs the best frame by acquisition quality."""
    t0 = time.perf_counter()
    rules = rules or SegmentRules()
    pixel_size_mm = check_pixel_size(pixel_size_mm, "pixel_size_mm")
    limits = limits or VideoLimits(max_bytes=session.max_bytes, max_pixels=min(session.max_pixels,
                                                                                VideoLimits().max_pixels))
    source = open_frames(src, name=name, fps=fps, limits=limits)
    classes = list(session.classes)
    indices: list[int] = []
    times: list[float | None] = []
    chunks: list[np.ndarray] = []
    pending: list[Frame] = []
    tracker = SectorTracker()

    def classify_pending() -> None:
        chunks.append(classify_frames(session, [f.pixels for f in pending], tracker))
        indices.extend(f.index for f in pending)
        times.extend(f.time_s for f in pending)
        if progress:
            progress(len(pending))
        pending.clear()

    for frame in source.frames(stride=stride, max_frames=max_frames):
        pending.append(frame)
        if len(pending) == BATCH_SIZE:
            classify_pending()
    if pending:
        classify_pending()
    probabilities = np.concatenate(chunks)
    step = indices[1] - indices[0] if len(indices) > 1 else max(1, stride)
    rules = rules.for_step(step)  # the window spans the same stretch of the clip whatever the stride
    t_classify = time.perf_counter()
    smoothed = smooth(probabilities, rules.window)
    found = segments(smoothed, classes, rules)
    scorer = _session_quality(session) if quality else None  # "auto" and True: when the session scores quality
    quality_by_position: dict[int, float] | None = None
    candidates: dict[str, list[int]] = {}
    for seg in found:
        candidates.setdefault(seg.plane, []).extend(range(seg.start, seg.end + 1))
    warnings = list(source.info.warnings)
    if scorer is not None and candidates:
        quality_by_position = {}
        for plane, positions in candidates.items():
            k = classes.index(plane)
            what = measurement_for_plane(plane)
            top = sorted(positions, key=lambda i, k=k: -smoothed[i, k])[:QUALITY_CANDIDATES]
            frames = source.read(indices[i] for i in top)
            for i in top:
                value = scorer(_frame_image(frames[indices[i]], source, pixel_size_mm), what) if what else None
                quality_by_position[i] = 0.5 + 0.5 * (value if value is not None else 0.0)
    best = best_positions(smoothed, classes, found, quality_by_position)
    best_frames = source.read(indices[i] for i in best.values())
    result = VideoAnalysis(
        source=name or source.info.source, info=source.info.to_dict(), classes=classes,
        model=dict(session.analyser.model_info), stride=step, frame_indices=indices, times_s=times,
        probabilities=probabilities, smoothed=smoothed, rules=rules, segments=found, best_frames={},
        measurements={}, warnings=warnings)
    for plane, i in sorted(best.items()):
        k = classes.index(plane)
        record: dict[str, Any] = {"frame": indices[i], "time_s": times[i],
                                  "probability": round(float(smoothed[i, k]), 6),
                                  "frame_probability": round(float(probabilities[i, k]), 6)}
        if quality_by_position is not None:
            record["quality_weight"] = round(quality_by_position.get(i, 0.0), 4)
        result.best_frames[plane] = record
        result.best_images[plane] = best_frames[indices[i]].pixels
    if measure:
        _measure_best(session, result, source, best_frames, pixel_size_mm)
    t_end = time.perf_counter()
    result.timings_ms = {"decode_and_classify": round((t_classify - t0) * 1000, 2),
                         "frames_per_s": round(len(indices) / max(t_classify - t0, 1e-9), 2),
                         "total": round((t_end - t0) * 1000, 2)}
    result.warnings = list(dict.fromkeys(result.warnings + source.info.warnings))
    return result


def _measure_best(session: Any, result: VideoAnalysis, source: FrameSource, frames: dict[int, Frame],
                  pixel_size_mm: float | None) -> None:
    """Head biometry on the best brain frame and the CTR on the best thorax frame (``measurements[what]``)."""
    for plane, record in result.best_frames.items():
        what = measurement_for_plane(plane)
        if what is None:
            continue
        image = _frame_image(frames[record["frame"]], source, pixel_size_mm)
        try:
            measured = session.measure(image, what)
        except MissingWeightsError as exc:
            result.measurements_skipped[what] = f"the measurement model is not available: {exc}"
            continue
        measured["frame"] = record["frame"]
        measured["time_s"] = record["time_s"]
        measured["plane"] = plane
        result.measurements[what] = measured
    for plane, what in WHAT_BY_PLANE.items():
        if what not in result.measurements and what not in result.measurements_skipped:
            result.measurements_skipped[what] = f"no '{plane}' segment in the clip"
