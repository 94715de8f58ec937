"""Which measurement an image gets: head images -> head biometry, thorax images -> cardiothoracic ratio.

The routing rule of :meth:`fetalscope.pipeline.session.Session.measure` (``what="auto"``) and the input rules
of a measurement (``check_pixel_size``: millimetres per pixel, 0.005-5), in one place for every face.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fetalscope.biometry.head import check_pixel_size
from fetalscope.errors import BadInputError

__all__ = ["CHOICES", "WHAT_BY_PLANE", "check_pixel_size", "measurement_choice", "measurement_for_plane",
           "measurement_line", "not_measured_record", "pixel_size_for", "read_pixel_sizes"]

WHAT_BY_PLANE = {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}
CHOICES = ("auto", "head", "cardiothoracic")
ALIASES = {"auto": "auto", "head": "head", "hc": "head", "cardiothoracic": "cardiothoracic", "ctr": "cardiothoracic",
           "heart": "cardiothoracic"}


def measurement_choice(what: str | None, source: str = "measurement") -> str:
    """``what`` as given (any case; ``hc``, ``ctr``, ``heart`` accepted) -> one of :data:`CHOICES`; ``source``
    names the input in the error (``--what``, ``what``)."""
    key = str(what if what is not None else "auto").strip().lower()
    if key not in ALIASES:
        raise BadInputError(f"{source} must be one of {', '.join(CHOICES)}, got '{what}'")
    return ALIASES[key]


def measurement_for_plane(plane: str | None) -> str | None:
    """The measurement an image of ``plane`` gets, or ``None`` when there is none for it."""
    return WHAT_BY_PLANE.get(plane or "")


def not_measured_reason(plane: str | None) -> str:
    return (f"no measurement for a '{plane}' image: head biometry needs a Fetal brain (trans-thalamic) plane, "
            "the cardiothoracic ratio a Fetal thorax plane; ask for one explicitly (what=head|cardiothoracic)")


def not_measured_record(image: str, plane: str | None, probability: float | None) -> dict[str, Any]:
    """The record of an image ``auto`` routing gives no measurement (``quality`` ``not_measured``)."""
    return {"image": image, "measurement": None, "quality": "not_measured", "plane": plane,
            "plane_probability": probability, "flags": [not_measured_reason(plane)]}


def measurement_line(record: dict[str, Any]) -> str:
    """One line for people about a measurement record: image, what, quality and the numbers (HC, BPD, OFD and
    GA, or the cardiothoracic ratios), then its flags."""
    what = record.get("measurement")
    parts = [str(record.get("image", "")), str(what or "no measurement"), f"quality {record.get('quality')}"]
    if what == "head":
        for key, label in (("hc_mm", "HC"), ("bpd_mm", "BPD"), ("ofd_mm", "OFD")):
            if record.get(key) is not None:
                parts.append(f"{label} {record[key]:.1f} mm")
        if record.get("ga"):
            parts.append(f"GA {record['ga']}")
    elif what == "cardiothoracic" and record.get("ctr"):
        parts += [f"CTR ({k}) {record['ctr'][k]:.3f}" for k in ("circumference", "area", "diameter")
                  if record["ctr"].get(k) is not None]
    line = "\t".join(parts)
    flags = record.get("flags") or []
    return line + ("\t[" + "; ".join(flags) + "]" if flags else "")


PATH_COLUMNS = ("path", "image", "filename", "file")


def read_pixel_sizes(csv_path: str | Path) -> dict[str, float]:
    """A CSV of per-image pixel sizes -> ``{path or file name: mm per pixel}``.

    Columns: one of ``path`` / ``image`` / ``filename`` / ``file`` and ``pixel_size_mm`` (HC18's
    ``pixel size(mm)`` is accepted too). Every value passes :func:`check_pixel_size`; a missing column, an empty
    file, a bad value or a name given twice with two sizes is a :class:`BadInputError` naming the row."""
    path = Path(csv_path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such pixel-size file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        name_col = next((h for h in header if h.lower() in PATH_COLUMNS), None)
        size_col = next((h for h in header if h.lower().replace(" ", "") in ("pixel_size_mm", "pixelsize(mm)")),
                        None)
        if name_col is None or size_col is None:
            raise BadInputError(f"{path}: needs a column for the image ({' / '.join(PATH_COLUMNS)}) and one named "
                                f"pixel_size_mm; found {', '.join(header) or 'no header'}")
        table: dict[str, float] = {}
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            name = row.get(name_col, "")
            if not name:
                raise BadInputError(f"{path}, line {i}: no image name in column '{name_col}'")
            value = check_pixel_size(row.get(size_col) or None, f"{path}, line {i}: {size_col}")
            if value is None:
                raise BadInputError(f"{path}, line {i}: no pixel size for {name}")
            if name in table and table[name] != value:
                raise BadInputError(f"{path}, line {i}: {name} is listed twice with different pixel sizes")
            table[name] = value
    if not table:
        raise BadInputError(f"{path}: no rows")
    return table


def pixel_size_for(image_path: str | Path, table: dict[str, float] | None, default: float | None) -> float | None:
    """The pixel size of ``image_path`` from ``table`` (matched by the path as given, then by file name),
    else ``default``."""
    if table:
        p = Path(image_path)
        for key in (str(image_path), str(p.resolve()), p.name):
            if key in table:
                return table[key]
    return default
