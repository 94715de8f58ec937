"""Derive the acquisition checklist's thresholds on the calibration part (HC18 and FOCUS images of the
segmentation bundles' train splits) and write the card shipped in the package
(src/fetalscope/pipeline/quality_card/thresholds.json and .md), each threshold with its source.

    python scripts/quality_thresholds.py [--shared ../shared] [--heads 150] [--thoraxes 100] [--recompute]

The criterion values are kept in the cache folder (cache_dir()/quality/calibration_values.json), so changing a
rule re-derives the card in a second; --recompute measures them again.
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
    parser.add_argument("--heads", type=int, default=150, help="HC18 calibration images (default 150)")
    parser.add_argument("--thoraxes", type=int, default=100, help="FOCUS calibration images (default 100)")
    parser.add_argument("--recompute", action="store_true", help="measure the calibration images again")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    import json

    from fetalscope.config import cache_dir
    from fetalscope.pipeline.quality_study import calibration_values, derive_thresholds, write_card
    from fetalscope.pipeline.session import Session

    cached = cache_dir() / "quality" / f"calibration_values_{args.heads}_{args.thoraxes}.json"
    if cached.is_file() and not args.recompute:
        values = json.loads(cached.read_text())
    else:
        session = Session(brain_plane_model=None, brain_findings_model=None)
        values = calibration_values(session, args.heads, args.thoraxes, log=lambda m: print(m, file=sys.stderr))
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(values))
    card = derive_thresholds(values)
    write_card(card)
    print(f"wrote the threshold card (version {card['version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
