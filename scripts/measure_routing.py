#!/usr/bin/env python
"""How ``fetalscope measure`` routes real images, through the real CLI: HC18 validation heads under
``--what auto`` (share measured, HC error by head size, misses), FOCUS validation thorax images (CTR, never a
head), other hospitals' brains, colour photographs (nothing), and forced measurements on the wrong plane
(rejected). The study is :mod:`fetalscope.train.recipes.measure_routing`.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/measure_routing.py [--max-images N] [--every-image]
        [--json out.json] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetalscope.train.recipes.measure_routing import measure_routing_study, routing_markdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-images", type=int, default=None, help="cap each real set (a quick run)")
    p.add_argument("--every-image", action="store_true",
                   help="add every HC18 and FOCUS image under auto (about 5 more minutes)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    args = p.parse_args(argv)
    result = measure_routing_study(args.max_images, every_image=args.every_image)
    text = routing_markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
