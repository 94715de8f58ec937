#!/usr/bin/env python3
"""Build the bundled SonoNet models reproducibly from shared/ (SonoNet16.npz + real labelled images).

    .venv/bin/python scripts/build_sononet_bundle.py --shared ../shared

Writes two bundles into ``src/fetalscope/models/bundled/`` (or ``--out``):

- ``sononet-planes-v1``: SonoNet-16 with its 14 outputs mapped onto the FETAL_PLANES_DB planes
  (Maternal cervix not covered), one temperature on SonoNet's logits fitted on the calibration half
  of the real images, evaluated on the other half (patient / subject / duplicate-group disjoint).
  The default ``sononet-planes`` is the distilled v2: ``scripts/train_sononet_planes.py``.
- ``sononet-brain-planes``: an experimental brain sub-plane linear probe on frozen SonoNet features,
  with its source-shortcut check (see the card; it is marked source-confounded when it is).

Every number in the cards and reports is computed by the recipe,
:func:`fetalscope.train.recipes.sononet.build.build_sononet_bundles` (steps in its docstring), ending with
the int8 ONNX twin of sononet-planes-v1 and its fidelity (as scripts/quantize_bundle.py; ``--no-int8`` skips).
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
from fetalscope.train.recipes.sononet.build import build_sononet_bundles  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_option(parser, "data/ and weights/")
    parser.add_argument("--out", type=Path, default=config.bundled_models_dir(), help="where the bundles go")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default <cache>/sononet_build)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--bench-runs", type=int, default=30, help="timed batch-1 calls per runtime")
    parser.add_argument("--no-int8", action="store_true",
                        help="skip the int8 step (scripts/quantize_bundle.py: model.int8.onnx + card 'int8')")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    torch.set_num_threads(args.threads)
    summary = build_sononet_bundles(args.out, cache=args.cache, bench_runs=args.bench_runs, int8=not args.no_int8,
                                    threads=args.threads)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
