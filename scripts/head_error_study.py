#!/usr/bin/env python
"""Where the head-circumference error of an HC18 bundle comes from, on its early-stopping split only
(the validation split stays untouched by these choices).

For each bundle: HC mean absolute difference and bias (all heads and HC >= 200 mm) with the shipped
post-processing, with test-time averaging over sub-pixel shifts and over scales, and with each OpenCV
ellipse fitter at outline levels 0.4 / 0.5 / 0.6. With two bundles, also the correlation of their
per-image HC errors (high: the errors belong to the images, not to one model). The study is
:mod:`fetalscope.train.recipes.head_error`.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/head_error_study.py src/fetalscope/models/bundled/hc18-head \
        [OTHER_BUNDLE] [--split early_stop] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetalscope.train.recipes.head_error import error_correlation, head_error_study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", type=Path, nargs="+", help="one or two head bundles (folders with splits.json)")
    p.add_argument("--split", default="early_stop", help="split of splits.json to study (default early_stop)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = [head_error_study(b, args.split) for b in args.bundles[:2]]
    for r in results:
        print(f"{r['bundle']} on {r['split']} ({r['n_images']} images)")
        print(f"  {'variant':<26}{'MAD mm':>8}{'bias mm':>9}{'MAD >=200':>11}")
        for v, s in r["summary"].items():
            big = "-" if s["mad_ge_200_mm"] is None else f"{s['mad_ge_200_mm']:.2f}"
            print(f"  {v:<26}{s['mad_mm']:>8.3f}{s['bias_mm']:>+9.3f}{big:>11}")
    out = {"results": results}
    if len(results) == 2:
        corr, n = error_correlation(*results)
        out["error_correlation"] = corr
        print(f"correlation of per-image HC errors between the two bundles: {corr:.3f} ({n} images)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
