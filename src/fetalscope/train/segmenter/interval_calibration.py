"""Calibrating a measurement interval (:class:`fetalscope.biometry.uncertainty.IntervalRule`) out of fold.

The calibration data are out-of-fold measurements: each made by the one cross-validation model that never
trained on that image, with the shipped post-processing, so their errors are those of unseen images.
:func:`cross_fitted` scores every candidate form honestly (each fold's intervals use the quantile of the other
folds), :func:`eligible` applies a rule fixed before the results (coverage overall and within groups that
could hide a miss: sizes, the most unsteady fifth), and :func:`calibrate` fits the chosen form's quantile on
every out-of-fold measurement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from fetalscope.biometry.uncertainty import (
    UNIT_FORMS,
    IntervalRule,
    band_index,
    conformal_quantile,
    interval_scale,
)


@dataclass(frozen=True)
class Candidate:
    """An interval form to try: ``form`` with its ``floor`` (spread), ``offset`` (affine) or band ``edges``
    (banded), and its label in reports."""

    form: str
    floor: float = 0.0
    offset: float = 0.0
    edges: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        extra = {"spread": f", floor {self.floor:g} x value", "affine": f", value + {self.offset:g}",
                 "banded": f", bands at {', '.join(f'{e:g}' for e in self.edges)}"
                 + (f", SD + {self.floor:g} x value in each" if self.floor else "")}
        return self.form + extra.get(self.form, "")


@dataclass
class CrossFitted:
    """Out-of-fold intervals of one candidate: per measurement whether the reference lay inside, and the width."""

    candidate: Candidate
    covered: np.ndarray
    width: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def coverage(self, where: np.ndarray | None = None) -> float:
        c = self.covered if where is None else self.covered[where]
        return float(c.mean()) if len(c) else float("nan")

    def mean_width(self, where: np.ndarray | None = None) -> float:
        w = self.width if where is None else self.width[where]
        return float(w.mean()) if len(w) else float("nan")


def scores(candidate: Candidate, value: np.ndarray, spread: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|error| / scale of every measurement under ``candidate``."""
    scale = interval_scale(candidate.form, value, spread, candidate.floor, candidate.offset)
    return np.abs(np.asarray(value, float) - np.asarray(reference, float)) / np.maximum(scale, 1e-12)


def _quantiles(candidate: Candidate, s: np.ndarray, value: np.ndarray, coverage: float) -> np.ndarray:
    """The calibrated quantile of scores ``s`` (one per band for ``banded``, else one)."""
    if candidate.form != "banded":
        return np.array([conformal_quantile(s, coverage)])
    band = band_index(value, candidate.edges)
    return np.array([conformal_quantile(s[band == b], coverage) for b in range(len(candidate.edges) + 1)])


def _q_of(candidate: Candidate, qs: np.ndarray, value: np.ndarray) -> np.ndarray:
    return qs[band_index(value, candidate.edges)] if candidate.form == "banded" else np.full(len(value), qs[0])


def cross_fitted(candidate: Candidate, value: np.ndarray, spread: np.ndarray, reference: np.ndarray,
                 fold: np.ndarray, coverage: float, groups: dict[str, np.ndarray] | None = None) -> CrossFitted:
    """Each fold's measurements get the interval whose quantile was calibrated on the other folds only."""
    value, spread, reference, fold = (np.asarray(x) for x in (value, spread, reference, fold))
    s = scores(candidate, value, spread, reference)
    scale = interval_scale(candidate.form, value, spread, candidate.floor, candidate.offset)
    covered = np.zeros(len(value), dtype=bool)
    width = np.zeros(len(value), dtype=float)
    for k in np.unique(fold):
        held = fold == k
        q = _q_of(candidate, _quantiles(candidate, s[~held], value[~held], coverage), value[held])
        covered[held] = s[held] <= q
        width[held] = 2 * q * scale[held]
    return CrossFitted(candidate, covered, width, dict(groups or {}))


def eligible(result: CrossFitted, overall: float, within: float) -> bool:
    """Coverage >= ``overall`` over every measurement and >= ``within`` inside each of ``result.groups``."""
    if not result.coverage() >= overall:
        return False
    return all(result.coverage(where) >= within for where in result.groups.values() if where.any())


def choose(results: Iterable[CrossFitted], overall: float, within: float) -> CrossFitted | None:
    """The eligible result with the narrowest mean interval (None when none is eligible)."""
    ok = [r for r in results if eligible(r, overall, within)]
    return min(ok, key=lambda r: r.mean_width()) if ok else None


def calibrate(candidate: Candidate, value: np.ndarray, spread: np.ndarray, reference: np.ndarray,
              coverage: float, unit: str = "", basis: str = "") -> IntervalRule:
    """``candidate``'s rule with its quantile(s) fitted on every calibration measurement (``unit``: that of the
    values, kept by the forms whose numbers carry it)."""
    value = np.asarray(value, dtype=float)
    qs = _quantiles(candidate, scores(candidate, value, spread, reference), value, coverage)
    banded = candidate.form == "banded"
    return IntervalRule(candidate.form, 1.0 if banded else float(qs[0]), coverage, candidate.floor,
                        unit if candidate.form in UNIT_FORMS else "", basis, candidate.offset,
                        candidate.edges if banded else (), tuple(float(q) for q in qs) if banded else ())


def table_lines(results: list[CrossFitted], overall: float, within: float, width_digits: int = 2) -> list[str]:
    """Markdown table of cross-fitted results: coverage (mean width) overall and per group, and eligibility."""
    groups = list(results[0].groups) if results else []
    lines = ["| form | all | " + " | ".join(groups) + " | eligible |",
             "| --- | --- | " + " | ".join("---" for _ in groups) + " | --- |"]
    for r in results:
        cells = [f"{r.coverage():.3f} ({r.mean_width():.{width_digits}f})",
                 *(f"{r.coverage(w):.3f} ({r.mean_width(w):.{width_digits}f})" for w in r.groups.values())]
        lines.append(f"| {r.candidate.label} | " + " | ".join(cells)
                     + f" | {'yes' if eligible(r, overall, within) else 'no'} |")
    return lines
