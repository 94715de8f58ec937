"""Cine loops in a batch: which inputs are clips (video files, multi-frame DICOM, multi-page TIFF) and the one
row a clip gives from :func:`fetalscope.pipeline.video.analyse_video`: its frames, segments, the best frame of each
plane with its probability and the measurements on the best frames, what the detector finds on each best frame
(``--tasks detect``), plus (optionally) one row per processed frame."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

from fetalscope.imaging.video import VIDEO_SUFFIXES

CLIP, IMAGE = "clip", "image"
HEAD_KEYS = ("hc_mm", "bpd_mm", "ofd_mm", "ga_weeks")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


def is_clip(data: bytes, path: str) -> bool:
    """A video file (by its suffix), a DICOM whose header says it holds more than one frame, or a TIFF with more
    than one page (a cine loop saved page by page, not its first page alone)."""
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        return True
    if data[:4] in TIFF_MAGIC:
        return _tiff_pages(data) > 1
    if len(data) <= 132 or data[128:132] != b"DICM":
        return False
    import pydicom

    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        return int(header.get("NumberOfFrames", 1) or 1) > 1
    except Exception:  # noqa: BLE001 - an unreadable header: the still loader says what is wrong
        return False


def _tiff_pages(data: bytes) -> int:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return len(tif.pages)
    except Exception:  # noqa: BLE001 - an unreadable TIFF: the still loader says what is wrong
        return 1


def clip_columns(result: Any) -> dict[str, Any]:
    """The row of one analysed clip (a :class:`~fetalscope.pipeline.video.VideoAnalysis`): ``plane`` is the
    plane of the most processed frames in segments and ``plane_probability`` the smoothed probability of its
    best frame; ``frames``, ``frames_source``, ``fps_source``, ``duration_s``, ``stride``, ``segments`` (count)
    and ``segment_planes`` (in time order); ``best_frame_<plane>``, ``best_time_s_<plane>`` and
    ``best_p_<plane>`` per plane seen; the measurements with the still rows' columns (``measurement``: what was
    measured, ``hc_mm`` ..., ``ctr``) and the frame each was made on; warnings and timings."""
    summary = result.to_dict()
    by_plane: Counter = Counter()
    for seg in summary["segments"]:
        by_plane[seg["plane"]] += seg["frames_processed"]
    plane = by_plane.most_common(1)[0][0] if by_plane else None
    best = summary["best_frames"]
    row: dict[str, Any] = {
        "plane": plane, "plane_probability": best[plane]["probability"] if plane in best else None,
        "frames": summary["frames"], "frames_source": summary["frames_source"], "fps_source": summary["fps_source"],
        "duration_s": summary["duration_s"], "stride": summary["stride"], "segments": len(summary["segments"]),
        "segment_planes": ";".join(s["plane"] for s in summary["segments"]),
    }
    for name, record in sorted(best.items()):
        row[f"best_frame_{name}"] = record["frame"]
        row[f"best_time_s_{name}"] = record["time_s"]
        row[f"best_p_{name}"] = record["probability"]
    measured = summary["measurements"]
    if measured or summary["measurements_skipped"]:
        row["measurement"] = ";".join(sorted(measured))
    for what, m in sorted(measured.items()):
        row[f"{what}_frame"] = m.get("frame")
        if what == "head":
            row.update({k: m.get(k) for k in HEAD_KEYS})
            row["hc_interval_low_mm"], row["hc_interval_high_mm"] = m.get("hc_interval_mm") or [None, None]
        elif what == "cardiothoracic":
            row["ctr"] = (m.get("ctr") or {}).get("circumference")
            row["ctr_interval_low"], row["ctr_interval_high"] = m.get("ctr_interval") or [None, None]
    row["clip_warnings"] = ";".join(summary["warnings"])
    row["time_clip_ms"] = summary["timings_ms"].get("total")
    row["clip_frames_per_s"] = summary["timings_ms"].get("frames_per_s")
    return row


def detection_columns(session: Any, result: Any) -> dict[str, Any]:
    """What the brain-structure detector finds on each plane's best frame of an analysed clip, each frame alone
    (:meth:`Session.detect` on its pixels, as ``fetalscope detect`` on that frame saved as an image):
    ``detections_<plane>`` (boxes kept) and ``detected_<plane>`` (their labels, ``;``-joined), with
    ``time_detect_ms``; ``detections_skipped`` says why when no detector is available."""
    from fetalscope.imaging.loader import UltrasoundImage

    if not session.detector_available:
        return {"detections_skipped": session.detector_info().get("reason")}
    row: dict[str, Any] = {}
    took = 0.0
    for plane, pixels in sorted(result.best_images.items()):
        frame = result.best_frames[plane]["frame"]
        record = session.detect(UltrasoundImage(pixels=pixels, source=f"{Path(result.source).name} frame {frame}"))
        boxes = record.get("boxes") or []
        row[f"detections_{plane}"] = len(boxes)
        row[f"detected_{plane}"] = ";".join(str(b["label"]) for b in boxes)
        took += record["timings_ms"]["detect"]
    row["time_detect_ms"] = round(took, 2)
    return row


def frame_rows(path: str, result: Any) -> list[dict[str, Any]]:
    """One row per processed frame: ``path``, then the clip's ``frames.csv`` columns (``frame``, ``time_s``,
    ``plane``, ``plane_probability``, ``p_<class>``, ``plane_smoothed``, ``segment``)."""
    return [{"path": path, **r} for r in result.rows()]
