"""Evaluate the acquisition checklist on held-out real standard planes (the validation splits of the hc18-head
and focus-ctr bundles, every image by default): the score-vs-error table and the degradation table, written
beside the threshold card (src/fetalscope/pipeline/quality_card/study.json and .md) after every degraded image,
so a run stopped early (Ctrl-C) leaves the tables of the part it did.

    python scripts/quality_study.py [--shared ../shared] [--heads N] [--thoraxes N] [--degraded N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_setup import add_shared_option, apply_shared_option  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_option(parser)
    parser.add_argument("--heads", type=int, default=None, help="HC18 images (default: all of the split)")
    parser.add_argument("--thoraxes", type=int, default=None, help="FOCUS images (default: all of the split)")
    parser.add_argument("--degraded", type=int, default=None,
                        help="images to degrade, a seeded random sample of both sets (default: all)")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    from fetalscope.pipeline.quality import CARD_DIR
    from fetalscope.pipeline.quality_study import run_study, write_study
    from fetalscope.pipeline.session import Session

    session = Session(brain_plane_model=None, brain_findings_model=None)
    try:
        run_study(session, args.heads, args.thoraxes, log=lambda m: print(m, file=sys.stderr, flush=True),
                  max_degraded=args.degraded, on_progress=write_study)
    except KeyboardInterrupt:
        print("stopped: study.md holds the images done so far", file=sys.stderr)
    print((CARD_DIR / "study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
