"""``fetalscope video``: a cine loop or video -> per-frame planes, segments, best frames, measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fetalscope.cli.common import friendly_errors, progress_bar, say


@friendly_errors
def video(
    source: Annotated[Path, typer.Argument(help="A video (MP4, AVI, MOV, WebM, MKV), a multi-frame DICOM, a "
                                                "multi-page TIFF or a folder of numbered frames.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for frames.csv, summary.json, the best "
                                                                "frames and timeline.png.")],
    stride: Annotated[int, typer.Option(help="Analyse every N-th frame.")] = 1,
    max_frames: Annotated[int, typer.Option(help="Frame budget: at most this many frames (the stride grows to "
                                                 "fit).")] = 600,
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8 for the plane model.")] = "auto",
    model: Annotated[str, typer.Option("--model", "-m", help="Plane model: bundled name or bundle folder.")]
    = "sononet-planes",
    fps: Annotated[float | None, typer.Option(help="Frame rate when the file has none (TIFF, frame folders).")]
    = None,
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Millimetres per pixel (overrides the "
                                                                          "file's calibration).")] = None,
    measure: Annotated[bool, typer.Option("--measure/--no-measure", help="Measure the best brain (head) and "
                                                                         "thorax (CTR) frames.")] = True,
) -> None:
    """Planes frame by frame in a cine loop or video: segments, the best frame of each plane, measurements."""
    from fetalscope.imaging.video import effective_stride, open_frames
    from fetalscope.pipeline.measure import check_pixel_size
    from fetalscope.pipeline.session import Session
    from fetalscope.pipeline.video import analyse_video
    from fetalscope.pipeline.video_outputs import video_to_folder

    pixel_size = check_pixel_size(pixel_size, "--pixel-size")
    n_frames = open_frames(source, fps=fps).info.n_frames  # bad input is refused before any model loads
    total = len(range(0, n_frames, effective_stride(n_frames, stride, max_frames)))
    session = Session(model, runtime=runtime, brain_plane_model=None, brain_findings_model=None, detector=None)
    with progress_bar(total, "video") as advance:
        result = analyse_video(session, source, stride=stride, max_frames=max_frames, fps=fps,
                               pixel_size_mm=pixel_size, measure=measure, progress=advance)
    summary = video_to_folder(result, output)
    found = ", ".join(f"{s['plane']} {s['start_frame']}-{s['end_frame']}" for s in summary["segments"]) or "none"
    say(f"{summary['frames']} frames analysed ({summary['timings_ms']['frames_per_s']} frames/s); segments: {found}")
    for what, record in summary["measurements"].items():
        value = record.get("hc_mm") if what == "head" else (record.get("ctr") or {}).get("circumference")
        say(f"{what} on frame {record['frame']}: {value if value is not None else 'not measured'}")
    for warning in summary["warnings"]:
        say(f"warning: {warning}")
    say(f"wrote {output}/frames.csv, summary.json, timeline.png and {len(summary['best_frames'])} best frame(s)")
