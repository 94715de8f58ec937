#!/usr/bin/env python3
"""Train the v2 ``sononet-planes`` (SonoNet-16 fine-tuned by label-corrected self-distillation under the
perturbations of ``fetalscope.imaging.perturb``) and write its bundle, int8 twin included.

    .venv/bin/python scripts/train_sononet_planes.py --shared ../shared --out /tmp/candidate

The recipe is :func:`fetalscope.train.recipes.sononet.distilled.build_distilled_bundle` (splits, training,
view choice, temperature and the test-split comparison with the plain SonoNet-16 mapping and v1 in its
docstring); the trained student is cached (``--cache``), so a rerun rebuilds the bundle without training.
Run ``scripts/robustness_report.py --bundle <out>/sononet-planes`` afterwards for its robustness section.
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
from fetalscope.train.recipes.sononet.distil import DistilSettings  # noqa: E402
from fetalscope.train.recipes.sononet.distilled import build_distilled_bundle  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_option(parser, "data/ and weights/")
    parser.add_argument("--out", type=Path, default=config.bundled_models_dir(), help="where the bundle goes")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default <cache>/sononet_build)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--epochs", type=int, default=DistilSettings.epochs)
    parser.add_argument("--lr", type=float, default=DistilSettings.lr)
    parser.add_argument("--train-from-stage", type=int, default=DistilSettings.train_from_stage)
    parser.add_argument("--bench-runs", type=int, default=30, help="timed batch-1 calls per runtime")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the images")
    parser.add_argument("--crop-only", action="store_true",
                        help="score the student with the sector crop only (half the evaluation time)")
    parser.add_argument("--name", default="sononet-planes", help="bundle folder and card name")
    parser.add_argument("--min-temperature", type=float, default=None,
                        help="lower bound on the fitted temperature (1: never sharpen)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 twin")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    torch.set_num_threads(args.threads)
    settings = DistilSettings(epochs=args.epochs, lr=args.lr, train_from_stage=args.train_from_stage,
                              steps_per_epoch=args.steps_per_epoch)
    summary = build_distilled_bundle(args.out, cache=args.cache, settings=settings, bench_runs=args.bench_runs,
                                     int8=not args.no_int8, threads=args.threads,
                                     both_views=not args.crop_only, name=args.name,
                                     min_temperature=args.min_temperature)
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
