"""The real labelled ultrasound images in the shared data folder, as one list (:func:`all_real_images`) and
as a FETAL_PLANES_DB-layout folder (:func:`write_real_fpdb_subset`). Read by path; nothing is copied.

:func:`all_real_images` gives one :class:`RealImage` per distinct image (the SonoNet bundle recipe calibrates
and evaluates on them):

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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fetalscope.data.fetal_planes_db import CSV_NAME, IMAGES_DIR, read_fetal_planes_csv
from fetalscope.data.labels import BRAIN_PLANE_CLASSES
from fetalscope.errors import DataError

_ROBOFLOW_SPLIT_RANK = {"test": 0, "valid": 1, "train": 2}


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


def _official_fpdb_rows(data: Path) -> dict[str, dict[str, str]]:
    """The official FETAL_PLANES_DB metadata rows by ``Image_name``."""
    path = data / "fetal_planes_db" / CSV_NAME
    if not path.is_file():
        raise DataError(f"{path} not found; point --shared at the shared folder holding data/")
    return {r["Image_name"]: r for r in read_fetal_planes_csv(path)}


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


def _roboflow_rows(root: Path) -> list[dict[str, str]]:
    """Rows of the Roboflow set's ``labels.csv``, test copies first, then valid, then train."""
    return sorted(
        _read_csv(root / "labels.csv"), key=lambda r: (_ROBOFLOW_SPLIT_RANK.get(r["split"], 3), r["image"])
    )


def fpdb_brain_roboflow_images(data: Path, exclude_names: set[str]) -> list[RealImage]:
    """FETAL_PLANES_DB normals of the Roboflow brain set, one copy each, sub-plane from the official CSV."""
    root = data / "brain_normal_abnormal_roboflow"
    official = _official_fpdb_rows(data)
    chosen: dict[str, dict[str, str]] = {}
    for row in _roboflow_rows(root):
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
        brain_plane = meta["Brain_plane"] if meta["Brain_plane"] in BRAIN_PLANE_CLASSES else None
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
    chosen: dict[str, dict[str, str]] = {}
    for row in _roboflow_rows(root):
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


def write_real_fpdb_subset(data: Path, out: Path) -> dict[str, int]:
    """A FETAL_PLANES_DB-layout folder of the FETAL_PLANES_DB images that exist offline under ``data``.

    The full image set is not available here, but ~150 of its brain images are, in two redistributions:
    the Trans-ventricular set of Alzubaidi et al. (PNG) and the normal class of a Roboflow normal/abnormal
    set (256 px JPG; the un-augmented valid/test copy preferred, else the first train copy). Writes
    ``out/FETAL_PLANES_DB_data.csv`` (the official rows for those images, byte for byte) and
    ``out/Images/<Image_name>.png`` as *symlinks* to the shared files (fetalscope's loader reads by
    content, not by suffix). Returns the number of images per ``Brain_plane``.
    """
    csv_path = data / "fetal_planes_db" / CSV_NAME
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: pass --shared pointing at the shared folder")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header = lines[0]
    by_name = {line.split(";")[0].strip(): line for line in lines[1:] if line.strip()}

    found: dict[str, Path] = {}
    for png in sorted((data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png")):
        found.setdefault(png.stem, png)
    rf = data / "brain_normal_abnormal_roboflow"
    for split in ("valid", "test", "train"):
        for jpg in sorted((rf / split / "images").glob("Patient*.jpg")):
            name = re.sub(r"_png\.rf\..*$", "", jpg.name)
            found.setdefault(name, jpg)
    names = sorted(n for n in found if n in by_name)
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = images / f"{name}.png"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[name].resolve())
    with (out / CSV_NAME).open("w", newline="", encoding="utf-8") as fh:
        fh.write(header + "\n")
        for name in names:
            fh.write(by_name[name] + "\n")
    keys = [h.strip() for h in header.split(";")]
    counts: Counter[str] = Counter()
    for name in names:
        row = dict(zip(keys, [v.strip() for v in by_name[name].split(";")], strict=False))
        counts[row["Brain_plane"]] += 1
    return dict(counts)
