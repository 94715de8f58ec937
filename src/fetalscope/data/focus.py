"""FOCUS four-chamber-view thorax images with expert heart and thorax ellipses, and users' own sets.

FOCUS (images from FETAL_PLANES_DB, Burgos-Artizzu et al. 2020, CC BY 4.0; annotations as
redistributed in the MIT-licensed repository lukaznj/fetal-ctr-detection): ``labels.csv`` gives
per image the heart and thorax ellipses (``{s}_cx, {s}_cy, {s}_a, {s}_b, {s}_angle_deg``: pixels,
``a`` along the angle, angle from +x towards +y, y down), the CTR three ways and a
``duplicate_group`` joining near-identical frames (a group never straddles splits).

A user's own set is either an images folder with heart and thorax mask folders
(:func:`load_mask_folders`) or a CSV of ellipses in the same columns (:func:`load_ellipse_csv`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from fetalscope.config import shared_data_dir
from fetalscope.data.segsets import SegSample
from fetalscope.errors import DataError
from fetalscope.imaging.loader import iter_image_paths

FOLDER = "focus_fetal_thorax"
STRUCTURES = ("heart", "thorax")
ELLIPSE_FIELDS = ("cx", "cy", "a", "b", "angle_deg")
LICENCE = ("images: FETAL_PLANES_DB, CC BY 4.0 (Burgos-Artizzu et al., Sci Rep 10:10200, 2020); "
           "annotations: FOCUS as redistributed in lukaznj/fetal-ctr-detection (MIT)")


def focus_root(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else shared_data_dir() / FOLDER


def _ellipse(row: dict[str, str], structure: str, where: str) -> dict[str, float]:
    try:
        return {f: float(row[f"{structure}_{f}"]) for f in ELLIPSE_FIELDS}
    except (KeyError, ValueError) as exc:
        raise DataError(f"{where}: row for {row.get('image')!r} lacks a numeric {structure} ellipse "
                        f"(columns {', '.join(f'{structure}_{f}' for f in ELLIPSE_FIELDS)}): {exc}") from exc


def load_ellipse_csv(csv_path: str | Path, images_root: str | Path | None = None) -> list[SegSample]:
    """Samples from a CSV with an ``image`` column (relative to ``images_root``, default the CSV's
    folder) and heart/thorax ellipse columns. An optional ``duplicate_group`` (or ``group``) column
    keeps near-identical frames together; without it each image is its own group."""
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"{path}: ellipse CSV not found")
    base = Path(images_root) if images_root is not None else path.parent
    samples = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "image" not in reader.fieldnames:
            raise DataError(f"{path}: needs an 'image' column and heart_/thorax_ ellipse columns "
                            f"({', '.join(ELLIPSE_FIELDS)})")
        for row in reader:
            image = base / row["image"]
            if not image.is_file():
                raise DataError(f"{path}: image {image} listed but not found")
            group = row.get("duplicate_group") or row.get("group") or image.stem
            meta: dict[str, object] = {"dataset": path.stem}
            for key in ("ctr_circumference", "ctr_area", "ctr_diameter"):
                if row.get(key):
                    meta[key] = float(row[key])
            if row.get("focus_split"):
                meta["focus_split"] = row["focus_split"]
            samples.append(SegSample(path=image, group=f"{path.stem}-{group}",
                                     ellipses={s: _ellipse(row, s, str(path)) for s in STRUCTURES}, meta=meta))
    if not samples:
        raise DataError(f"{path}: no rows")
    return samples


def load_focus(root: str | Path | None = None, *, with_masks: bool = True) -> list[SegSample]:
    """The FOCUS set from ``<shared data>/focus_fetal_thorax`` (ellipses, and mask files if present)."""
    base = focus_root(root)
    table = base / "labels.csv"
    if not table.is_file():
        raise DataError(f"{table}: FOCUS labels.csv not found; point FETALSCOPE_SHARED (or root=) at the "
                        "folder holding data/focus_fetal_thorax/ (see shared/data/README.md)")
    samples = load_ellipse_csv(table, base)
    out = []
    for s in samples:
        masks = {}
        if with_masks:
            for structure in STRUCTURES:
                m = base / "masks" / f"{s.path.stem}_{structure}.png"
                if m.is_file():
                    masks[structure] = m
        group = s.group.replace("labels-", "focus-", 1)
        out.append(SegSample(path=s.path, group=group, masks=masks, ellipses=s.ellipses,
                             meta={**s.meta, "dataset": "focus"}))
    return out


def _find_mask(folder: Path, stem: str, structure: str) -> Path | None:
    for name in (stem, f"{stem}_{structure}", f"{stem}_mask"):
        for suffix in (".png", ".bmp", ".tif", ".tiff", ".jpg"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_mask_folders(images: str | Path, heart_masks: str | Path, thorax_masks: str | Path) -> list[SegSample]:
    """Samples from an images folder plus one mask folder per structure. A mask is found by the
    image's stem (``<stem>.png``, ``<stem>_heart.png`` / ``<stem>_thorax.png`` or ``<stem>_mask.png``).
    Images without both masks raise :class:`DataError` naming them."""
    folders = {"heart": Path(heart_masks), "thorax": Path(thorax_masks)}
    for structure, folder in folders.items():
        if not folder.is_dir():
            raise DataError(f"{folder}: {structure} mask folder not found")
    samples, missing = [], []
    for image in iter_image_paths(Path(images), recursive=False):
        masks = {s: _find_mask(f, image.stem, s) for s, f in folders.items()}
        if any(m is None for m in masks.values()):
            missing.append(image.name)
            continue
        samples.append(SegSample(path=image, group=image.stem, masks={k: v for k, v in masks.items() if v},
                                 meta={"dataset": Path(images).name}))
    if missing:
        raise DataError(f"{images}: no heart and/or thorax mask for {len(missing)} image(s), e.g. "
                        f"{', '.join(missing[:5])}; name masks <stem>.png or <stem>_heart.png / <stem>_thorax.png")
    return samples
