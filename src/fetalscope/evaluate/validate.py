"""Input checks shared by every evaluation function.

Each check returns clean numpy arrays or raises :class:`~fetalscope.errors.BadInputError` whose
message names the argument, says what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fetalscope.errors import BadInputError

#: Reason recorded for a class named in a model card's ``classes_not_covered``.
CARD_NOT_COVERED = "listed in the model card's classes_not_covered"
#: Largest allowed |row sum - 1| for a probability row.
PROB_SUM_ATOL = 1e-3


def check_labels(y_true: object, n_classes: int | None = None, *, name: str = "y_true") -> np.ndarray:
    """Integer class indices as a 1-D int64 array; each in ``[0, n_classes)`` when given."""
    try:
        arr = np.asarray(y_true)
    except Exception as exc:  # ragged lists and the like
        raise BadInputError(f"{name} could not be read as an array of class indices: {exc}") from exc
    if arr.ndim != 1:
        raise BadInputError(
            f"{name} must be a 1-D sequence of integer class indices, got shape {arr.shape}; "
            "pass one label per image (not one-hot rows)"
        )
    if arr.size == 0:
        raise BadInputError(f"{name} is empty; evaluation needs at least one labelled image")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise BadInputError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}; map class names to "
            "indices in the order of `classes` first"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise BadInputError(f"{name} contains NaN or infinity (first at position {bad}); "
                                "drop unlabelled images before evaluating")
        if not np.all(arr == np.round(arr)):
            bad = int(np.flatnonzero(arr != np.round(arr))[0])
            raise BadInputError(f"{name} must hold whole-number class indices; position {bad} is "
                                f"{arr[bad]!r}")
    arr = arr.astype(np.int64)
    if n_classes is not None:
        out = (arr < 0) | (arr >= n_classes)
        if out.any():
            bad = int(np.flatnonzero(out)[0])
            raise BadInputError(
                f"{name}[{bad}] = {arr[bad]} is not a valid class index: with {n_classes} classes the "
                f"indices run from 0 to {n_classes - 1}"
            )
    return arr


def check_classes(classes: Sequence[str], n_columns: int | None = None) -> list[str]:
    """Class names as a list of unique strings, one per probability/logit column."""
    if isinstance(classes, str):
        raise BadInputError("classes must be a sequence of class names, not one string")
    names = [str(c) for c in classes]
    if not names:
        raise BadInputError("classes is empty; pass the model's class names in output order")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise BadInputError(f"classes has duplicate names {dupes}; each output column needs its own name")
    if n_columns is not None and len(names) != n_columns:
        raise BadInputError(
            f"classes has {len(names)} names but the scores have {n_columns} columns; pass one "
            "class name per model output, in output order"
        )
    return names


def check_matrix(values: object, *, name: str, allow_neg_inf: bool = False) -> np.ndarray:
    """A finite 2-D float64 array (N x C). ``allow_neg_inf`` lets logits hold -inf for impossible classes."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except Exception as exc:
        raise BadInputError(f"{name} could not be read as an N x C array of numbers: {exc}") from exc
    if arr.ndim != 2:
        raise BadInputError(f"{name} must be 2-D (one row per image, one column per class), got shape "
                            f"{arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadInputError(f"{name} is empty (shape {arr.shape}); evaluation needs at least one image "
                            "and one class")
    nan = np.isnan(arr)
    if nan.any():
        row = int(np.argwhere(nan)[0][0])
        raise BadInputError(f"{name} contains NaN (first in row {row}); the model produced invalid "
                            "outputs for that image: check its input and weights")
    bad_inf = np.isposinf(arr) if allow_neg_inf else np.isinf(arr)
    if bad_inf.any():
        row = int(np.argwhere(bad_inf)[0][0])
        raise BadInputError(f"{name} contains infinity (first in row {row}); values must be finite")
    return arr


def check_probs(probs: object, *, name: str = "probs") -> np.ndarray:
    """Probabilities as an N x C float64 array with entries in [0, 1] and rows summing to 1."""
    arr = check_matrix(probs, name=name)
    if (arr < -1e-9).any() or (arr > 1 + 1e-9).any():
        row = int(np.argwhere((arr < -1e-9) | (arr > 1 + 1e-9))[0][0])
        raise BadInputError(
            f"{name} must hold probabilities in [0, 1]; row {row} has {arr[row].round(4).tolist()}. "
            "If these are logits, pass them through softmax first (scipy.special.softmax(x, axis=1))"
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_SUM_ATOL
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise BadInputError(
            f"{name} rows must each sum to 1 (within {PROB_SUM_ATOL}); row {row} sums to {sums[row]:.4f} "
            f"({int(off.sum())} of {len(sums)} rows are off). Pass softmax probabilities over all classes; "
            "a model that lacks a class should give it probability 0"
        )
    arr = np.clip(arr, 0.0, 1.0)
    # rows are within PROB_SUM_ATOL of 1: remove the rounding (float32 softmax) so that downstream
    # metrics (log loss, Brier) see exact probability vectors
    return arr / arr.sum(axis=1, keepdims=True)


def check_same_length(n: int, other: object, *, name: str, against: str = "y_true") -> None:
    """Raise unless ``len(other) == n``."""
    m = len(other)  # type: ignore[arg-type]
    if m != n:
        raise BadInputError(
            f"{name} has {m} entries but {against} has {n}; pass exactly one {name} entry per image"
        )


def check_groups(groups: object, n: int) -> np.ndarray:
    """Group ids (e.g. patient ids) as a 1-D array of strings, one per image."""
    arr = np.asarray(groups, dtype=object)
    if arr.ndim != 1:
        raise BadInputError(f"groups must be 1-D (one group id per image), got shape {arr.shape}")
    check_same_length(n, arr, name="groups")
    missing = [i for i, g in enumerate(arr) if g is None or (isinstance(g, float) and np.isnan(g))]
    if missing:
        raise BadInputError(
            f"groups has no id for {len(missing)} images (first at position {missing[0]}); give each "
            "image its patient id, or pass groups=None to resample single images"
        )
    return np.array([str(g) for g in arr], dtype=object)


def check_not_covered(classes_not_covered: Sequence[str] | Mapping[str, str],
                      classes: Sequence[str]) -> dict[str, str]:
    """``{class name: reason}`` for the classes a model does not cover, in the order of ``classes``.

    A sequence of names gets the reason "listed in the model card's classes_not_covered"; a mapping
    gives its own reasons. Every name must be one of ``classes``.
    """
    if isinstance(classes_not_covered, str):
        classes_not_covered = [classes_not_covered]
    if isinstance(classes_not_covered, Mapping):
        given = {str(k): str(v) for k, v in classes_not_covered.items()}
    else:
        given = {str(c): CARD_NOT_COVERED for c in classes_not_covered}
    unknown = [c for c in given if c not in classes]
    if unknown:
        raise BadInputError(
            f"classes_not_covered names {unknown}, which are not among the classes {list(classes)}; "
            "use the exact class names (to evaluate a model that lacks a class, add the class to "
            "`classes` with a probability column of zeros)"
        )
    return {c: given[c] for c in classes if c in given}
