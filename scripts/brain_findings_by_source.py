#!/usr/bin/env python
"""How the normal/abnormal findings model labels normal fetal heads from different sources.

Runs the pipeline's findings model (default: the shipped ``brain-normal-abnormal-demo``) on a seeded random
sample of each image folder given and prints how many it calls each class. With the shipped model, a
difference between sources of the same (normal) anatomy measures its source shortcut.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/brain_findings_by_source.py \
        ../shared/data/hc18/training_set ../shared/data/fetal_planes_db_tv_alzubaidi/images --n 60
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

from fetalscope.imaging.loader import iter_image_paths, load_image
from fetalscope.pipeline.brain_findings import DEFAULT_BRAIN_FINDINGS_MODEL, BrainFindingsModel


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+", help="image folders, one per source")
    p.add_argument("--model", default=DEFAULT_BRAIN_FINDINGS_MODEL, help="findings bundle name or folder")
    p.add_argument("--n", type=int, default=60, help="images drawn per folder (seeded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    model = BrainFindingsModel(args.model)
    out = {}
    for folder in args.folders:
        files = sorted(iter_image_paths([folder]))
        random.Random(args.seed).shuffle(files)
        files = files[:args.n]
        counts = Counter(model.findings(load_image(f))["label"] for f in files)
        out[str(folder)] = {"images": len(files), **{c: counts.get(c, 0) for c in model.classes}}
        print(f"{folder}: {len(files)} images, " + ", ".join(f"{c} {counts.get(c, 0)}" for c in model.classes))
    if args.json:
        args.json.write_text(json.dumps({"model": model.model_info, "seed": args.seed, "sources": out}, indent=1)
                             + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
