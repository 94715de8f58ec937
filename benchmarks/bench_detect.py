"""CPU inference time per image of a detector bundle (default: the bundled ``brain-structures``).

Measures, on the same images: detector forward (p50 / p95 / mean ms over ``--runs`` passes), the
skull-ellipse estimate of the plausibility check, and the whole ``detect_image`` call. Inputs are
real images (``--images``; by default the shared ``yolo_brain_structures/valid`` set when present)
or seeded synthetic 640 x 432 frames.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_detect.py --threads 1
    .venv/bin/python benchmarks/bench_detect.py --bundle path/to/bundle --images dir/ --json bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fetalscope import config
from fetalscope.detect.api import detect_image, get_bundle
from fetalscope.detect.skull import estimate_skull
from fetalscope.imaging.loader import UltrasoundImage, iter_image_paths, load_image


def synthetic(n: int, seed: int = 0) -> list[UltrasoundImage]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        grey = rng.gamma(2.0, 20.0, size=(432, 640)).clip(0, 255).astype(np.uint8)
        out.append(UltrasoundImage(np.repeat(grey[..., None], 3, axis=2), source=f"synthetic-{i}"))
    return out


def timed(fn, items, runs: int) -> list[float]:  # noqa: ANN001
    fn(items[0])  # warm-up
    times = []
    for _ in range(runs):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(1000 * (time.perf_counter() - start))
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"mean_ms": round(statistics.fmean(times), 1), "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="brain-structures")
    p.add_argument("--images", nargs="*", default=None)
    p.add_argument("--n", type=int, default=8, help="images to time")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = get_bundle(args.bundle)
    paths = args.images
    if paths is None:
        default = config.shared_data_dir() / "yolo_brain_structures" / "valid" / "images"
        paths = [str(default)] if default.is_dir() else []
    images = [load_image(f) for f in list(iter_image_paths(paths))[: args.n]] if paths else synthetic(args.n)
    result = {
        "bundle": bundle.name,
        "images": len(images),
        "image_size": f"{images[0].width}x{images[0].height}",
        "input": "real" if paths else "synthetic",
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "detector": summary(timed(bundle.detector.predict, images, args.runs)),
        "skull_estimate": summary(timed(lambda im: estimate_skull(im.pixels), images, 1)),
        "detect_image": summary(timed(lambda im: detect_image(im, bundle), images, 1)),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
