"""Metrics broken down by metadata (who scanned, on which machine), with counts.

``meta`` may be a mapping ``column -> values`` (one value per image, e.g. a pandas DataFrame) or a
sequence of per-image dicts (``Sample.meta``). A column is found under its own name, any case, or an
alias (``operator``, ``machine`` as the FETAL_PLANES_DB adapter names them). Absent columns are
listed under ``missing_columns``; groups with fewer than ``min_count`` images are kept, with their
counts, and flagged ``too_few``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fetalscope.errors import BadInputError
from fetalscope.evaluate.metrics import MIN_SUPPORT, confusion_scores
from fetalscope.evaluate.validate import check_groups, check_labels, check_same_length

#: Metadata columns of FETAL_PLANES_DB worth a breakdown.
DEFAULT_COLUMNS: tuple[str, ...] = ("Operator", "US_Machine")
#: Other keys that hold the same column (``Sample.meta`` of the FETAL_PLANES_DB adapter uses these).
ALIASES: dict[str, tuple[str, ...]] = {"Operator": ("operator",), "US_Machine": ("machine", "us_machine")}
MISSING = "(missing)"


def _find_key(col: str, keys: Sequence[object]) -> object | None:
    """The key holding column ``col``: itself, else a case-insensitive match of it or an alias."""
    if col in keys:
        return col
    wanted = [c.casefold() for c in (col, *ALIASES.get(col, ()))]
    for name in wanted:
        for key in keys:
            if isinstance(key, str) and key.casefold() == name:
                return key
    return None


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def meta_columns(meta: object, n: int, columns: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Values of ``columns`` per image as strings (``(missing)`` for blanks) and the absent columns."""
    found: dict[str, list[object]] = {}
    if isinstance(meta, Mapping) or hasattr(meta, "columns"):
        keys = list(meta.columns) if hasattr(meta, "columns") else list(meta.keys())  # type: ignore[union-attr]
        for col in columns:
            key = _find_key(col, keys)
            if key is not None:
                values = list(meta[key])  # type: ignore[index]
                check_same_length(n, values, name=f"meta[{key!r}]")
                found[col] = values
    elif isinstance(meta, Sequence) and not isinstance(meta, str | bytes):
        check_same_length(n, meta, name="meta")
        for i, row in enumerate(meta):
            if not isinstance(row, Mapping):
                raise BadInputError(f"meta[{i}] is a {type(row).__name__}; pass one dict of metadata "
                                    "per image or a mapping column -> values")
        keys = list(dict.fromkeys(k for row in meta for k in row))
        for col in columns:
            key = _find_key(col, keys)
            if key is not None:
                found[col] = [row.get(key) for row in meta]
    else:
        raise BadInputError(f"meta must be a mapping column -> values or a list of per-image dicts, got "
                            f"{type(meta).__name__}")
    cleaned = {c: [MISSING if _is_missing(v) else str(v).strip() for v in vals] for c, vals in found.items()}
    return cleaned, [c for c in columns if c not in found]


def breakdown_by(y_true: object, y_pred: object, n_classes: int, meta: object, *,
                 columns: Sequence[str] = DEFAULT_COLUMNS, covered: Sequence[bool] | None = None,
                 groups: object | None = None, min_count: int = MIN_SUPPORT) -> dict[str, Any]:
    """Per value of each metadata column: image count, correct count, accuracy, macro and weighted F1.

    With ``groups`` (patient ids) each row also counts its distinct patients (``n_patients``).

    Scores use the same definitions as the overall metrics (:func:`confusion_scores`), so a group
    row and the overall row are comparable. Returns ``{"columns": {col: [row, ...]},
    "missing_columns": [...], "min_count": int}``; rows are sorted by value.
    """
    y = check_labels(y_true, n_classes)
    p = check_labels(y_pred, n_classes, name="y_pred")
    check_same_length(len(y), p, name="y_pred")
    values, missing = meta_columns(meta, len(y), columns)
    g = None if groups is None else check_groups(groups, len(y))
    cov = None if covered is None else np.asarray(covered, dtype=bool)
    out: dict[str, list[dict[str, Any]]] = {}
    for col, vals in values.items():
        arr = np.asarray(vals, dtype=object)
        rows = []
        for value in sorted(set(vals)):
            mask = arr == value
            cm = np.zeros((n_classes, n_classes))
            np.add.at(cm, (y[mask], p[mask]), 1.0)
            scores = confusion_scores(cm, cov)
            n = int(mask.sum())
            rows.append({
                "value": value, "n": n, "correct": int(np.trace(cm)),
                "n_patients": None if g is None else len(set(g[mask].tolist())), "too_few": n < min_count,
                **{k: (float(v) if np.isfinite(v) else None) for k, v in scores.items()},
                "class_counts": np.bincount(y[mask], minlength=n_classes).astype(int).tolist(),
            })
        out[col] = rows
    return {"columns": out, "missing_columns": missing, "min_count": int(min_count)}

