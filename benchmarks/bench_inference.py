"""PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 inference speed for a bundle or an architecture.

In one run, on the same inputs: batch-1 latency (p50 / p95 over ``--runs`` calls) and batch-N
throughput (images/s) for every runtime, each runtime's speed-up over eager, and how far its
probabilities are from eager's (max |dp|, top-1 agreement; int8 also against fp32 ONNX). Inputs are
real images (``--images``, preprocessed with the model's config) or, by default, a fixed seeded batch
of synthetic ultrasound-like images.

int8 (``--int8``): ``auto`` runs the bundle's ``model.int8.onnx`` when it has one; ``fresh`` quantises
one now (fetalscope.models.quantize, calibrated on the benchmark inputs themselves, so its agreement is
in-sample; ``--int8-format`` picks QDQ or QOperator); ``off`` skips int8.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_inference.py efficientnet_lite0 --threads 2
    .venv/bin/python benchmarks/bench_inference.py sononet-planes --images IMAGES... --threads 2
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
from fetalscope.models.quantize import QuantizeSettings, compare_probabilities, quantize_onnx
from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor, Predictor, TorchPredictor

EAGER, ORT, ORT_INT8 = "torch_eager", "onnxruntime", "onnxruntime_int8"


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
    """``(model, preprocess, onnx path or None, int8 onnx path or None, label)`` for a bundle path/name
    or an architecture."""
    if target in list_models():
        model = create_model(target, num_classes, pretrained=pretrained, **arch_kwargs).eval()
        return model, model.spec.preprocess, None, None, f"architecture {target}"
    bundle = load_bundle(target)
    return (bundle.model, bundle.preprocess, bundle.onnx_path, bundle.int8_onnx_path,
            f"bundle {bundle.name} ({bundle.path})")


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Max / mean |dp| and top-1 agreement of ``other`` against ``reference`` (N x K probabilities)."""
    c = compare_probabilities(reference, other)
    return {k: c[k] for k in ("max_abs_prob_diff", "mean_abs_prob_diff", "top1_agreement")}


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
    parser.add_argument("--int8", choices=["auto", "off", "fresh"], default="auto",
                        help="int8 ONNX: the bundle's model.int8.onnx (auto), none, or quantise now")
    parser.add_argument("--int8-format", choices=["qdq", "qoperator"], default="qdq",
                        help="quantisation format for --int8 fresh")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results as a Markdown table here")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also put that table into this file between '<!-- bench:NAME -->' and "
                             "'<!-- /bench:NAME -->' (NAME: the --markdown file's stem)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    try:
        model, cfg, onnx_path, int8_path, label = build(args.target, args.num_classes, args.pretrained,
                                                        json.loads(args.arch_kwargs))
    except FetalscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.input_size:
        cfg = cfg.replace(input_size=(args.input_size, args.input_size))
        int8_path = None if args.int8 != "fresh" else int8_path
    inputs = load_inputs(args.images, args.batch, cfg).numpy()
    one = inputs[:1]
    int8_source = "bundle model.int8.onnx" if int8_path is not None and args.int8 == "auto" else None

    with tempfile.TemporaryDirectory() as tmp:
        if onnx_path is None or args.fresh_onnx or args.input_size:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", input_size=tuple(cfg.input_size),
                                    channels=cfg.channels, opset=args.opset)
        if args.int8 == "fresh":
            int8_path = quantize_onnx(onnx_path, Path(tmp) / "model.int8.onnx", inputs,
                                      QuantizeSettings(fmt=args.int8_format))
            int8_source = f"quantised now ({args.int8_format}, calibrated on these {len(inputs)} inputs)"
        predictors: dict[str, Predictor] = {
            EAGER: TorchPredictor(model),
            ORT: OnnxPredictor(onnx_path, intra_op_threads=args.threads, sequential=not args.parallel,
                               spinning=args.spin),
        }
        if int8_source is not None:
            predictors[ORT_INT8] = OnnxInt8Predictor(int8_path, intra_op_threads=args.threads,
                                                     sequential=not args.parallel, spinning=args.spin)
        load_before = os.getloadavg()[0]
        probs = {name: p.predict_proba(inputs) for name, p in predictors.items()}
        results = measure(predictors, one, inputs, args.runs, args.batch_runs, args.warmup)

    thr_key = f"batch{args.batch}_images_per_s"
    eager_b1, eager_bn = results[EAGER]["batch1_p50_ms"], results[EAGER][thr_key]
    speedup_b1 = {k: eager_b1 / r["batch1_p50_ms"] for k, r in results.items() if k != EAGER}
    speedup_bn = {k: r[thr_key] / eager_bn for k, r in results.items() if k != EAGER}
    parity = {k: {"vs_eager": agreement(probs[EAGER], probs[k])} for k in predictors if k != EAGER}
    if ORT_INT8 in parity:
        parity[ORT_INT8]["vs_onnxruntime"] = agreement(probs[ORT], probs[ORT_INT8])
    diff = parity[ORT]["vs_eager"]["max_abs_prob_diff"]
    report = {
        "target": label, "input_size": list(cfg.input_size), "channels": cfg.channels,
        "threads": args.threads, "opset": args.opset,
        "ort_execution": "parallel" if args.parallel else "sequential", "ort_spinning": args.spin,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "inputs": "images" if args.images else "synthetic", "runs": args.runs, "batch": args.batch,
        "int8": int8_source,
        "results": results, "speedup_batch1_p50": speedup_b1[ORT], f"speedup_batch{args.batch}": speedup_bn[ORT],
        "speedup_batch1_p50_vs_eager": speedup_b1, f"speedup_batch{args.batch}_vs_eager": speedup_bn,
        "max_abs_prob_diff": diff, "parity": parity,
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
    }
    print(f"{label}, input {cfg.channels}x{cfg.input_size[0]}x{cfg.input_size[1]}, {args.threads} threads, "
          f"{len(inputs)} {'real images' if args.images else 'synthetic inputs'}, "
          f"1-min load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if int8_source:
        print(f"int8: {int8_source}")
    print(f"{'runtime':<18}{'b1 p50 ms':>10}{'b1 p95 ms':>10}{f'b{args.batch} img/s':>11}"
          f"{'x eager b1':>11}{f'x eager b{args.batch}':>12}{'max|dp|':>10}{'top1 agree':>11}")
    for name, r in results.items():
        ratios = (f"{speedup_b1[name]:>11.2f}{speedup_bn[name]:>12.2f}" if name != EAGER
                  else f"{1.0:>11.2f}{1.0:>12.2f}")
        agree = (f"{parity[name]['vs_eager']['max_abs_prob_diff']:>10.2e}"
                 f"{parity[name]['vs_eager']['top1_agreement']:>11.3f}" if name != EAGER else f"{'-':>10}{'-':>11}")
        print(f"{name:<18}{r['batch1_p50_ms']:>10.2f}{r['batch1_p95_ms']:>10.2f}{r[thr_key]:>11.1f}{ratios}{agree}")
    print(f"ONNX fp32/eager speed-up: batch 1 (p50) {speedup_b1[ORT]:.2f}x, batch {args.batch} "
          f"{speedup_bn[ORT]:.2f}x; max |prob diff| {diff:.2e}")
    if ORT_INT8 in results:
        vs = parity[ORT_INT8]["vs_onnxruntime"]
        print(f"ONNX int8/eager speed-up: batch 1 (p50) {speedup_b1[ORT_INT8]:.2f}x, batch {args.batch} "
              f"{speedup_bn[ORT_INT8]:.2f}x; int8 vs fp32 ONNX: top-1 agreement {vs['top1_agreement']:.3f}, "
              f"max |dp| {vs['max_abs_prob_diff']:.3f}, mean |dp| {vs['mean_abs_prob_diff']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        table = markdown_table(report)
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf-8")
        if args.readme:
            replace_block(args.readme, f"bench:{args.markdown.stem}", table)
    return 0


NAMES = {EAGER: "PyTorch eager", ORT: "ONNX Runtime fp32", ORT_INT8: "ONNX Runtime int8"}


def markdown_table(report: dict) -> str:
    """The results of one run as a Markdown table with a line saying what was measured where."""
    load = report.get("load_average_1min", ["?", "?"])
    m = report.get("machine", {})
    target = str(report["target"]).split(" (")[0]  # without the local path
    lines = [f"{target}, input {'x'.join(map(str, report['input_size']))}, {report['threads']} thread(s), "
             f"{report['runs']} batch-1 calls and batch {report['batch']} on {report['inputs']}; "
             f"1-min load average {load[0]} -> {load[1]}; torch {m.get('torch')}, onnxruntime "
             f"{m.get('onnxruntime')}. Written by `benchmarks/bench_inference.py`.", "",
             f"| runtime | batch-1 p50 ms | batch-1 p95 ms | batch-{report['batch']} images/s | batch-1 speed-up "
             f"over eager | largest prob. difference from eager | top-1 agreement with eager |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    throughput_key = f"batch{report['batch']}_images_per_s"
    for key, r in report["results"].items():
        speed = report.get("speedup_batch1_p50_vs_eager", {}).get(key, 1.0)
        parity = report.get("parity", {}).get(key, {}).get("vs_eager", {})
        diff = f"{parity['max_abs_prob_diff']:.2g}" if parity else "-"
        agree = f"{parity['top1_agreement']:.3f}" if parity else "-"
        lines.append(f"| {NAMES.get(key, key)} | {r['batch1_p50_ms']:.1f} | {r['batch1_p95_ms']:.1f} | "
                     f"{r[throughput_key]:.1f} | "
                     f"{speed:.2f}x | {diff} | {agree} |")
    return "\n".join(lines) + "\n"


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace what stands between ``<!-- NAME -->`` and ``<!-- /NAME -->`` in ``path`` by ``text``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    doc = path.read_text(encoding="utf-8")
    if start not in doc or end not in doc:
        raise SystemExit(f"{path} has no '{start}' ... '{end}' block to fill")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
