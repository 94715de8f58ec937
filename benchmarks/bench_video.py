"""Decode + classify frames per second of a clip on 2 threads: decode alone, preprocessing per frame (the sector
searched on every frame vs found once per clip and batched), decode + the plane model on PyTorch eager, ONNX fp32
and ONNX int8, and the live path's latency per frame (``LiveScan.push``, int8)
(``python benchmarks/bench_video.py [--frames N] [--out F.json]``).

The clip is written here by OpenCV (MJPEG, 640x448) from the bundled example images; nothing is read from
shared/. Numbers depend on the machine and its load: run it on an idle one."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fetalscope.data.transforms import model_input, model_inputs  # noqa: E402
from fetalscope.imaging.loader import load_image  # noqa: E402
from fetalscope.imaging.video import open_frames  # noqa: E402
from fetalscope.pipeline.session import Session  # noqa: E402
from fetalscope.pipeline.video import analyse_video  # noqa: E402
from fetalscope.pipeline.video_live import LiveScan  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "fetalscope" / "serve" / "examples"


def write_clip(path: Path, frames: int) -> Path:
    stills = [cv2.resize(load_image(p).pixels, (640, 448)) for p in sorted(EXAMPLES.glob("*.png"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 448))
    for i in range(frames):
        writer.write(cv2.cvtColor(stills[(i // 12) % len(stills)], cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    load_before = round(os.getloadavg()[0], 2)
    results: dict[str, float] = {}
    preprocess: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.avi", args.frames)
        t = time.perf_counter()
        n = sum(1 for _ in open_frames(clip).frames(max_frames=None))
        results["decode_only"] = round(n / (time.perf_counter() - t), 1)
        frames = [f.pixels for f in open_frames(clip).frames(max_frames=None)]
        cfg = Session(brain_plane_model=None, brain_findings_model=None, detector=None).analyser.bundle.preprocess
        t = time.perf_counter()
        for rgb in frames:
            model_input(rgb, cfg)
        preprocess["per_frame_sector_ms"] = round((time.perf_counter() - t) * 1000 / len(frames), 2)
        t = time.perf_counter()
        model_inputs(frames, cfg)
        preprocess["sector_once_batched_ms"] = round((time.perf_counter() - t) * 1000 / len(frames), 2)
        for runtime in ("torch", "onnx", "onnx-int8"):
            session = Session(runtime=runtime, brain_plane_model=None, brain_findings_model=None, detector=None)
            session.analyser  # noqa: B018  (load outside the timing)
            t = time.perf_counter()
            result = analyse_video(session, clip, max_frames=None, measure=False, quality=False)
            results[f"decode_classify_{runtime}"] = round(len(result.frame_indices) / (time.perf_counter() - t), 1)
        live = LiveScan(session)  # the last session: int8
        live.push(frames[0])  # warm-up
        live.reset()
        for rgb in frames:
            live.push(rgb)
        latency = np.asarray(live.latencies_ms)
        live_ms = {"median": round(float(np.median(latency)), 2), "p95": round(float(np.percentile(latency, 95)), 2),
                   "max": round(float(latency.max()), 2), "sector_searches": live.tracker.searches}
    report = {"frames": args.frames, "size": "640x448", "threads": 2, "frames_per_s": results,
              "preprocess_ms_per_frame": preprocess, "live_latency_ms_int8": live_ms,
              "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2),
                                    "cpus": os.cpu_count()}}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
