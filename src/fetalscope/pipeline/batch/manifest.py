"""What a batch run reads: image and clip files, folders (recursive: images, videos and DICOM) and CSV/Parquet
manifests, as a list of :class:`Item` s (a path and an optional pixel size), each file once, in input order."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fetalscope.errors import BadInputError
from fetalscope.imaging import SUPPORTED_SUFFIXES, iter_image_paths
from fetalscope.imaging.video import VIDEO_SUFFIXES
from fetalscope.pipeline.batch.walk import walk_inputs

MANIFEST_SUFFIXES = (".csv", ".parquet")
INPUT_SUFFIXES = SUPPORTED_SUFFIXES + VIDEO_SUFFIXES  # what a folder is searched for
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Item:
    """One file to analyse: its path (absolute) and the pixel size in mm a manifest gave for it (``None``: none)."""

    path: str
    pixel_size_mm: float | None = None


def read_items(inputs: Iterable[str | Path]) -> list[Item]:
    """Every file named by ``inputs``: image files as they are, folders searched recursively for images, and
    ``.csv`` / ``.parquet`` manifests with a ``path`` column (relative paths are relative to the manifest) and
    an optional ``pixel_size_mm`` column. A path named twice is kept once (its first pixel size wins)."""
    items: dict[str, Item] = {}
    for given in inputs:
        p = Path(given)
        found = _manifest_items(p) if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file() else [
            Item(f) for f in _files(p)]
        for item in found:
            items.setdefault(item.path, item)
    if not items:
        raise BadInputError("no input files: name image files, folders or a CSV/Parquet manifest")
    return list(items.values())


def _files(p: Path) -> list[str]:
    """A file as it is; a folder's images and clips, recursively (:func:`~.walk.walk_inputs`: bad links are
    inputs of their own, loops are not followed); an error when it holds none."""
    if not p.is_dir():
        return [str(f.resolve()) for f in iter_image_paths([p])]
    found = list(walk_inputs(p, INPUT_SUFFIXES))
    if not found:
        raise BadInputError(f"{p}: folder contains no images or clips (looked for {', '.join(INPUT_SUFFIXES)})")
    return found


def _manifest_items(path: Path) -> list[Item]:
    import pandas as pd

    try:
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # a broken manifest is the user's input: say which and why
        raise BadInputError(f"{path}: cannot read this manifest ({type(exc).__name__}: {exc})") from exc
    if "path" not in table.columns:
        raise BadInputError(f"{path}: a manifest needs a 'path' column (found: {', '.join(map(str, table.columns))})")
    sizes = table["pixel_size_mm"] if "pixel_size_mm" in table.columns else [None] * len(table)
    out = []
    for row, (name, size) in enumerate(zip(table["path"], sizes, strict=True), start=2):
        if not isinstance(name, str) or not name.strip():
            raise BadInputError(f"{path}: row {row} has no path")
        f = Path(name.strip())
        f = f if f.is_absolute() else path.parent / f
        out.append(Item(str(f.resolve()), _pixel_size(size, path, row)))
    return out


def _pixel_size(value: object, path: Path, row: int) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInputError(f"{path}: row {row}: pixel_size_mm '{value}' is not a number") from None


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
