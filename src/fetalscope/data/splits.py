"""Patient-grouped splits: the official FETAL_PLANES_DB split, validation carving, k-fold.

Every function here keeps each patient in exactly one part and checks that with
:func:`assert_patient_disjoint` before returning. :func:`image_list_hash` fingerprints the exact
image list of a part for model cards.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedGroupKFold

from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.errors import DataError

_SHOWN = 8


@dataclass
class Split:
    """Train/validation/test lists of samples; no patient appears in two of them."""

    train: list[Sample]
    val: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    def parts(self) -> dict[str, list[Sample]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def sizes(self) -> dict[str, int]:
        return {name: len(part) for name, part in self.parts().items()}

    def hashes(self) -> dict[str, str]:
        """:func:`image_list_hash` of each non-empty part (for a model card)."""
        return {name: image_list_hash(part) for name, part in self.parts().items() if part}


def _as_list(samples: Sequence[Sample] | LabelledSet) -> list[Sample]:
    return list(samples.samples if isinstance(samples, LabelledSet) else samples)


def assert_patient_disjoint(
    *splits: Sequence[Sample] | LabelledSet, names: Sequence[str] | None = None
) -> None:
    """Raise :class:`DataError` naming the patients that sit in more than one of ``splits``."""
    labels = list(names) if names is not None else [f"part {i}" for i in range(len(splits))]
    if len(labels) != len(splits):
        raise ValueError(f"{len(labels)} names given for {len(splits)} splits")
    owner: dict[str, str] = {}
    shared: dict[str, set[str]] = {}
    for label, part in zip(labels, splits, strict=True):
        for patient in {s.patient for s in _as_list(part)}:
            if patient in owner and owner[patient] != label:
                shared.setdefault(patient, {owner[patient]}).add(label)
            else:
                owner.setdefault(patient, label)
    if shared:
        shown = sorted(shared, key=lambda p: (len(p), p))[:_SHOWN]
        detail = "; ".join(f"patient {p} in {sorted(shared[p])}" for p in shown)
        more = f" ... and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
        raise DataError(
            f"{len(shared)} patient(s) appear in more than one split, which leaks patients between training "
            f"and evaluation: {detail}{more}. Split by patient (fetalscope.data.splits)."
        )


def _stratified_groups(labels: np.ndarray, groups: np.ndarray, n_splits: int) -> bool:
    """Whether stratifying by label is possible: every class spans at least ``n_splits`` patients."""
    return all(len(np.unique(groups[labels == c])) >= n_splits for c in np.unique(labels))


def carve_validation(
    samples: Sequence[Sample] | LabelledSet,
    val_fraction: float = 0.15,
    *,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[list[Sample], list[Sample]]:
    """Split ``samples`` into (train, val) by patient, val holding about ``val_fraction`` of patients.

    Stratified by label (``StratifiedGroupKFold``) when every class spans enough patients, else a
    plain ``GroupShuffleSplit``.
    """
    items = _as_list(samples)
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: must be between 0 and 1 (exclusive)")
    groups = np.array([s.patient for s in items])
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataError(
            f"cannot carve a validation set by patient from {n_groups} patient(s); need at least 2"
        )
    labels = np.array([s.label for s in items])
    n_splits = max(2, min(n_groups, int(round(1.0 / val_fraction))))
    idx = np.arange(len(items))
    if stratify and _stratified_groups(labels, groups, n_splits):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train_idx, val_idx = next(splitter.split(idx, labels, groups))
    else:
        gss = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train_idx, val_idx = next(gss.split(idx, labels, groups))
    train, val = [items[i] for i in train_idx], [items[i] for i in val_idx]
    assert_patient_disjoint(train, val, names=["train", "val"])
    return train, val


def _checked_split(train: list[Sample], val: list[Sample], test: list[Sample]) -> Split:
    """``Split(train, val, test)`` once :func:`assert_patient_disjoint` has passed on the three parts."""
    assert_patient_disjoint(train, val, test, names=["train", "val", "test"])
    return Split(train, val, test)


def _with_validation(
    train: list[Sample], test: list[Sample], val_fraction: float, *, seed: int, stratify: bool
) -> Split:
    """A checked :class:`Split` of ``train`` (a validation part carved from it by patient when
    ``val_fraction`` > 0) and ``test``."""
    val: list[Sample] = []
    if val_fraction > 0:
        train, val = carve_validation(train, val_fraction, seed=seed, stratify=stratify)
    return _checked_split(train, val, test)


def official_split(
    samples: Sequence[Sample] | LabelledSet,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
    stratify: bool = True,
) -> Split:
    """FETAL_PLANES_DB's own split (``meta["official_train"]``); validation carved from its train part.

    ``val_fraction=0`` gives an empty validation part.
    """
    items = _as_list(samples)
    missing = [str(s.path) for s in items if "official_train" not in s.meta]
    if missing:
        raise DataError(
            f"{len(missing)} sample(s) carry no official train/test flag (meta['official_train']), e.g. "
            f"{missing[0]}; use patient_split() or kfold_splits() for this dataset."
        )
    train = [s for s in items if s.meta["official_train"]]
    test = [s for s in items if not s.meta["official_train"]]
    if not train or not test:
        raise DataError(f"official split is one-sided: {len(train)} train and {len(test)} test sample(s)")
    assert_patient_disjoint(train, test, names=["train", "test"])
    return _with_validation(train, test, val_fraction, seed=seed, stratify=stratify)


def patient_split(
    samples: Sequence[Sample] | LabelledSet,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> Split:
    """Random train/val/test split by patient (for data without an official split)."""
    items = _as_list(samples)
    rest, test = carve_validation(items, test_fraction, seed=seed, stratify=stratify)
    train, val = (
        (rest, [])
        if val_fraction <= 0
        else carve_validation(rest, val_fraction / (1.0 - test_fraction), seed=seed + 1, stratify=stratify)
    )
    return _checked_split(train, val, test)


def kfold_splits(
    samples: Sequence[Sample] | LabelledSet,
    k: int = 5,
    *,
    seed: int = 0,
    val_fraction: float = 0.0,
    stratify: bool = True,
) -> list[Split]:
    """Random patient-grouped k-fold: fold ``i`` is the test part of split ``i``.

    Stratified by label when every class spans at least ``k`` patients. With ``val_fraction`` > 0 a
    validation part is carved (by patient) from each training part.
    """
    items = _as_list(samples)
    groups = np.array([s.patient for s in items])
    n_groups = len(np.unique(groups))
    if k < 2 or n_groups < k:
        raise DataError(f"k-fold needs 2 <= k <= number of patients; got k={k} with {n_groups} patient(s)")
    labels = np.array([s.label for s in items])
    idx = np.arange(len(items))
    if stratify and _stratified_groups(labels, groups, k):
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, labels, groups)
    else:
        folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, labels, groups)
    out: list[Split] = []
    for i, (train_idx, test_idx) in enumerate(folds):
        train, test = [items[j] for j in train_idx], [items[j] for j in test_idx]
        out.append(_with_validation(train, test, val_fraction, seed=seed + i, stratify=stratify))
    return out


def image_list_hash(samples: Sequence[Sample] | LabelledSet, root: str | Path | None = None) -> str:
    """sha256 (hex) over the sorted ``relative/path<TAB>label`` lines of ``samples``.

    Paths are relative to ``root``, or to the deepest folder common to all samples, so the hash
    names the image list, not where it is stored.
    """
    items = _as_list(samples)
    if not items:
        return hashlib.sha256(b"").hexdigest()
    paths = [Path(s.path).absolute() for s in items]
    base = (
        Path(root).absolute()
        if root is not None
        else Path(os.path.commonpath([str(p.parent) for p in paths]))
    )
    lines = []
    for p, s in zip(paths, items, strict=True):
        try:
            rel = p.relative_to(base).as_posix()
        except ValueError:
            rel = p.as_posix()
        lines.append(f"{rel}\t{s.label}")
    digest = hashlib.sha256("\n".join(sorted(lines)).encode("utf-8"))
    return digest.hexdigest()
