"""PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 inference speed for a bundle or an architecture.

In one run, on the same inputs: batch-1 latency (p50 / p95 over ``--runs`` calls) and batch-N
throughput (images/s) for every runtime, each runtime's speed-up over eager, and how far its
probabilities are from eager's (max |dp|, top-1 agreement; int8 also against fp32 ONNX). Inputs are
real images (``--images``, preprocessed with the model's config) or, by default, a fixed seeded batch
of synthetic ultrasound-like images.

int8 (``--int8``): ``auto`` runs the bundle's ``model.int8.onnx`` when it has one; ``fresh`` quantises
one now (fetalscope.models.quantize, calibrated on the benchmark inputs themselves, so its agreement is
in-sample; ``--int8-format`` picks QDQ or QOperator); ``off`` skips int8.

The measurement is :mod:`fetalscope.models.latency` (the bundle recipes time their bundles with it too);
this file parses options, prints the table and writes the JSON / Markdown.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_inference.py efficientnet_lite0 --threads 2
    .venv/bin/python benchmarks/bench_inference.py sononet-planes --images IMAGES... --threads 2
    .venv/bin/python benchmarks/bench_inference.py path/to/bundle --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from fetalscope.errors import FetalscopeError
from fetalscope.evaluate.markdown import markdown_table as markdown_rows
from fetalscope.models import create_model, list_models
from fetalscope.models.bundle import load_bundle
from fetalscope.models.latency import (
    EAGER,
    ORT,
    ORT_INT8,
    RUNTIME_LABELS,
    benchmark_inputs,
    compare_runtimes,
    runtime_predictors,
)
from fetalscope.models.onnx_export import export_onnx
from fetalscope.models.quantize import QuantizeSettings, quantize_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: benchmarks.*
from benchmarks.readme_block import replace_block  # noqa: E402


def build(target: str, num_classes: int, pretrained: bool, arch_kwargs: dict):
    """``(model, preprocess, onnx path or None, int8 onnx path or None, label)`` for a bundle path/name
    or an architecture."""
    if target in list_models():
        model = create_model(target, num_classes, pretrained=pretrained, **arch_kwargs).eval()
        return model, model.spec.preprocess, None, None, f"architecture {target}"
    bundle = load_bundle(target)
    return (bundle.model, bundle.preprocess, bundle.onnx_path, bundle.int8_onnx_path,
            f"bundle {bundle.name} ({bundle.path})")


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
        if args.input_size:
            cfg = cfg.replace(input_size=(args.input_size, args.input_size))
            int8_path = None if args.int8 != "fresh" else int8_path
        inputs = benchmark_inputs(args.images, args.batch, cfg).numpy()
    except FetalscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    int8_source = "bundle model.int8.onnx" if int8_path is not None and args.int8 == "auto" else None

    with tempfile.TemporaryDirectory() as tmp:
        if onnx_path is None or args.fresh_onnx or args.input_size:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", input_size=tuple(cfg.input_size),
                                    channels=cfg.channels, opset=args.opset)
        if args.int8 == "fresh":
            int8_path = quantize_onnx(onnx_path, Path(tmp) / "model.int8.onnx", inputs,
                                      QuantizeSettings(fmt=args.int8_format))
            int8_source = f"quantised now ({args.int8_format}, calibrated on these {len(inputs)} inputs)"
        predictors = runtime_predictors(model, onnx_path, int8_path if int8_source is not None else None,
                                        threads=args.threads, parallel=args.parallel, spin=args.spin)
        measured = compare_runtimes(predictors, inputs, runs=args.runs, batch_runs=args.batch_runs,
                                    warmup=args.warmup)

    results, parity = measured["results"], measured["parity"]
    thr_key = f"batch{args.batch}_images_per_s"
    speedup_b1, speedup_bn = measured["speedup_batch1_p50_vs_eager"], measured[f"speedup_batch{args.batch}_vs_eager"]
    diff = measured["max_abs_prob_diff"]
    load_before, load_after = measured["load_average_1min"]
    report = {
        "target": label, "input_size": list(cfg.input_size), "channels": cfg.channels,
        "threads": args.threads, "opset": args.opset,
        "ort_execution": "parallel" if args.parallel else "sequential", "ort_spinning": args.spin,
        "load_average_1min": measured["load_average_1min"],
        "inputs": "images" if args.images else "synthetic", "runs": args.runs, "batch": args.batch,
        "int8": int8_source,
        **{k: measured[k] for k in ("results", "speedup_batch1_p50", f"speedup_batch{args.batch}",
                                    "speedup_batch1_p50_vs_eager", f"speedup_batch{args.batch}_vs_eager",
                                    "max_abs_prob_diff", "parity", "machine")},
    }
    print(f"{label}, input {cfg.channels}x{cfg.input_size[0]}x{cfg.input_size[1]}, {args.threads} threads, "
          f"{len(inputs)} {'real images' if args.images else 'synthetic inputs'}, "
          f"1-min load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs")
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


def markdown_table(report: dict) -> str:
    """The results of one run as a Markdown table with a line saying what was measured where."""
    load = report.get("load_average_1min", ["?", "?"])
    m = report.get("machine", {})
    target = str(report["target"]).split(" (")[0]  # without the local path
    lines = [f"{target}, input {'x'.join(map(str, report['input_size']))}, {report['threads']} thread(s), "
             f"{report['runs']} batch-1 calls and batch {report['batch']} on {report['inputs']}; "
             f"1-min load average {load[0]} -> {load[1]}; torch {m.get('torch')}, onnxruntime "
             f"{m.get('onnxruntime')}. Written by `benchmarks/bench_inference.py`.", ""]
    header = ["runtime", "batch-1 p50 ms", "batch-1 p95 ms", f"batch-{report['batch']} images/s",
              "batch-1 speed-up over eager", "largest prob. difference from eager", "top-1 agreement with eager"]
    throughput_key = f"batch{report['batch']}_images_per_s"
    rows = []
    for key, r in report["results"].items():
        speed = report.get("speedup_batch1_p50_vs_eager", {}).get(key, 1.0)
        parity = report.get("parity", {}).get(key, {}).get("vs_eager", {})
        diff = f"{parity['max_abs_prob_diff']:.2g}" if parity else "-"
        agree = f"{parity['top1_agreement']:.3f}" if parity else "-"
        rows.append([RUNTIME_LABELS.get(key, key), f"{r['batch1_p50_ms']:.1f}", f"{r['batch1_p95_ms']:.1f}",
                     f"{r[throughput_key]:.1f}", f"{speed:.2f}x", diff, agree])
    return "\n".join([*lines, *markdown_rows(header, rows)])


if __name__ == "__main__":
    raise SystemExit(main())
