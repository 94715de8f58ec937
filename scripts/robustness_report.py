#!/usr/bin/env python3
"""Write the robustness report of a plane bundle into its folder: ``robustness.json``, ``robustness.md`` and a
"Robustness" section at the end of its ``report.md`` (replacing the one written before).

    .venv/bin/python scripts/robustness_report.py --shared ../shared

The shipped bundle beside the plain SonoNet-16 mapping (whole image resized) on the sononet-planes test split
of the shared folder's real images: accuracy with group-bootstrap 95% intervals per source and, on a seeded
subsample stratified by source (``--limit``), under every perturbation of ``fetalscope.imaging.perturb`` at
three strengths. The recipe is :func:`fetalscope.train.recipes.sononet.robustness.run_robustness`
(``fetalscope robustness`` writes the same files into any folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from script_setup import add_shared_option, apply_shared_option  # noqa: E402

from fetalscope import config  # noqa: E402
from fetalscope.evaluate.robustness import DEFAULT_LIMIT  # noqa: E402
from fetalscope.evaluate.robustness_report import headline  # noqa: E402
from fetalscope.train.recipes.sononet.robustness import run_robustness, write_into_bundle  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_option(parser)
    parser.add_argument("--bundle", type=Path, default=config.bundled_models_dir() / "sononet-planes",
                        help="the plane bundle folder (its robustness files and report.md are written)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="images in the perturbation subsample")
    parser.add_argument("--runtime", default="auto", help="auto | torch | onnx | onnx-int8 for the bundle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    apply_shared_option(args)
    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 30 or done == total:
            last[0] = time.monotonic()
            print(f"{done}/{total} images ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    report = run_robustness(args.bundle, limit=args.limit, runtime=args.runtime, seed=args.seed,
                            on_progress=progress)
    write_into_bundle(report, args.bundle)
    print(f"wrote robustness.json, robustness.md and the report.md section in {args.bundle}: {headline(report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
