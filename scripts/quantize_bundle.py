#!/usr/bin/env python3
"""Write the int8 ONNX twin of the bundled ``sononet-planes`` and measure it on real held-out images.

    .venv/bin/python scripts/quantize_bundle.py --shared ../shared

Calibrates on real images of the bundle's calibration split (up to ``--per-source`` per source, fixed
seed; their list goes to ``int8_calibration.json``), writes ``model.int8.onnx`` from the fp32
``model.onnx``, measures top-1 agreement and probability differences int8 vs fp32 and the accuracy of
both on every test-split image, and (``--bench-runs``) the latency. Everything goes into the card's
``int8`` field. The recipe is :func:`fetalscope.train.recipes.sononet.int8.quantize_sononet_planes`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from script_setup import add_shared_option, apply_shared_option  # noqa: E402

from fetalscope import config  # noqa: E402
from fetalscope.train.recipes.sononet.int8 import quantize_sononet_planes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_option(parser)
    parser.add_argument("--bundle", type=Path, default=config.bundled_models_dir() / "sononet-planes",
                        help="the sononet-planes bundle folder")
    parser.add_argument("--per-source", type=int, default=40, help="calibration images per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench-runs", type=int, default=30, help="timed batch-1 calls (0: no latency)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    torch.set_num_threads(args.threads)
    int8 = quantize_sononet_planes(args.bundle, args.per_source, args.seed, args.bench_runs, args.threads)
    summary = {k: int8[k] for k in ("file", "size_bytes")}
    summary["fidelity"] = {k: v for k, v in int8["fidelity_test_split"].items()
                           if k not in ("per_source", "disagreements", "reference", "images")}
    if "latency" in int8:
        summary["latency"] = {k: int8["latency"][k] for k in ("batch1_p50_ms", "speedup_batch1_p50_vs_eager")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
