"""Segmentation samples (an image with per-structure masks or ellipses) and group-wise splits.

A :class:`SegSample` names its image and, per structure, either a mask file or an ellipse given as
numbers (``{"cx", "cy", "a", "b", "angle_deg"}``, pixels, angle from +x towards +y, y down). The
data layer only reads files and numbers; turning ellipses into masks is the segmentation trainer's job
(:mod:`fetalscope.train.segmenter.trainer`).
``group`` is what must never be split: an HC18 subject, a FOCUS ``duplicate_group``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.errors import DataError
from fetalscope.imaging.loader import load_image


def load_mask_file(path: Any) -> np.ndarray:
    """A mask image file as an ``H x W`` boolean array (non-zero/bright = inside)."""
    return load_image(path).gray > 127


@dataclass(frozen=True)
class SegSample:
    """One image for segmentation training/evaluation.

    - ``masks``: structure -> mask image file (non-zero = inside).
    - ``ellipses``: structure -> ellipse numbers (used when a structure has no mask file, and as the
      reference for ellipse metrics when given).
    - ``group``: samples sharing a group always land in the same split.
    - ``meta``: anything else (pixel size in mm, reference HC in mm, CTR values, ...).
    """

    path: Path
    group: str
    masks: dict[str, Path] = field(default_factory=dict)
    ellipses: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def structures(self) -> list[str]:
        return sorted(set(self.masks) | set(self.ellipses))


def group_split(samples: Sequence[SegSample], fractions: dict[str, float], seed: int = 0,
                rest: str = "train") -> dict[str, list[SegSample]]:
    """Split by group: each named split gets about ``fraction`` of the samples (whole groups only),
    the remainder goes to ``rest``. Deterministic for a given ``seed`` and sample list."""
    if sum(fractions.values()) >= 1.0:
        raise DataError(f"split fractions {fractions} leave nothing for '{rest}'")
    groups: dict[str, list[SegSample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    total = len(samples)
    out: dict[str, list[SegSample]] = {name: [] for name in [*fractions, rest]}
    it = iter(keys)
    for name, frac in fractions.items():
        target = round(frac * total)
        for key in it:
            out[name].extend(groups[key])
            if len(out[name]) >= target:
                break
    for key in it:
        out[rest].extend(groups[key])
    assert_groups_disjoint(*out.values())
    return out


def group_folds(samples: Sequence[SegSample], n_folds: int, seed: int = 0) -> list[list[SegSample]]:
    """``samples`` divided into ``n_folds`` folds of whole groups with about equal numbers of samples: groups
    shuffled by ``seed``, then largest first, each to the fold with the fewest samples so far (scikit-learn's
    ``GroupKFold`` with ``shuffle`` balances group counts instead, leaving folds of uneven size). Fold ``k`` is
    the ``k``-th held-out part; deterministic for a seed and sample list."""
    if n_folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {n_folds}")
    groups: dict[str, list[SegSample]] = defaultdict(list)
    for s in samples:
        groups[s.group].append(s)
    if len(groups) < n_folds:
        raise DataError(f"cannot divide {len(groups)} group(s) into {n_folds} folds")
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda g: -len(groups[g]))  # stable: equal sizes keep their shuffled order
    folds: list[list[SegSample]] = [[] for _ in range(n_folds)]
    for key in keys:
        min(folds, key=len).extend(groups[key])
    assert_groups_disjoint(*folds)
    return folds


def assert_groups_disjoint(*splits: Sequence[SegSample]) -> None:
    """Raise :class:`DataError` if any group appears in more than one split."""
    seen: dict[str, int] = {}
    for i, split in enumerate(splits):
        for s in split:
            j = seen.setdefault(s.group, i)
            if j != i:
                raise DataError(f"group {s.group!r} ({s.name}) sits in split {j} and split {i}; "
                                "near-identical images must stay on one side")
