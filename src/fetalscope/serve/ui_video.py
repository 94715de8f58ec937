"""The app's Video tab: a clip (video file, multi-frame DICOM, multi-page TIFF) through the video pipeline, and a
live mode for a stream (webcam, or a screen capture of a scanner's video output) through Gradio's streaming.

Upload: the timeline plot, the segments and best frames (the numbers of ``POST /v1/video`` for the same file: the
same call, limits and frame budget), a slider to scrub the analysed frames (each with its plane), and the gallery
of best frames with their measurements drawn. Live: each streamed frame goes through
:class:`~fetalscope.pipeline.video_live.LiveScan`; the page shows the current plane, the frame's latency and the
running standard-plane checklist with the best frame so far of each plane. Nothing is written to disk: an upload
is read into memory and Gradio's own copy of it is deleted."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalscope.errors import FetalscopeError
from fetalscope.imaging.video import VIDEO_SUFFIXES, VideoLimits, open_frames
from fetalscope.pipeline.html_report import measurement_rows
from fetalscope.pipeline.measure import measurement_for_plane
from fetalscope.pipeline.video import VideoAnalysis, analyse_video
from fetalscope.pipeline.video_live import LiveScan, LiveState
from fetalscope.pipeline.video_outputs import best_frame_image, timeline_png
from fetalscope.serve.limits import DEFAULT_VIDEO_FRAMES, check_upload_size
from fetalscope.serve.service import Service, safe_name

CLIP_TYPES = [*VIDEO_SUFFIXES, ".dcm", ".dicom", ".tif", ".tiff"]
VIDEO_HINT = ("Drop a cine loop or video (MP4, AVI, MOV, WebM, MKV, multi-frame DICOM, multi-page TIFF): each frame "
              f"gets its plane (at most {DEFAULT_VIDEO_FRAMES} frames, evenly spaced), smoothed over time; the best "
              "frame of each plane seen is measured (head biometry, cardiothoracic ratio).")
LIVE_HINT = ("Live: allow the camera (a webcam, or a capture device showing the scanner's video output). Each frame "
             "gets the current plane; the checklist fills as planes are held steadily.")
Display = Callable[[np.ndarray], np.ndarray]


def _png_to_rgb(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _measurement_cells(record: dict[str, Any] | None) -> str:
    if not record:
        return ""
    return "; ".join(f"{label} {value}" for label, value in measurement_rows(record))


def summary_markdown(result: VideoAnalysis) -> str:
    """The clip's summary as Markdown: frames, segments, best frames with measurements (all from the result)."""
    s = result.to_dict()
    fps = "unknown" if s["fps_source"] is None else f"{s['fps_source']:g}"
    lines = [f"**{Path(s['source']).name}**: {s['frames']} of {s['frames_source']} frames analysed (stride "
             f"{s['stride']}, {fps} frames/s), {len(s['segments'])} segment(s); plane model "
             f"`{s['model'].get('id', '')}`.", "", "| plane | first frame | last frame |", "| --- | --- | --- |"]
    lines += [f"| {g['plane']} | {g['start_frame']} | {g['end_frame']} |" for g in s["segments"]]
    if not s["segments"]:
        lines.append("| no plane held long enough | | |")
    lines += ["", "| best frame of | frame | time (s) | probability | measurement |", "| --- | --- | --- | --- | --- |"]
    for plane, best in s["best_frames"].items():
        what = measurement_for_plane(plane)
        when = "" if best["time_s"] is None else f"{best['time_s']:.3f}"
        lines.append(f"| {plane} | {best['frame']} | {when} | {best['probability']:.3f} | "
                     f"{_measurement_cells(s['measurements'].get(what) if what else None)} |")
    for what, why in s["measurements_skipped"].items():
        lines.append(f"- {what}: not measured ({why})")
    lines += [f"- warning: {w}" for w in s["warnings"]]
    return "\n".join(lines)


def frame_caption(result: VideoAnalysis, position: int) -> str:
    """What the slider's frame is: its index and time in the file, its plane and probability, the smoothed plane
    and the segment it lies in."""
    row = result.rows()[position]
    when = "" if row["time_s"] is None else f" ({row['time_s']:.3f} s)"
    segment = row["segment"] or "none"
    return (f"Frame {row['frame']}{when}: **{row['plane']}** {row['plane_probability']:.3f}; smoothed: "
            f"{row['plane_smoothed']}; segment: {segment}")


def checklist_markdown(state: LiveState, latencies_ms: list[float]) -> str:
    """The live checklist: a tick and the best frame's number and probability for each plane captured."""
    current = "between planes" if state.plane is None else f"**{state.plane}** {state.probability:.2f}"
    lines = [f"Frame {state.frame}: {current} (this frame alone: {state.frame_plane} {state.frame_probability:.2f}); "
             f"latency {state.latency_ms:.0f} ms (median {float(np.median(latencies_ms)):.0f} ms over "
             f"{len(latencies_ms)} frames)", "", "| | plane | best frame so far |", "| --- | --- | --- |"]
    for plane, capture in state.checklist.items():
        mark, best = ("✓", f"frame {capture.frame}, {capture.probability:.2f}") if capture else ("✗", "not yet")
        lines.append(f"| {mark} | {plane} | {best} |")
    return "\n".join(lines)


def make_live_step(service: Service, display: Display) -> Callable[..., tuple]:
    """The stream function: ``(frame, live) -> (checklist markdown, gallery, live)``; ``live`` is the
    per-browser :class:`LiveScan` (made on the first frame). The gallery is sent only when the checklist
    changed."""
    import gradio as gr

    def step(frame: np.ndarray | None, live: LiveScan | None) -> tuple:
        if frame is None:
            return gr.skip(), gr.skip(), live
        live = live if live is not None else LiveScan(service.session)
        before = {p: (c.frame if c else None) for p, c in live.checklist.items()}
        rgb = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
        state = live.push(rgb)
        after = {p: (c.frame if c else None) for p, c in state.checklist.items()}
        gallery = gr.skip() if after == before else [
            (display(c.pixels), f"{p}: frame {c.frame}, {c.probability:.2f}") for p, c in state.checklist.items() if c]
        return checklist_markdown(state, live.latencies_ms), gallery, live

    return step


def add_video_tab(service: Service, display: Display) -> None:
    """The Video tab, inside the caller's ``gr.Tabs``."""
    import gradio as gr

    settings = service.settings

    def analyse(path: str | None) -> tuple:
        if not path:
            return None, None, "", gr.update(maximum=1, value=0, visible=False), None, "", [], None
        try:
            data = Path(path).read_bytes()
            name = safe_name(Path(path).name)
            check_upload_size(data, settings.max_upload_bytes, name)
            limits = VideoLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
            result = analyse_video(service.session, data, name=name, max_frames=DEFAULT_VIDEO_FRAMES, limits=limits)
        except FetalscopeError as exc:
            return None, None, f"<div class='fs-error'>{exc}</div>", gr.update(visible=False), None, "", [], None
        finally:
            with contextlib.suppress(OSError):
                Path(path).unlink()  # Gradio's copy of the upload: nothing is kept on disk
        gallery = [(display(best_frame_image(result, plane)), f"{plane}: frame {record['frame']}")
                   for plane, record in result.best_frames.items()]
        current = {"data": data, "name": name, "result": result}
        slider = gr.update(minimum=0, maximum=max(1, len(result.frame_indices) - 1), value=0, step=1, visible=True)
        first, caption = show_frame(current, 0)
        return (current, _png_to_rgb(timeline_png(result)), summary_markdown(result), slider, first, caption,
                gallery, None)

    def show_frame(current: dict[str, Any] | None, position: float | None) -> tuple:
        if not current:
            return None, ""
        result: VideoAnalysis = current["result"]
        position = int(min(max(0, int(position or 0)), len(result.frame_indices) - 1))
        index = result.frame_indices[position]
        try:
            source = open_frames(current["data"], name=current["name"], limits=VideoLimits(
                max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels))
            frame = source.read([index])[index]
        except (FetalscopeError, KeyError) as exc:
            return None, f"Frame {index} cannot be shown: {exc}"
        return display(frame.pixels), frame_caption(result, position)

    def reset(live: LiveScan | None) -> tuple:
        if live is not None:
            live.reset()
        return "Checklist cleared.", [], live

    with gr.Tab("Video", id="video"):
        gr.Markdown(VIDEO_HINT)
        clip_state = gr.State(None, time_to_live=3600)
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Drop a clip here or click to upload", file_types=CLIP_TYPES,
                                 type="filepath", elem_id="video-upload")
                frame_img = gr.Image(label="Frame", interactive=False, height=300, elem_id="video-frame",
                                     format="png")
                slider = gr.Slider(0, 1, value=0, step=1, label="Scrub the analysed frames", visible=False,
                                   elem_id="video-slider")
                caption = gr.Markdown(elem_id="video-frame-info")
            with gr.Column(scale=3):
                timeline = gr.Image(label="Timeline: plane probability over time", show_label=False,
                                    interactive=False, elem_id="video-timeline", format="png")
                summary = gr.Markdown(elem_id="video-summary")
        gallery = gr.Gallery(label="Best frame of each plane, measured", columns=4, allow_preview=False,
                             height=280, object_fit="contain", elem_id="video-best", interactive=False,
                             fit_columns=False)
        gr.Markdown("### Live scanning\n" + LIVE_HINT)
        live_state = gr.State(None, time_to_live=3600)
        with gr.Row():
            with gr.Column(scale=2):
                camera = gr.Image(sources=["webcam"], streaming=True, label="Camera or capture device",
                                  elem_id="live-camera", type="numpy")
                reset_btn = gr.Button("New scan: clear the checklist", elem_id="live-reset")
            with gr.Column(scale=3):
                checklist = gr.Markdown("No frame yet.", elem_id="live-checklist")
                live_gallery = gr.Gallery(label="Best frame so far of each plane", columns=4, allow_preview=False,
                                          height=220, object_fit="contain", elem_id="live-best", interactive=False,
                                          fit_columns=False)
    # the widget is emptied with the answer (its copy is gone), so the next drop replaces this clip
    upload.upload(analyse, [upload], [clip_state, timeline, summary, slider, frame_img, caption, gallery, upload])
    slider.change(show_frame, [clip_state, slider], [frame_img, caption], trigger_mode="always_last",
                  show_progress="hidden")
    camera.stream(make_live_step(service, display), [camera, live_state], [checklist, live_gallery, live_state],
                  stream_every=0.1, time_limit=1800, concurrency_limit=max(1, settings.max_concurrent),
                  show_progress="hidden")
    reset_btn.click(reset, [live_state], [checklist, live_gallery, live_state])
