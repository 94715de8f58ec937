"""HC18 head circumference challenge (van den Heuvel et al., PLoS ONE 13(8):e0200412, 2018; CC BY 4.0).

Reads ``<shared data>/hc18/labels.csv``: per image its pixel size (mm), reference head
circumference (mm), filled head mask and subject id (``NNN_HC`` and ``NNN_2HC`` are one subject).
Byte-identical images (same MD5, e.g. ``392_HC``/``392_2HC``) are kept once.

Note on the masks: the filled masks include the drawn annotation line, so their outline lies about
1.36 px outside the reference ellipse whose circumference is the CSV value. The biometry layer
derives the reference ellipse from mask + CSV (:func:`fetalscope.biometry.head.hc18_reference_ellipse`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from fetalscope.config import shared_data_dir
from fetalscope.data.segsets import SegSample
from fetalscope.errors import DataError

FOLDER = "hc18"
LICENCE = "CC BY 4.0; van den Heuvel et al., PLoS ONE 13(8):e0200412 (2018)"


def hc18_root(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else shared_data_dir() / FOLDER


def load_hc18(root: str | Path | None = None, *, drop_identical: bool = True) -> list[SegSample]:
    """All HC18 training images as :class:`SegSample` (structure ``head``), grouped by subject.

    ``meta`` holds ``pixel_size_mm``, ``hc_mm`` (reference), ``subject`` and ``repeat_index``.
    Raises :class:`DataError` when the folder or its ``labels.csv`` is missing or malformed.
    """
    base = hc18_root(root)
    table = base / "labels.csv"
    if not table.is_file():
        raise DataError(f"{table}: HC18 labels.csv not found; point FETALSCOPE_SHARED (or root=) at the "
                        "folder holding data/hc18/ (see shared/data/README.md)")
    samples: list[SegSample] = []
    seen_md5: set[str] = set()
    with open(table, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                image = base / row["filename"]
                mask = base / row["mask_filled"]
                pixel = float(row["pixel_size_mm"])
                hc = float(row["head_circumference_mm"])
                subject = row["subject_id"]
            except (KeyError, ValueError) as exc:
                raise DataError(f"{table}: malformed row {row!r} ({exc})") from exc
            md5 = row.get("md5", "")
            if drop_identical and md5:
                if md5 in seen_md5:
                    continue
                seen_md5.add(md5)
            samples.append(SegSample(
                path=image, group=f"hc18-{subject}", masks={"head": mask},
                meta={"pixel_size_mm": pixel, "hc_mm": hc, "subject": subject,
                      "repeat_index": int(row.get("repeat_index") or 1), "dataset": "hc18"},
            ))
    if not samples:
        raise DataError(f"{table}: no images listed")
    return samples
