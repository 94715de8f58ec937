"""Seconds per image for each explanation method, against the targets of the explain issue.

Targets (2 CPU cores, 224 px, the shipped classifier): Grad-CAM <= 0.1 s, Guided Backprop <= 0.15 s,
Integrated Gradients (32 steps) <= 2 s, Occlusion <= 4 s, LIME (300 samples) <= 8 s per image.
Other methods (Grad-CAM++, Guided Grad-CAM, saliency) are timed and listed without a target.

Inputs are synthetic ultrasound phantoms (:func:`fetalscope.data.phantoms.make_phantom`) or
real images (``--images``), preprocessed with each model's own configuration. Each method runs
once to warm up, then ``--runs`` times on one image (median and worst reported); with
``--batch N`` the per-image cost of explaining N images in one call is measured too.

    .venv/bin/python benchmarks/bench_explain.py --threads 2
    .venv/bin/python benchmarks/bench_explain.py fetalnet --methods gradcam,ig --json out.json

The load average is recorded: on a shared machine other processes inflate the wall times, and
the CPU seconds per image (process time) are printed beside them. On an oversubscribed machine
(more busy threads than cores) OpenMP's default busy-waiting makes 2-thread PyTorch up to 40x
slower than 1 thread (measured: MobileNetV2 forward 1.0 s instead of 0.03 s at load average 4 on
2 cores); there, run with ``OMP_WAIT_POLICY=PASSIVE`` or ``--threads 1`` (the environment is
recorded in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import FetalscopeError
from fetalscope.explain import explain, explain_batch, method_spec, parse_methods
from fetalscope.explain.common import optimise_for_cpu
from fetalscope.models import create_model, list_models

TARGETS_S = {"gradcam": 0.1, "guided_backprop": 0.15, "integrated_gradients": 2.0, "occlusion": 4.0, "lime": 8.0}
TARGET_PARAMS = {"integrated_gradients": {"n_steps": 32}, "lime": {"n_samples": 300}}
DEFAULT_METHODS = "gradcam,gradcam++,guided_backprop,guided_gradcam,integrated_gradients,occlusion,lime"
DEFAULT_MODELS = ("fetalnet", "efficientnet_lite0", "sononet16")


def inputs(cfg: PreprocessConfig, n: int, paths: list[str]) -> torch.Tensor:
    if paths:
        from fetalscope.imaging import iter_image_paths, load_image

        files = list(iter_image_paths(paths))
        images = [load_image(files[i % len(files)]) for i in range(n)]
    else:
        from fetalscope.data.labels import PLANE_CLASSES
        from fetalscope.data.phantoms import make_phantom

        rng = np.random.default_rng(0)
        images = [make_phantom(PLANE_CLASSES[i % len(PLANE_CLASSES)], rng, (300, 400)) for i in range(n)]
    return torch.stack([to_tensor(img, cfg) for img in images])


def build(name: str, pretrained: bool) -> tuple[torch.nn.Module, str]:
    if pretrained:
        try:
            return create_model(name, 6, pretrained=True).eval(), "pretrained base weights, random 6-class head"
        except FetalscopeError as exc:
            print(f"  ({name}: {exc}; using random weights)", file=sys.stderr)
    return create_model(name, 6, pretrained=False).eval(), "random weights"


def time_method(model: torch.nn.Module, x: torch.Tensor, method: str, runs: int, batch: int,
                cfg: PreprocessConfig, precision: str | None = None) -> dict:
    params = dict(TARGET_PARAMS.get(method, {}))
    if precision and "precision" in method_spec(method).defaults:
        params["precision"] = precision
    explain(model, x[0], method, preprocess=cfg, **params)  # warm-up
    wall, cpu = [], []
    for i in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        explain(model, x[i % len(x)], method, preprocess=cfg, **params)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    row = {"method": method, "params": params, "runs": runs, "median_s": statistics.median(wall),
           "max_s": max(wall), "cpu_median_s": statistics.median(cpu), "target_s": TARGETS_S.get(method)}
    if batch > 1:
        t0 = time.perf_counter()
        explain_batch(model, x[:batch], method, preprocess=cfg, **params)
        row["batched_per_image_s"] = (time.perf_counter() - t0) / batch
        row["batch"] = batch
    best = min(row["median_s"], row.get("batched_per_image_s", float("inf")))
    row["meets_target"] = None if row["target_s"] is None else bool(best <= row["target_s"])
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=f"registry architectures (default: {', '.join(DEFAULT_MODELS)})")
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="also time one call on this many images")
    ap.add_argument("--images", nargs="*", default=[], help="real images or folders (default: phantoms)")
    ap.add_argument("--random-weights", action="store_true", help="skip loading pretrained base weights")
    ap.add_argument("--no-channels-last", action="store_true",
                    help="keep the default memory layout (the product uses channels_last on CPU)")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                    help="override the methods' default precision (IG: fp32; occlusion, LIME: auto)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    models = args.models or [m for m in DEFAULT_MODELS if m in list_models()]
    methods = parse_methods(args.methods)
    result = {"precision_override": args.precision, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
              "threads": args.threads,
              "channels_last": not args.no_channels_last, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_average_before": list(os.getloadavg()), "models": {}}
    for name in models:
        model, weights = build(name, not args.random_weights)
        if not args.no_channels_last:
            optimise_for_cpu(model)
        cfg = model.spec.preprocess
        x = inputs(cfg, max(args.runs, args.batch), args.images)
        print(f"\n{name} ({weights}), input {tuple(x.shape[1:])}, {args.threads} threads, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'method':22s} {'median s':>9s} {'max s':>8s} {'cpu s':>8s} {'batched':>8s} {'target':>7s}  ok")
        rows = []
        for m in methods:
            row = time_method(model, x, m, args.runs, args.batch, cfg, args.precision)
            rows.append(row)
            ok = {None: "-", True: "yes", False: "NO"}[row["meets_target"]]
            batched = f"{row['batched_per_image_s']:.3f}" if "batched_per_image_s" in row else "-"
            target = f"{row['target_s']:.2f}" if row["target_s"] is not None else "-"
            print(f"{m:22s} {row['median_s']:9.3f} {row['max_s']:8.3f} {row['cpu_median_s']:8.3f} {batched:>8s} "
                  f"{target:>7s}  {ok}")
        result["models"][name] = {"weights": weights, "input": list(x.shape[1:]), "methods": rows}
    result["load_average_after"] = list(os.getloadavg())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
