"""What ``fetalscope video`` writes for one clip: ``frames.csv``, ``summary.json``, each best frame as PNG with
its measurement drawn and its plane, frame and time captioned, and ``timeline.png`` (every class's probability
over time, smoothed, with the segments shaded)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalscope.explain.overlay import png_bytes
from fetalscope.pipeline.analysis import draw_findings
from fetalscope.pipeline.measure import measurement_for_plane
from fetalscope.pipeline.video import VideoAnalysis


def _label(rgb: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    scale = max(0.4, max(h, w) / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (min(w - 1, tw + 8), th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def best_frame_image(result: VideoAnalysis, plane: str) -> np.ndarray:
    """The best frame of ``plane`` with its measurement drawn and a caption (plane, probability, frame, time)."""
    record = result.best_frames[plane]
    what = measurement_for_plane(plane)
    measurement = result.measurements.get(what) if what else None
    drawn = draw_findings(result.best_images[plane], measurement=measurement)
    when = "" if record["time_s"] is None else f", {record['time_s']:.2f} s"
    return _label(drawn, f"{plane} {record['probability']:.2f} (frame {record['frame']}{when})")


def timeline_png(result: VideoAnalysis) -> bytes:
    """PNG of each class's smoothed probability over time (frame index when there is no frame rate), with the
    per-frame probability faint behind it and the segments shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = all(t is not None for t in result.times_s)
    x = np.asarray(result.times_s if timed else result.frame_indices, dtype=float)
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    colours = plt.get_cmap("tab10")
    for k, plane in enumerate(result.classes):
        colour = colours(k % 10)
        ax.plot(x, result.probabilities[:, k], color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(x, result.smoothed[:, k], color=colour, linewidth=1.8, label=plane)
    for seg in result.segments:
        colour = colours(result.classes.index(seg.plane) % 10)
        ax.axvspan(x[seg.start], x[seg.end], color=colour, alpha=0.12)
    for plane, record in result.best_frames.items():
        pos = result.frame_indices.index(record["frame"])
        ax.plot([x[pos]], [record["probability"]], marker="*", markersize=12, color="black")
        ax.annotate(f"best {plane}", (x[pos], record["probability"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.axhline(result.rules.enter, color="grey", linestyle="--", linewidth=0.8)
    ax.axhline(result.rules.leave, color="grey", linestyle=":", linewidth=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("time (s)" if timed else "frame")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(result.source).name}: plane probability over time (smoothed; per frame faint)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _file_stem(plane: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", plane.lower()).strip("_") or "plane"


def video_to_folder(result: VideoAnalysis, out_dir: str | Path) -> dict[str, Any]:
    """Write ``frames.csv``, ``summary.json``, ``best_<plane>.png`` and ``timeline.png`` into ``out_dir``;
    returns the summary (with the files written under ``files``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    with (out / "frames.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    files = {"frames": "frames.csv", "timeline": "timeline.png", "best_frames": {}}
    for plane in result.best_frames:
        name = f"best_{_file_stem(plane)}.png"
        (out / name).write_bytes(png_bytes(best_frame_image(result, plane)))
        files["best_frames"][plane] = name
        result.best_frames[plane]["image"] = name
    (out / "timeline.png").write_bytes(timeline_png(result))
    summary = result.to_dict()
    summary["files"] = files
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary
