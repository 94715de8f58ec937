"""False-alarm rate of the not-ultrasound check on the real sets of the shared folder, plain and shown
through tinted scanner colour maps (bluish-grey, sepia, blue).

    python scripts/ood_false_alarms.py [--shared ../shared] [--per-set 200] [--json out.json]

Prints one line per set: images checked, how many were flagged plain and per colour map.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_setup import add_shared_option, apply_shared_option  # noqa: E402

# (folder under shared/data, glob) of each real set
REAL_SETS = {
    "hc18": ("hc18", "**/*_HC.png"),
    "focus": ("focus_fetal_thorax", "**/images/*.png"),
    "fetal_planes_db_tv": ("fetal_planes_db_tv_alzubaidi/images", "*.png"),
    "roboflow_brain": ("brain_normal_abnormal_roboflow", "*/images/*.jpg"),
    "yolo_brain": ("yolo_brain_structures", "*/images/*.jpg"),
}
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_option(parser)
    parser.add_argument("--per-set", type=int, default=200, help="images per set, spread evenly (default 200)")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts here")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    from fetalscope import config
    from fetalscope.data.phantoms import SCANNER_TINTS, tint_display
    from fetalscope.imaging import load_image
    from fetalscope.imaging.quality import ood_check

    root = config.shared_data_dir()
    out = {}
    for name, (folder, pattern) in REAL_SETS.items():
        paths = sorted((root / folder).glob(pattern))
        paths = paths[:: max(1, len(paths) // args.per_set)]
        counts = {"images": len(paths), "plain": 0, **{t: 0 for t in SCANNER_TINTS}}
        for path in paths:
            image = load_image(path)
            counts["plain"] += ood_check(image).flag
            for t, (low, high) in SCANNER_TINTS.items():
                counts[t] += ood_check(tint_display(image.gray, low, high)).flag
        out[name] = counts
        print(f"{name}: {counts['images']} images; flagged plain {counts['plain']}; "
              + ", ".join(f"{t} {counts[t]}" for t in SCANNER_TINTS))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
