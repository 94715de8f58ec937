"""Milliseconds per image of a whole measurement (every network pass, view and ellipse fit of the bundle's card)
for head biometry and the cardiothoracic ratio, on PyTorch eager and on the ONNX Runtime twin, with the ratio
measured in this run (``python benchmarks/bench_measure.py [--images N] [--shared ../shared] [--out F.json]``).

Images: the bundled example brain and thorax images (nothing read from shared/), or with ``--shared`` the first
N validation images of each bundle (HC18 heads, FOCUS thoraxes). ``--head-bundle`` / ``--ctr-bundle`` time
another bundle folder (e.g. an earlier revision). Numbers depend on the machine and its load: run it on an idle
one; the load average before and after is printed with the results."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

from fetalscope.biometry.measure import DEFAULT_BUNDLES, Measurer  # noqa: E402
from fetalscope.imaging.loader import load_image  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "fetalscope" / "serve" / "examples"
EXAMPLE = {"head": "phantom_fetal_brain.png", "cardiothoracic": "phantom_fetal_thorax.png"}


def images_for(what: str, bundle: str, shared: Path | None, n: int) -> list[Path]:
    """``n`` images to time: the bundle's first validation images from ``shared``, else the bundled example."""
    if shared is None:
        return [EXAMPLES / EXAMPLE[what]] * n
    from fetalscope.models.bundle import resolve_bundle
    from fetalscope.train.segmenter.recipes import read_split

    return [shared / "data" / rel for rel in read_split(resolve_bundle(bundle), "validation")[:n]]


def time_measurer(measurer: Measurer, paths: list[Path], warmup: int = 1) -> list[float]:
    images = [load_image(p) for p in paths]
    for image in images[:warmup]:
        measurer.measure(image, 0.1)
    times = []
    for image in images:
        t = time.perf_counter()
        measurer.measure(image, 0.1)
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--shared", type=Path, default=None, help="time real validation images from this folder")
    parser.add_argument("--head-bundle", default=DEFAULT_BUNDLES["head"])
    parser.add_argument("--ctr-bundle", default=DEFAULT_BUNDLES["cardiothoracic"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = round(os.getloadavg()[0], 2)
    results: dict[str, dict] = {}
    for what, bundle in (("head", args.head_bundle), ("cardiothoracic", args.ctr_bundle)):
        paths = images_for(what, bundle, args.shared, args.images)
        row: dict = {"bundle": str(bundle), "images": len(paths)}
        for runtime in ("torch", "onnx"):
            measurer = Measurer(what, bundle, runtime=runtime)
            row["networks"] = int(measurer.bundle.card.get("arch_kwargs", {}).get("members", 1))
            row["views"] = measurer.ellipse_views or ["plain"]
            times = time_measurer(measurer, paths)
            row[f"{runtime}_median_ms"] = round(statistics.median(times), 1)
        row["onnx_speedup"] = round(row["torch_median_ms"] / row["onnx_median_ms"], 2)
        results[what] = row
        print(f"{what:15s} {row['networks']} networks x {len(row['views'])} views: torch {row['torch_median_ms']} ms, "
              f"ONNX {row['onnx_median_ms']} ms per image (ONNX {row['onnx_speedup']}x faster)", flush=True)
    out = {"threads": args.threads, "images": "shared validation" if args.shared else "bundled examples",
           "load_average_1min": [load_before, round(os.getloadavg()[0], 2)], "results": results}
    print(f"load average (1 min) before / after: {out['load_average_1min']}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
