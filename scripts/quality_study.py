"""Evaluate the acquisition checklist on held-out real standard planes (the validation splits of the hc18-head
and focus-ctr bundles): the degradation table and the score-vs-error table, written beside the threshold card
(src/fetalscope/pipeline/quality_card/study.json and .md).

    python scripts/quality_study.py [--shared ../shared] [--heads 40] [--thoraxes 25]
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
    parser.add_argument("--heads", type=int, default=40, help="held-out HC18 images (default 40)")
    parser.add_argument("--thoraxes", type=int, default=25, help="held-out FOCUS images (default 25)")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    from fetalscope.pipeline.quality_study import run_study, write_study
    from fetalscope.pipeline.session import Session

    session = Session(brain_plane_model=None, brain_findings_model=None)
    report = run_study(session, args.heads, args.thoraxes, log=lambda m: print(m, file=sys.stderr))
    write_study(report)
    print((Path(__file__).resolve().parents[1] / "src/fetalscope/pipeline/quality_card/study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
