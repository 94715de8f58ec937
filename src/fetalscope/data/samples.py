"""The record types every dataset adapter returns: :class:`Sample` and :class:`LabelledSet`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    """One labelled image.

    - ``path``: the image file.
    - ``label``: class index into the owning :class:`LabelledSet`'s ``classes``.
    - ``patient``: patient/subject id as a string; splits keep each patient in one part.
    - ``meta``: whatever else the source knows (operator, machine, official split flag, ...).
    """

    path: Path
    label: int
    patient: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelledSet:
    """Samples with their class list (``label`` indexes ``classes``) and a human-readable source."""

    samples: list[Sample]
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    @property
    def patients(self) -> set[str]:
        return {s.patient for s in self.samples}

    def class_counts(self) -> dict[str, int]:
        """Images per class name, every class listed (0 when absent)."""
        counts = Counter(s.label for s in self.samples)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def subset(self, samples: Sequence[Sample], source: str | None = None) -> LabelledSet:
        """A set with the same classes holding ``samples`` (e.g. one part of a split)."""
        return LabelledSet(list(samples), self.classes, source or self.source)
