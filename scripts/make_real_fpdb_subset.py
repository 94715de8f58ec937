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
The work is :func:`fetalscope.data.real_sets.write_real_fpdb_subset`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fetalscope.data.real_sets import write_real_fpdb_subset
from fetalscope.errors import DataError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        counts = write_real_fpdb_subset(args.shared / "data", args.out)
    except DataError as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {sum(counts.values())} real FETAL_PLANES_DB images to {args.out}: {counts}")


if __name__ == "__main__":
    main()
