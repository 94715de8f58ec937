#!/usr/bin/env python
"""How the shipped head and CTR measurements hold up on degraded images: each bundle's validation images
perturbed (speckle, gain, contrast, blur, JPEG, video codec, rotation, shift, zoom, crop, scanner UI; two
strengths), measured through the Measurer, scored against the reference with the calibrated interval's coverage.
The study is :mod:`fetalscope.train.recipes.measure_robustness`; nothing is chosen from it.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/measure_robustness.py [--limit N] [--md docs/measure_robustness.md]
        [--json out.json]
    # a training recipe's cross-validation fold (its held-out images), head only, two perturbations:
    OMP_NUM_THREADS=2 .venv/bin/python scripts/measure_robustness.py --what head --head runs/head-cv0 --split fold \
        --only crop zoom_in --strengths 0.5 1 --md /tmp/cv0.md --json /tmp/cv0.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetalscope.train.recipes.measure_robustness import STRENGTHS, render_md, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--head", default="hc18-head", help="head bundle (name or folder)")
    p.add_argument("--ctr", default="focus-ctr", help="cardiothoracic bundle (name or folder)")
    p.add_argument("--strengths", nargs="+", type=float, default=list(STRENGTHS))
    p.add_argument("--what", nargs="+", choices=["head", "cardiothoracic"], default=["head", "cardiothoracic"],
                   help="which measurements (default both)")
    p.add_argument("--split", default="validation",
                   help="the split of each bundle's splits.json to measure (default validation; 'fold' for a "
                        "cross-validation fold's held-out images)")
    p.add_argument("--only", nargs="+", default=None, help="only these perturbations (default: every one)")
    p.add_argument("--limit", type=int, default=None, help="first N images of each (a quick run)")
    p.add_argument("--md", type=Path, default=Path("docs/measure_robustness.md"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    bundles = {"head": args.head, "cardiothoracic": args.ctr}
    results = run({what: bundles[what] for what in args.what}, args.strengths, args.limit, split=args.split,
                  only=args.only)
    text = render_md(results)
    print(text)
    args.md.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
