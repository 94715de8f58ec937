"""The real labelled ultrasound images in shared/data that can calibrate and evaluate SonoNet.

Read by path (nothing is copied). One :class:`RealImage` per distinct image:

- ``HC18``: 873 trans-thalamic head images, one Dutch centre (van den Heuvel et al. 2018).
- ``FPDB-TV``: 57 FETAL_PLANES_DB Trans-ventricular brain images (Alzubaidi et al. 2023), Barcelona.
- ``FPDB-brain-rf``: FETAL_PLANES_DB brain images redistributed as 256x256 JPG by Roboflow
  (normal class of brain_normal_abnormal_roboflow); the brain sub-plane comes from the official
  FETAL_PLANES_DB CSV. One copy per source image (train copies are rotation/blur augmented; the
  valid/test copy is preferred); images also in FPDB-TV are left out here.
- ``FOCUS``: 247 FETAL_PLANES_DB four-chamber Fetal thorax images; ``duplicate_group`` is the group.
- ``web-abnormal-rf``: abnormal fetal brains of unknown (web) origin, 256x256 JPG; plane Fetal brain,
  no sub-plane, grouped by case name.

``group`` is what must stay in one split: the FETAL_PLANES_DB patient (shared by FPDB-TV and
FPDB-brain-rf), the HC18 subject, the FOCUS duplicate group or the web case.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from fetalscope.errors import DataError


@dataclass(frozen=True)
class RealImage:
    """One real image: path, source set, plane label, brain sub-plane (or ``None``), split group."""

    path: Path
    source: str
    plane: str
    brain_plane: str | None
    group: str
    meta: tuple[tuple[str, str], ...] = ()

    def meta_dict(self) -> dict[str, str]:
        return dict(self.meta)


def _read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path} not found; point --shared at the shared folder holding data/")
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items()}
            for row in csv.DictReader(fh, delimiter=delimiter)
        ]


def hc18_images(data: Path) -> list[RealImage]:
    root = data / "hc18"
    out = []
    for row in _read_csv(root / "labels.csv"):
        out.append(
            RealImage(
                root / row["filename"],
                "HC18",
                "Fetal brain",
                "Trans-thalamic",
                f"hc18:{row['subject_id']}",
                (("head_circumference_mm", row["head_circumference_mm"]),),
            )
        )
    return out


def fpdb_tv_images(data: Path) -> list[RealImage]:
    root = data / "fetal_planes_db_tv_alzubaidi"
    return [
        RealImage(
            root / row["filename"],
            "FPDB-TV",
            row["plane"],
            row["brain_plane"],
            f"fpdb:{int(row['patient_num'])}",
            (("machine", row["us_machine"]),),
        )
        for row in _read_csv(root / "labels.csv")
    ]


def fpdb_brain_roboflow_images(data: Path, exclude_names: set[str]) -> list[RealImage]:
    """FETAL_PLANES_DB normals of the Roboflow brain set, one copy each, sub-plane from the official CSV."""
    root = data / "brain_normal_abnormal_roboflow"
    official = {
        r["Image_name"]: r for r in _read_csv(data / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv", ";")
    }
    split_rank = {"test": 0, "valid": 1, "train": 2}
    chosen: dict[str, dict[str, str]] = {}
    for row in sorted(
        _read_csv(root / "labels.csv"), key=lambda r: (split_rank.get(r["split"], 3), r["image"])
    ):
        if row["source_dataset"] != "FETAL_PLANES_DB":
            continue
        stem = Path(row["source_image"]).stem
        if stem in exclude_names or stem in chosen:
            continue
        chosen[stem] = row
    out = []
    for stem, row in sorted(chosen.items()):
        meta = official.get(stem)
        if meta is None:
            continue
        brain_plane = (
            meta["Brain_plane"]
            if meta["Brain_plane"] in ("Trans-thalamic", "Trans-cerebellum", "Trans-ventricular")
            else None
        )
        out.append(
            RealImage(
                root / row["image"],
                "FPDB-brain-rf",
                meta["Plane"],
                brain_plane,
                f"fpdb:{int(meta['Patient_num'])}",
                (("machine", meta["US_Machine"]), ("roboflow_split", row["split"])),
            )
        )
    return out


def focus_images(data: Path) -> list[RealImage]:
    root = data / "focus_fetal_thorax"
    return [
        RealImage(root / row["image"], "FOCUS", "Fetal thorax", None, f"focus:{row['duplicate_group']}")
        for row in _read_csv(root / "labels.csv")
    ]


def web_abnormal_images(data: Path) -> list[RealImage]:
    root = data / "brain_normal_abnormal_roboflow"
    split_rank = {"test": 0, "valid": 1, "train": 2}
    chosen: dict[str, dict[str, str]] = {}
    for row in sorted(
        _read_csv(root / "labels.csv"), key=lambda r: (split_rank.get(r["split"], 3), r["image"])
    ):
        if row["source_dataset"] == "FETAL_PLANES_DB":
            continue
        stem = Path(row["source_image"]).stem
        chosen.setdefault(stem, row)
    out = []
    for stem, row in sorted(chosen.items()):
        case = re.match(r"^\D*\d+", stem)
        out.append(
            RealImage(
                root / row["image"],
                "web-abnormal-rf",
                "Fetal brain",
                None,
                f"web:{case.group(0) if case else stem}",
                (("roboflow_split", row["split"]),),
            )
        )
    return out


def all_real_images(data: Path) -> list[RealImage]:
    """Every real labelled image usable for SonoNet calibration/evaluation (see module docstring)."""
    tv = fpdb_tv_images(data)
    tv_names = {im.path.stem for im in tv}
    images = hc18_images(data) + tv + fpdb_brain_roboflow_images(data, tv_names) + focus_images(data)
    images += web_abnormal_images(data)
    missing = [im.path for im in images if not im.path.is_file()]
    if missing:
        raise DataError(f"{len(missing)} listed images are missing, e.g. {missing[0]}")
    return images
