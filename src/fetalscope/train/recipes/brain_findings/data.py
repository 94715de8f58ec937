"""Binary image-level data for the normal/abnormal study: reading, the patient-grouped split, the
symlinked split-folder tree the trainer reads, and the facts about the data the report states.

Three layouts are read (see :func:`load_binary_set`):

- a YOLO detection export whose boxes carry the image's class (the Roboflow layout, ``data.yaml`` +
  ``images/`` + ``labels/``; one whole-head box per image, kept in ``Sample.meta["box_norm"]``),
- a YOLO *classification* layout / split folders (``train|val|test/<class>/*.jpg``),
- a folder per class (``root/<class>/*.png``), e.g. a user's own ventriculomegaly set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fetalscope.data.folders import has_split_folders, load_class_folders, load_split_folders
from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.data.splits import Split, assert_patient_disjoint, patient_split
from fetalscope.data.yolo import read_yolo_dataset, yolo_classification_set
from fetalscope.errors import BadInputError, DataError

VAL_FRACTION = 0.15
TEST_FRACTION = 0.2
SPLIT_DESCRIPTION = "patient-grouped stratified split (15% val, 20% test); val/test keep one image per source"


def load_binary_set(data: str | Path) -> LabelledSet:
    """Every image of ``data`` (YOLO export, split folders or class folders) as one LabelledSet."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"{data}: no such dataset; give a YOLO export (data.yaml), split folders "
                        "(train/val/test/<class>/) or one folder per class")
    if (data / "data.yaml").is_file() or data.suffix in (".yaml", ".yml"):
        return yolo_classification_set(read_yolo_dataset(data))
    if has_split_folders(data):
        parts = load_split_folders(data)
        first = next(iter(parts.values()))
        return LabelledSet([s for p in parts.values() for s in p.samples], first.classes, f"split-folders:{data}")
    return load_class_folders(data)


def check_binary(full: LabelledSet, where: str | Path) -> None:
    """Raise :class:`DataError` unless the set has exactly two classes, each with images."""
    if len(full.classes) != 2:
        raise DataError(f"{where}: the normal/abnormal pipeline needs exactly 2 classes, found {list(full.classes)}")
    present = {s.label for s in full.samples}
    if present != {0, 1}:
        missing = [c for i, c in enumerate(full.classes) if i not in present]
        raise DataError(f"{where}: class(es) {missing} have no images")


def positive_class(classes: tuple[str, ...] | list[str], positive: str | None) -> int:
    """Index of the class the AUCs treat as positive: ``positive`` by name (case-insensitive), or, when
    ``None``, the class that is not called ``normal``."""
    names = [c.casefold() for c in classes]
    if positive is None:
        if names.count("normal") != 1:
            raise BadInputError(f"cannot tell which of {list(classes)} is the abnormal class; pass --positive NAME")
        return 1 - names.index("normal")
    if positive.casefold() not in names:
        raise DataError(f"positive class '{positive}' not in {list(classes)}; pass --positive")
    return names.index(positive.casefold())


def source_key(sample: Sample) -> str:
    """Copies of one source image share this key (Roboflow source, else the file stem)."""
    return str(sample.meta.get("source") or sample.path.stem)


def one_per_source(samples: list[Sample]) -> list[Sample]:
    """The first sample (by path) of each source image: augmented copies dropped."""
    seen: set[str] = set()
    out = []
    for s in sorted(samples, key=lambda s: str(s.path)):
        if source_key(s) not in seen:
            seen.add(source_key(s))
            out.append(s)
    return out


def make_split(full: LabelledSet, seed: int) -> Split:
    """Patient-grouped, class-stratified train/val/test; val and test keep one image per source."""
    split = patient_split(full, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=seed)
    split = Split(split.train, one_per_source(split.val), one_per_source(split.test))
    assert_patient_disjoint(split.train, split.val, split.test, names=["train", "val", "test"])
    for name, part in split.parts().items():
        if not part:
            raise DataError(f"{full.source}: the {name} split is empty; the set is too small for a "
                            f"{int(100 * VAL_FRACTION)}% / {int(100 * TEST_FRACTION)}% split (add images)")
    return split


def official_split_leak(full: LabelledSet) -> str | None:
    """Why the dataset's own split was not used (its parts share patients), or ``None``."""
    official = {s.meta.get("split") for s in full.samples} - {None}
    if len(official) <= 1:
        return None
    try:
        assert_patient_disjoint(*[[s for s in full.samples if s.meta.get("split") == o] for o in sorted(official)],
                                names=sorted(official))
    except DataError as exc:
        return ("the dataset's own split shares patients between its parts, so it was replaced by a "
                f"patient-grouped split ({str(exc).split(':')[0]})")
    return None


def source_by_class(full: LabelledSet) -> dict[str, dict[str, int]]:
    """Images per class and per source data set (``meta["source_dataset"]``, else ``unknown``)."""
    out: dict[str, dict[str, int]] = {}
    for s in full.samples:
        src = str(s.meta.get("source_dataset") or "unknown")
        out.setdefault(full.classes[s.label], {}).setdefault(src, 0)
        out[full.classes[s.label]][src] += 1
    return out


def materialise(split: Split, classes: tuple[str, ...], root: Path) -> Path:
    """Symlink the split as ``root/{train,val,test}/<class>/`` (the trainer's split-folder layout).

    An existing ``root`` is replaced only when it holds nothing but symlinks (a tree this function
    made); anything else raises, so a user's images are never deleted.
    """
    if root.exists():
        real = [p for p in root.rglob("*") if not p.is_symlink() and not p.is_dir()]
        if real or not root.is_dir():
            raise BadInputError(f"{root} exists and holds real files; choose another --out folder "
                                "(the study writes its symlinked split there)")
        shutil.rmtree(root)
    for part, samples in split.parts().items():
        used: set[str] = set()
        for s in samples:
            folder = root / part / classes[s.label]
            folder.mkdir(parents=True, exist_ok=True)
            name = s.path.name
            k = 1
            while name in used:
                name = f"{s.path.stem}__{k}{s.path.suffix}"
                k += 1
            used.add(name)
            (folder / name).symlink_to(s.path.resolve())
    return root
