"""How repeatable the expert cardiothoracic ratio is: the part of any model's error that lies in the reference.

FOCUS keeps near-identical frames of one scan in one ``duplicate_group`` (a :class:`SegSample`'s ``group``); some
of them are pixel-identical images annotated twice. Their expert circumference CTRs still differ: for pixel-identical
images the difference is the annotation alone, for near-identical frames also the cardiac phase. A model that
gives one answer for two such images cannot match both references, so the mean absolute difference between
them, divided by sqrt(2), is roughly the error any model keeps against single references (if the two references
scatter independently and normally around what the image shows; frames in different cardiac phases make it an
overstatement of the annotation part).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from fetalscope.biometry.cardiothoracic import ctr_ratios
from fetalscope.biometry.ellipse import Ellipse
from fetalscope.data.segsets import SegSample
from fetalscope.imaging.loader import load_image


def reference_ratios(sample: SegSample) -> dict[str, float]:
    """The expert CTRs (circumference, area, diameter) of a sample from its heart and thorax ellipses."""
    ellipses = {s: Ellipse.from_dict(sample.ellipses[s]) for s in ("heart", "thorax")}
    return {k: float(v) for k, v in ctr_ratios(ellipses["heart"], ellipses["thorax"]).items()}


def reference_ctr(sample: SegSample, ratio: str = "circumference") -> float:
    """One expert CTR of a sample (:func:`reference_ratios`)."""
    return reference_ratios(sample)[ratio]


def reference_repeatability(samples: Sequence[SegSample], ratio: str = "circumference") -> dict[str, Any]:
    """Every pair of samples in one group: the mean absolute difference of their reference CTRs, the per-image
    error it implies (that mean / sqrt(2)), and the pixel-identical pairs by name. Samples without both ellipses
    are left out; ``pairs`` is 0 (and the means ``None``) when no group holds two of them."""
    by_group: dict[str, list[SegSample]] = defaultdict(list)
    for s in samples:
        if "heart" in s.ellipses and "thorax" in s.ellipses:
            by_group[s.group].append(s)
    diffs: list[float] = []
    identical: list[tuple[SegSample, SegSample, float]] = []
    for members in by_group.values():
        if len(members) < 2:
            continue
        pixels = [load_image(s.path).pixels for s in members]  # each image decoded once
        for (i, a), (j, b) in combinations(enumerate(members), 2):
            d = abs(reference_ctr(a, ratio) - reference_ctr(b, ratio))
            diffs.append(d)
            if pixels[i].shape == pixels[j].shape and np.array_equal(pixels[i], pixels[j]):
                identical.append((a, b, d))
    mean = float(np.mean(diffs)) if diffs else None
    return {"ratio": ratio, "images": sum(len(m) for m in by_group.values()), "pairs": len(diffs),
            "groups_with_pairs": sum(1 for m in by_group.values() if len(m) > 1),
            "mean_absolute_difference": mean,
            "implied_per_image_mae": mean / math.sqrt(2) if mean is not None else None,
            "identical_pairs": [{"images": [a.path.name, b.path.name], "difference": round(d, 4)}
                                for a, b, d in identical],
            "identical_mean_absolute_difference": float(np.mean([d for *_, d in identical])) if identical else None}
