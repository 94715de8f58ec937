#!/usr/bin/env python3
"""Assemble a real FETAL_PLANES_DB-layout folder from the FETAL_PLANES_DB images that exist offline.

The full FETAL_PLANES_DB image set is not available here, but ~150 of its brain images are, in
two redistributions under ``shared/data``: the Trans-ventricular set of Alzubaidi et al. (PNG) and
the normal class of a Roboflow normal/abnormal set (256 px JPG). This script writes
``OUT/FETAL_PLANES_DB_data.csv`` (the official rows for those images, untouched) and
``OUT/Images/<Image_name>.png`` as *symlinks* to the shared files (nothing is copied; fetalscope's
loader reads by content, not by suffix). The result trains and evaluates with the same adapter a
full download uses, e.g.::

    python scripts/make_real_fpdb_subset.py --shared ../shared --out /tmp/real_fpdb
    fetalscope train --data /tmp/real_fpdb --task brain-planes --config configs/real_brain_planes.yaml

Caveat: the Trans-ventricular images come mostly from the Alzubaidi PNGs and the other sub-planes
only from Roboflow JPGs, so image source and class are partly confounded (see the model card).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

CSV_NAME = "FETAL_PLANES_DB_data.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = args.shared / "data"
    csv_path = data / "fetal_planes_db" / CSV_NAME
    if not csv_path.is_file():
        raise SystemExit(f"{csv_path} not found: pass --shared pointing at the shared folder")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header = lines[0]
    by_name = {line.split(";")[0].strip(): line for line in lines[1:] if line.strip()}

    found: dict[str, Path] = {}
    for png in sorted((data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png")):
        found.setdefault(png.stem, png)
    rf = data / "brain_normal_abnormal_roboflow"
    # prefer the un-augmented valid/test copy of a Roboflow image, else its first train copy
    for split in ("valid", "test", "train"):
        for jpg in sorted((rf / split / "images").glob("Patient*.jpg")):
            name = re.sub(r"_png\.rf\..*$", "", jpg.name)
            found.setdefault(name, jpg)
    names = sorted(n for n in found if n in by_name)
    images = args.out / "Images"
    images.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = images / f"{name}.png"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[name].resolve())
    with (args.out / CSV_NAME).open("w", newline="", encoding="utf-8") as fh:
        fh.write(header + "\n")
        for name in names:
            fh.write(by_name[name] + "\n")
    counts: dict[str, int] = {}
    for name in names:
        keys = [h.strip() for h in header.split(";")]
        row = dict(zip(keys, [v.strip() for v in by_name[name].split(";")], strict=False))
        counts[row["Brain_plane"]] = counts.get(row["Brain_plane"], 0) + 1
    print(f"wrote {len(names)} real FETAL_PLANES_DB images to {args.out}: {counts}")


if __name__ == "__main__":
    csv.field_size_limit(1 << 20)
    main()
