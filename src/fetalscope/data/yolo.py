"""YOLO-format datasets (the Roboflow export layout): reading, validation and group-aware splits.

Layout (what Roboflow and Ultralytics write)::

    data.yaml               names (list or {id: name}), nc, train/val/valid/test paths
    train/images/*.jpg      images
    train/labels/*.txt      one line per object: ``cls cx cy w h`` normalised to [0, 1]
    valid/...  test/...

Split paths in ``data.yaml`` are relative to the yaml's folder (or to its ``path:`` key). Roboflow
writes ``../train/images`` although the folder sits beside the yaml; like Ultralytics we fall back to
the path without the leading ``../``. A missing label file means "no objects in this image";
malformed lines, class ids out of range and boxes outside the image raise :class:`DataError`
naming the file and line. Segment lines (``cls x1 y1 x2 y2 ...``) become their bounding box.

Roboflow augments by writing several copies of one source image, named
``<source>_<ext>.rf.<hash>.jpg``. Copies of one source (and, where a ``labels.csv`` beside the yaml
says so, all images of one subject/patient) form a *group*; :func:`group_split` keeps a group in
one split so that near-identical copies never sit on both sides of an evaluation.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.errors import DataError
from fetalscope.imaging.loader import SUPPORTED_SUFFIXES

BOX_TOLERANCE = 1e-3  # coordinates may exceed [0, 1] by rounding; beyond this it is an error
SPLIT_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "valid": ("val", "valid", "validation"),
    "test": ("test",),
}
_ROBOFLOW_STEM = re.compile(
    r"^(?P<source>.+)_(?P<ext>png|jpe?g|bmp|tiff?|dcm)\.rf\.[0-9A-Za-z]+$", re.IGNORECASE
)


@dataclass(frozen=True)
class YoloBox:
    """One object: class index and box centre/size normalised to the image (``cx cy w h`` in [0, 1])."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float

    def xyxy(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Box corners ``(x0, y0, x1, y1)`` in pixels of an image of ``width`` x ``height``."""
        return (
            (self.cx - self.w / 2) * width,
            (self.cy - self.h / 2) * height,
            (self.cx + self.w / 2) * width,
            (self.cy + self.h / 2) * height,
        )


@dataclass
class YoloItem:
    """One image of a split: its path, label file (``None`` when absent), boxes and group key."""

    image: Path
    label_file: Path | None
    boxes: list[YoloBox]
    split: str
    group: str
    source: str
    meta: dict[str, str] = field(default_factory=dict)

    def classes(self) -> list[int]:
        return [b.cls for b in self.boxes]


@dataclass
class YoloDataset:
    """A YOLO dataset: class names, the yaml it came from and its items per split."""

    yaml_path: Path
    names: tuple[str, ...]
    splits: dict[str, list[YoloItem]]

    @property
    def root(self) -> Path:
        return self.yaml_path.parent

    @property
    def nc(self) -> int:
        return len(self.names)

    def items(self, *splits: str) -> list[YoloItem]:
        """Items of the named splits (all splits when none are named)."""
        names = splits or tuple(self.splits)
        out: list[YoloItem] = []
        for name in names:
            if name not in self.splits:
                raise DataError(
                    f"{self.yaml_path}: no '{name}' split "
                    f"(this dataset has: {', '.join(self.splits) or 'none'})"
                )
            out.extend(self.splits[name])
        return out

    def class_counts(self, split: str) -> dict[str, int]:
        counts = Counter(b.cls for item in self.splits[split] for b in item.boxes)
        return {name: int(counts.get(i, 0)) for i, name in enumerate(self.names)}


def source_name(image: Path | str) -> str:
    """The source image a Roboflow copy was made from (``003_HC_png.rf.ab12.jpg`` -> ``003_HC``);
    the file stem for any other name."""
    stem = Path(image).stem
    match = _ROBOFLOW_STEM.match(stem)
    return match.group("source") if match else stem


def parse_label_line(line: str, nc: int, where: str) -> YoloBox | None:
    """Parse one label line (``where`` is ``file:line`` for messages). Blank lines give ``None``."""
    parts = line.split()
    if not parts:
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise DataError(f"{where}: not numbers: '{line.strip()}' (expected 'cls cx cy w h')") from exc
    if len(values) == 5:
        cls_f, cx, cy, w, h = values
    elif len(values) >= 7 and len(values) % 2 == 1:  # segment polygon -> its bounding box
        cls_f = values[0]
        xs, ys = np.asarray(values[1::2]), np.asarray(values[2::2])
        if (
            xs.min() < -BOX_TOLERANCE
            or ys.min() < -BOX_TOLERANCE
            or xs.max() > 1 + BOX_TOLERANCE
            or ys.max() > 1 + BOX_TOLERANCE
        ):
            raise DataError(f"{where}: polygon point outside the image (coordinates must lie in [0, 1])")
        x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    else:
        raise DataError(
            f"{where}: {len(values)} values in '{line.strip()}'; expected 5 ('cls cx cy w h') "
            "or a class id followed by polygon x y pairs"
        )
    if not all(math.isfinite(v) for v in values):
        raise DataError(f"{where}: non-finite value in '{line.strip()}'")
    if cls_f != int(cls_f):
        raise DataError(f"{where}: class id {cls_f} is not an integer")
    cls = int(cls_f)
    if not 0 <= cls < nc:
        raise DataError(f"{where}: class id {cls} out of range; data.yaml names {nc} classes (0..{nc - 1})")
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: box has zero or negative size (w={w}, h={h})")
    lo = (cx - w / 2, cy - h / 2)
    hi = (cx + w / 2, cy + h / 2)
    if min(lo) < -BOX_TOLERANCE or max(hi) > 1 + BOX_TOLERANCE:
        raise DataError(
            f"{where}: box ({cx:.4g}, {cy:.4g}, {w:.4g}, {h:.4g}) extends outside the image; YOLO boxes are "
            "'cx cy w h' normalised to [0, 1]: check that the file is not in pixels or in x0 y0 x1 y1 form"
        )
    # clip rounding overshoot
    x0, y0 = max(0.0, lo[0]), max(0.0, lo[1])
    x1, y1 = min(1.0, hi[0]), min(1.0, hi[1])
    return YoloBox(cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def read_label_file(path: Path | str, nc: int) -> list[YoloBox]:
    """Boxes of one label file; a missing file means no objects."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: label file is not UTF-8 text") from exc
    boxes: list[YoloBox] = []
    for number, line in enumerate(text.splitlines(), start=1):
        box = parse_label_line(line, nc, f"{p}:{number}")
        if box is not None:
            boxes.append(box)
    return boxes


def _names_from_yaml(data: dict, yaml_path: Path) -> tuple[str, ...]:
    names = data.get("names")
    if names is None:
        raise DataError(f"{yaml_path}: no 'names' (the class list) in data.yaml")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{yaml_path}: 'names' keys must be class ids 0..nc-1") from exc
        if keys != list(range(len(keys))):
            raise DataError(f"{yaml_path}: 'names' ids must run 0..{len(keys) - 1} without gaps, got {keys}")
        out = tuple(str(names[k] if k in names else names[str(k)]) for k in keys)
    elif isinstance(names, (list, tuple)):
        out = tuple(str(n) for n in names)
    else:
        raise DataError(f"{yaml_path}: 'names' must be a list or a mapping of id -> name")
    if not out:
        raise DataError(f"{yaml_path}: 'names' is empty")
    if len(set(out)) != len(out):
        raise DataError(f"{yaml_path}: duplicate class names in 'names': {list(out)}")
    nc = data.get("nc")
    if nc is not None and int(nc) != len(out):
        raise DataError(f"{yaml_path}: nc={nc} but 'names' lists {len(out)} classes; make them agree")
    return out


def _resolve_split_dir(value: str, base: Path, yaml_path: Path, key: str) -> Path:
    candidates = [base / value]
    if value.startswith("../"):
        candidates.append(base / value[3:])  # Roboflow's ../train/images next to the yaml
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    raise DataError(
        f"{yaml_path}: '{key}: {value}' does not point to a folder of images (tried "
        f"{', '.join(str(c) for c in candidates)})"
    )


def _labels_dir_for(images_dir: Path) -> Path:
    """Ultralytics' rule: the last ``images`` path component becomes ``labels``."""
    parts = list(images_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images_dir  # labels beside the images


def _read_groups_csv(root: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` beside the yaml (as in fetalscope's shared sets): image relpath -> row."""
    path = root / "labels.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "image" not in rows[0]:
        return {}
    return {Path(r["image"]).name: r for r in rows}


def _group_key(image: Path, row: dict[str, str] | None) -> tuple[str, str]:
    source = source_name(image)
    if row:
        source = Path(row.get("source_image") or source).stem or source
        subject = (row.get("patient_or_subject") or "").strip()
        dataset = (row.get("source_dataset") or "").strip()
        if subject:
            return f"{dataset}:{subject}" if dataset else subject, source
    return source, source


def read_yolo_dataset(path: Path | str, *, check_images: bool = True) -> YoloDataset:
    """Read and validate a YOLO dataset from its ``data.yaml`` (or the folder holding it).

    Raises :class:`DataError` for a missing yaml, bad class names, split folders that do not
    exist or hold no images, and any malformed label line (naming the file and line).
    """
    p = Path(path)
    yaml_path = p / "data.yaml" if p.is_dir() else p
    if not yaml_path.is_file():
        alt = list(p.glob("*.yaml")) if p.is_dir() else []
        if len(alt) == 1:
            yaml_path = alt[0]
        else:
            raise DataError(f"{p}: no data.yaml found; point at a YOLO/Roboflow export folder or its yaml")
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{yaml_path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{yaml_path}: expected a mapping with names/nc/train/val keys")
    names = _names_from_yaml(data, yaml_path)
    base = yaml_path.parent
    if data.get("path"):
        root_value = Path(str(data["path"]))
        base = root_value if root_value.is_absolute() else (yaml_path.parent / root_value)
    groups_csv = _read_groups_csv(yaml_path.parent)
    splits: dict[str, list[YoloItem]] = {}
    for split, keys in SPLIT_KEYS.items():
        key = next((k for k in keys if data.get(k)), None)
        if key is None:
            continue
        value = data[key]
        if isinstance(value, list):
            if len(value) != 1:
                raise DataError(f"{yaml_path}: '{key}' lists several folders; fetalscope reads one per split")
            value = value[0]
        images_dir = _resolve_split_dir(str(value), base, yaml_path, key)
        labels_dir = _labels_dir_for(images_dir)
        images = sorted(
            f for f in images_dir.iterdir() if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES
        )
        if check_images and not images:
            raise DataError(f"{images_dir}: the '{key}' folder holds no images")
        items = []
        for image in images:
            label_file = labels_dir / f"{image.stem}.txt"
            boxes = read_label_file(label_file, len(names))
            row = groups_csv.get(image.name)
            group, source = _group_key(image, row)
            items.append(
                YoloItem(
                    image=image,
                    label_file=label_file if label_file.exists() else None,
                    boxes=boxes,
                    split=split,
                    group=group,
                    source=source,
                    meta=dict(row) if row else {},
                )
            )
        splits[split] = items
    if not splits:
        raise DataError(f"{yaml_path}: no train/val/test entries; add e.g. 'train: train/images'")
    return YoloDataset(yaml_path=yaml_path.resolve(), names=names, splits=splits)


def group_split(
    items: Sequence[YoloItem], fraction: float = 0.2, seed: int = 0
) -> tuple[list[YoloItem], list[YoloItem]]:
    """Split ``items`` into (rest, held out) with about ``fraction`` of the *groups* held out.

    Every group (copies of one source, or one subject) lands wholly on one side.
    """
    if not 0 < fraction < 1:
        raise DataError(f"hold-out fraction must be between 0 and 1, got {fraction}")
    groups = sorted({it.group for it in items})
    if len(groups) < 2:
        raise DataError(
            f"cannot split {len(items)} images from {len(groups)} group(s); need at least 2 groups"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    n_held = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    held = {groups[i] for i in order[:n_held]}
    rest = [it for it in items if it.group not in held]
    out = [it for it in items if it.group in held]
    return rest, out


def group_kfold(
    items: Sequence[YoloItem], folds: int = 5, seed: int = 0
) -> list[tuple[list[YoloItem], list[YoloItem]]]:
    """``folds`` (train, test) pairs over groups: each group is tested exactly once."""
    groups = sorted({it.group for it in items})
    if folds < 2 or folds > len(groups):
        raise DataError(f"need 2 <= folds <= number of groups ({len(groups)}), got {folds}")
    rng = np.random.default_rng(seed)
    shuffled = [groups[i] for i in rng.permutation(len(groups))]
    fold_of = {g: i % folds for i, g in enumerate(shuffled)}
    return [
        ([it for it in items if fold_of[it.group] != k], [it for it in items if fold_of[it.group] == k])
        for k in range(folds)
    ]


def assert_groups_disjoint(*splits: Iterable[YoloItem]) -> None:
    """Raise :class:`DataError` when one group (source image / subject) appears in two splits."""
    seen: dict[str, int] = {}
    for index, split in enumerate(splits):
        for item in split:
            other = seen.setdefault(item.group, index)
            if other != index:
                raise DataError(
                    f"group '{item.group}' ({item.image.name}) is in split {other} and split {index}; "
                    "augmented copies and images of one subject must stay in one split"
                )


def yolo_classification_set(dataset: YoloDataset, splits: Sequence[str] | None = None) -> LabelledSet:
    """Image-level classes from a YOLO *detection* export whose boxes all carry the image's class
    (e.g. one whole-head box labelled ``normal`` or ``abnormal`` per image).

    ``Sample.patient`` is the item's group (subject from ``labels.csv``, else the Roboflow source),
    so patient-grouped splits keep augmented copies together. ``Sample.meta`` holds ``split``,
    ``source`` and ``box_norm`` (the union of the image's boxes, normalised ``x0 y0 x1 y1``).
    Raises :class:`DataError` for an image without boxes or with boxes of two classes.
    """
    samples: list[Sample] = []
    for item in dataset.items(*(splits or ())):
        classes = {b.cls for b in item.boxes}
        if len(classes) != 1:
            names = sorted(dataset.names[c] for c in classes)
            what = f"boxes of several classes {names}" if classes else "no boxes"
            raise DataError(
                f"{item.image}: {what}; an image-level class needs every box of the image to carry one class"
            )
        x0 = min(b.cx - b.w / 2 for b in item.boxes)
        y0 = min(b.cy - b.h / 2 for b in item.boxes)
        x1 = max(b.cx + b.w / 2 for b in item.boxes)
        y1 = max(b.cy + b.h / 2 for b in item.boxes)
        samples.append(
            Sample(
                path=item.image,
                label=classes.pop(),
                patient=item.group,
                meta={"split": item.split, "source": item.source, "box_norm": [x0, y0, x1, y1],
                      "source_dataset": item.meta.get("source_dataset", "")},
            )
        )
    return LabelledSet(samples=samples, classes=dataset.names, source=f"yolo:{dataset.yaml_path}")
