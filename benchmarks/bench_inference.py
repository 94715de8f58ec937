"""PyTorch eager vs ONNX Runtime inference speed for a bundle or a registry architecture.

In one run, on the same inputs: batch-1 latency (p50 / p95 over ``--runs`` calls) and batch-N
throughput (images/s) for both runtimes, the ONNX/eager speed-up, and the largest probability
difference between the two. Inputs are real images (``--images``, preprocessed with the model's
config) or, by default, a fixed seeded batch of synthetic ultrasound-like images.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_inference.py efficientnet_lite0 --threads 2
    .venv/bin/python benchmarks/bench_inference.py path/to/bundle --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import FetalscopeError
from fetalscope.models import create_model, list_models
from fetalscope.models.bundle import load_bundle
from fetalscope.models.onnx_export import export_onnx
from fetalscope.models.runtime import OnnxPredictor, Predictor, TorchPredictor


def synthetic_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` 300 x 400 RGB uint8 images: a bright speckled fan on black, seeded."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400]
    angle = np.arctan2(xx - 200, yy + 20)
    radius = np.hypot(xx - 200, yy + 20)
    fan = (np.abs(angle) < 0.6) & (radius < 310)
    out = []
    for _ in range(n):
        speckle = rng.gamma(2.0, 40.0, size=(300, 400)) * fan
        grey = np.clip(speckle, 0, 255).astype(np.uint8)
        out.append(np.repeat(grey[..., None], 3, axis=2))
    return out


def load_inputs(paths: list[str], n: int, cfg: PreprocessConfig) -> torch.Tensor:
    if paths:
        from fetalscope.imaging.loader import iter_image_paths, load_image

        files = list(iter_image_paths(paths))
        if not files:
            raise SystemExit(f"no images found in {paths}")
        images = [load_image(files[i % len(files)]) for i in range(n)]
    else:
        images = synthetic_images(n)
    return torch.stack([to_tensor(img, cfg) for img in images])


def time_interleaved(fns: dict[str, object], n: int, warmup: int) -> dict[str, list[float]]:
    """Call each function ``n`` times, alternating between them so that background load on a shared
    machine hits every runtime alike; returns the wall times per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def measure(predictors: dict[str, Predictor], one: np.ndarray, batch: np.ndarray, runs: int,
            batch_runs: int, warmup: int) -> dict[str, dict[str, float]]:
    lat = time_interleaved({k: (lambda p=p: p.predict_logits(one)) for k, p in predictors.items()},
                           runs, warmup)
    thr = time_interleaved({k: (lambda p=p: p.predict_logits(batch)) for k, p in predictors.items()},
                           batch_runs, 1)
    return {
        name: {
            "batch1_p50_ms": 1000 * statistics.median(lat[name]),
            "batch1_p95_ms": 1000 * float(np.percentile(lat[name], 95)),
            "batch1_mean_ms": 1000 * statistics.fmean(lat[name]),
            f"batch{len(batch)}_images_per_s": len(batch) / statistics.median(thr[name]),
        }
        for name in predictors
    }


def build(target: str, num_classes: int, pretrained: bool, arch_kwargs: dict):
    """``(model, preprocess, onnx path or None, label)`` for a bundle path/name or an architecture."""
    if target in list_models():
        model = create_model(target, num_classes, pretrained=pretrained, **arch_kwargs).eval()
        return model, model.spec.preprocess, None, f"architecture {target}"
    bundle = load_bundle(target)
    return bundle.model, bundle.preprocess, bundle.onnx_path, f"bundle {bundle.name} ({bundle.path})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="bundle folder, bundled model name, or registry architecture")
    parser.add_argument("--num-classes", type=int, default=5, help="classes for a bare architecture")
    parser.add_argument("--pretrained", action="store_true", help="load offline base weights (architecture)")
    parser.add_argument("--arch-kwargs", default="{}", help="JSON options for create_model")
    parser.add_argument("--input-size", type=int, default=None, help="override square input size")
    parser.add_argument("--images", nargs="*", default=[], help="image files/folders (default: synthetic)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and ORT intra-op threads")
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 calls per runtime")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batch-runs", type=int, default=3, help="timed batch-N calls per runtime")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--parallel", action="store_true", help="ORT parallel execution mode")
    parser.add_argument("--spin", action="store_true", help="let ORT worker threads busy-wait")
    parser.add_argument("--fresh-onnx", action="store_true",
                        help="re-export even if the bundle has model.onnx")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    try:
        model, cfg, onnx_path, label = build(args.target, args.num_classes, args.pretrained,
                                             json.loads(args.arch_kwargs))
    except FetalscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.input_size:
        cfg = cfg.replace(input_size=(args.input_size, args.input_size))
    inputs = load_inputs(args.images, args.batch, cfg).numpy()
    one = inputs[:1]

    with tempfile.TemporaryDirectory() as tmp:
        if onnx_path is None or args.fresh_onnx or args.input_size:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", input_size=tuple(cfg.input_size),
                                    channels=cfg.channels, opset=args.opset)
        eager = TorchPredictor(model)
        ort_pred = OnnxPredictor(onnx_path, intra_op_threads=args.threads, sequential=not args.parallel,
                                 spinning=args.spin)
        load_before = os.getloadavg()[0]
        diff = float(np.abs(eager.predict_proba(inputs) - ort_pred.predict_proba(inputs)).max())
        results = measure({"torch_eager": eager, "onnxruntime": ort_pred}, one, inputs, args.runs,
                          args.batch_runs, args.warmup)

    thr_key = f"batch{args.batch}_images_per_s"
    speedup_b1 = results["torch_eager"]["batch1_p50_ms"] / results["onnxruntime"]["batch1_p50_ms"]
    speedup_bn = results["onnxruntime"][thr_key] / results["torch_eager"][thr_key]
    report = {
        "target": label, "input_size": list(cfg.input_size), "channels": cfg.channels,
        "threads": args.threads, "opset": args.opset,
        "ort_execution": "parallel" if args.parallel else "sequential", "ort_spinning": args.spin,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "inputs": "images" if args.images else "synthetic", "runs": args.runs, "batch": args.batch,
        "results": results, "speedup_batch1_p50": speedup_b1, f"speedup_batch{args.batch}": speedup_bn,
        "max_abs_prob_diff": diff,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
    }
    print(f"{label}, input {cfg.channels}x{cfg.input_size[0]}x{cfg.input_size[1]}, {args.threads} threads, "
          f"1-min load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'runtime':<14}{'b1 p50 ms':>11}{'b1 p95 ms':>11}{f'b{args.batch} img/s':>12}")
    for name, r in results.items():
        print(f"{name:<14}{r['batch1_p50_ms']:>11.2f}{r['batch1_p95_ms']:>11.2f}{r[thr_key]:>12.1f}")
    print(f"ONNX/eager speed-up: batch 1 (p50) {speedup_b1:.2f}x, batch {args.batch} {speedup_bn:.2f}x; "
          f"max |prob diff| {diff:.2e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
