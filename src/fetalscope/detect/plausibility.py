"""Clinical plausibility rules for brain-structure detections, their violation rates and a filter.

Rules (axial trans-ventricular / trans-thalamic head plane):

- ``duplicate:<label>``: at most one midline falx and one cavum septi pellucidi per image
  (``SINGLETON_LABELS``); the choroid plexus may appear twice (one per hemisphere).
- ``outside_skull:<label>``: a structure's box centre lies outside the estimated skull ellipse
  (:mod:`fetalscope.detect.skull`) enlarged by ``SKULL_MARGIN``. Not checked (``skull_found`` false)
  when no skull could be estimated with confidence.

:func:`enforce` returns the plausible subset: the top-scoring box of each singleton label, and,
when ``drop_outside_skull`` is set and a skull was found, only boxes inside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fetalscope.detect.skull import SkullEllipse
from fetalscope.detect.types import Box

SINGLETON_LABELS: tuple[str, ...] = ("MIDLINE_FALX", "CSP")
SKULL_MARGIN = 1.1


@dataclass
class PlausibilityReport:
    """Rule outcomes for one image: which rules fail, per-label counts, and the skull used."""

    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    skull: SkullEllipse | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def skull_found(self) -> bool:
        return self.skull is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plausible": self.ok,
            "violations": list(self.violations),
            "counts": dict(self.counts),
            "skull_found": self.skull_found,
            "skull": self.skull.to_dict() if self.skull else None,
        }


def check(
    boxes: Sequence[Box],
    skull: SkullEllipse | None = None,
    *,
    singletons: Sequence[str] = SINGLETON_LABELS,
    margin: float = SKULL_MARGIN,
) -> PlausibilityReport:
    """Which rules ``boxes`` break (each rule named once per label)."""
    counts = Counter(b.label for b in boxes)
    violations = [f"duplicate:{label}" for label in singletons if counts.get(label, 0) > 1]
    if skull is not None:
        outside = sorted({b.label for b in boxes if not skull.contains(*b.centre, margin=margin)})
        violations += [f"outside_skull:{label}" for label in outside]
    return PlausibilityReport(violations=violations, counts=dict(sorted(counts.items())), skull=skull)


def enforce(
    boxes: Sequence[Box],
    skull: SkullEllipse | None = None,
    *,
    singletons: Sequence[str] = SINGLETON_LABELS,
    drop_outside_skull: bool = True,
    margin: float = SKULL_MARGIN,
) -> list[Box]:
    """The plausible subset of ``boxes``: outside-skull boxes dropped first (if asked and a skull is
    known), then only the highest-scoring box of each singleton label kept. Order: score descending."""
    kept = sorted(boxes, key=lambda b: -b.score)
    if drop_outside_skull and skull is not None:
        kept = [b for b in kept if skull.contains(*b.centre, margin=margin)]
    seen: set[str] = set()
    out = []
    for b in kept:
        if b.label in singletons:
            if b.label in seen:
                continue
            seen.add(b.label)
        out.append(b)
    return out


def violation_rates(reports: Sequence[PlausibilityReport], labels: Sequence[str]) -> dict[str, Any]:
    """Fractions of images breaking each rule (and any rule). Skull rules are rated over the images
    where a skull was found."""
    n = len(reports)
    with_skull = [r for r in reports if r.skull_found]
    out: dict[str, Any] = {
        "images": n,
        "images_with_skull": len(with_skull),
        "any_violation": _frac(sum(not r.ok for r in reports), n),
    }
    for label in SINGLETON_LABELS:
        if label in labels:
            out[f"duplicate:{label}"] = _frac(sum(f"duplicate:{label}" in r.violations for r in reports), n)
    for label in labels:
        out[f"outside_skull:{label}"] = _frac(
            sum(f"outside_skull:{label}" in r.violations for r in with_skull), len(with_skull)
        )
    return out


def _frac(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None
