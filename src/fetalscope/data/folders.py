"""Folder-per-class datasets: ``root/<class>/*.png`` or ``root/{train,val,test}/<class>/*.png``.

The class is the folder name; the patient is ``Patient(\\d+)`` from the file name when present
(FETAL_PLANES_DB naming, ``Patient00012_...`` -> ``"12"``), else the file stem. Class folder names
match an expected class list case-insensitively, with ``_``/``-`` read as spaces
(``fetal_brain`` -> ``Fetal brain``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.errors import DataError
from fetalscope.imaging.loader import is_image_path

SPLIT_NAMES = ("train", "val", "test")
PATIENT_PATTERN = re.compile(r"Patient(\d+)", re.IGNORECASE)


def patient_from_name(path: str | Path) -> str:
    """Patient id from a file name: the number after ``Patient`` (leading zeros dropped), else the stem."""
    stem = Path(path).stem
    m = PATIENT_PATTERN.search(stem)
    return str(int(m.group(1))) if m else stem


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", name).split()).casefold()


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _match_classes(
    root: Path, dirs: list[Path], classes: Sequence[str] | None
) -> tuple[tuple[str, ...], dict[Path, int]]:
    if classes is None:
        names = tuple(sorted(d.name for d in dirs))
        return names, {d: names.index(d.name) for d in dirs}
    wanted = tuple(classes)
    lookup = {_norm(c): i for i, c in enumerate(wanted)}
    if len(lookup) != len(wanted):
        raise DataError(f"class list {list(wanted)} has names that differ only by case or '_'/'-'")
    unknown = [d.name for d in dirs if _norm(d.name) not in lookup]
    if unknown:
        raise DataError(
            f"{root}: class folder(s) {unknown} are not in the expected classes {list(wanted)}. "
            "Rename or remove them, or pass the full class list."
        )
    return wanted, {d: lookup[_norm(d.name)] for d in dirs}


def load_class_folders(
    root: str | Path,
    *,
    classes: Sequence[str] | None = None,
    recursive: bool = True,
) -> LabelledSet:
    """One ``root/<class>/`` tree as a :class:`LabelledSet`.

    ``classes`` fixes the class list and its order (label = index); a class may have no folder, but
    every folder must name a class. Without it the folder names, sorted, are the classes.
    ``Sample.meta`` holds ``class_folder``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected one sub-folder of images per class")
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(f"{root}: no class folders found; expected <root>/<class name>/<images>")
    names, label_of = _match_classes(root, dirs, classes)
    samples: list[Sample] = []
    empty: list[str] = []
    for d in dirs:
        files = sorted(
            f for f in (d.rglob("*") if recursive else d.iterdir()) if f.is_file() and is_image_path(f)
        )
        if not files:
            empty.append(d.name)
            continue
        samples.extend(
            Sample(path=f, label=label_of[d], patient=patient_from_name(f), meta={"class_folder": d.name})
            for f in files
        )
    if empty:
        raise DataError(f"{root}: class folder(s) {empty} contain no images (png, jpg, tif, bmp, dcm)")
    return LabelledSet(samples=samples, classes=names, source=f"folders:{root}")


def has_split_folders(root: str | Path) -> bool:
    """Whether ``root`` holds at least one of ``train/``, ``val/``, ``test/``."""
    return any((Path(root) / name).is_dir() for name in SPLIT_NAMES)


def load_split_folders(
    root: str | Path,
    *,
    classes: Sequence[str] | None = None,
) -> dict[str, LabelledSet]:
    """``root/{train,val,test}/<class>/`` as one :class:`LabelledSet` per split folder present.

    All parts share one class list: ``classes`` or the sorted union of class folder names.
    ``Sample.meta`` holds ``class_folder`` and ``split``.
    """
    root = Path(root)
    present = [name for name in SPLIT_NAMES if (root / name).is_dir()]
    if not present:
        raise DataError(f"{root}: none of the split folders {list(SPLIT_NAMES)} exist")
    if classes is None:
        union = {d.name for name in present for d in _class_dirs(root / name)}
        classes = sorted(union)
    out: dict[str, LabelledSet] = {}
    for name in present:
        part = load_class_folders(root / name, classes=classes)
        for s in part.samples:
            s.meta["split"] = name
        out[name] = part
    return out
