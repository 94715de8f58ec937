"""How far a measurement may lie from the reference: an interval per measurement, calibrated out of fold.

A measurement is the mean of several fits of one structure (the bundle's ``inference.ellipse_average`` views:
the image, its mirror image, crops at a higher resolution). Where those fits disagree the measurement is less
sure, and out of fold its error is larger. An :class:`IntervalRule` turns the value and the spread of its views
into an interval ``value +- half_width`` that held the reference in a stated share (``coverage``) of images
that the networks never saw (split-conformal calibration, :func:`conformal_quantile`).

Forms of the half-width (``scale`` x ``q``; ``q`` is the calibrated quantile of ``|error| / scale``):

- ``constant``: scale 1 (in the rule's ``unit``, e.g. mm): the same width for every measurement;
- ``relative``: scale = the value: a share of the value (works in pixels or millimetres alike);
- ``spread``: scale = the views' standard deviation + ``floor`` x the value: wide where the views disagree;
- ``affine``: scale = the value + ``offset`` (in the rule's ``unit``): between constant and relative;
- ``banded``: a quantile of its own per band of the value (``edges``: the bands' upper edges, in the rule's
  ``unit``; ``band_q``: one quantile per band), so that coverage holds within each band (Mondrian conformal);
  scale 1, or with ``floor`` > 0 the ``spread`` scale inside each band.

The interval is about the measurement against the dataset's reference annotation, not about the fetus: a
gestational age read from HC has its own, biological, spread (Hadlock) that this does not include.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fetalscope.errors import UnsupportedError

FORMS = ("constant", "relative", "spread", "affine", "banded")
UNIT_FORMS = ("constant", "affine", "banded")  # forms whose numbers carry the rule's unit


def views_sd(values: Sequence[float]) -> float:
    """The standard deviation (population, ddof 0) of the views' values of one measurement; 0 for one view."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return float(v.std()) if len(v) > 1 else 0.0


def interval_scale(form: str, value: np.ndarray | float, spread: np.ndarray | float,
                   floor: float = 0.0, offset: float = 0.0) -> np.ndarray:
    """The scale that a rule of ``form`` multiplies by its quantile (see the module text; ``banded``: its quantile
    depends on the band, :func:`band_index`)."""
    value, spread = np.asarray(value, dtype=float), np.asarray(spread, dtype=float)
    if form == "constant" or (form == "banded" and floor == 0):
        return np.ones_like(value)
    if form == "relative":
        return np.abs(value)
    if form in ("spread", "banded"):
        return spread + floor * np.abs(value)
    if form == "affine":
        return np.abs(value) + offset
    raise UnsupportedError(f"unknown interval form '{form}'; choose one of {', '.join(FORMS)}")


def band_index(value: np.ndarray | float, edges: Sequence[float]) -> np.ndarray:
    """The band of each value: 0 below ``edges[0]``, ..., ``len(edges)`` at or above the last edge."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(value, dtype=float), side="right")


def conformal_quantile(scores: Sequence[float] | np.ndarray, coverage: float) -> float:
    """The split-conformal quantile of calibration ``scores``: the ceil((n + 1) coverage)-th smallest, so that a
    new exchangeable score falls at or below it with probability >= ``coverage`` (inf when n is too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    if not 0.0 < coverage < 1.0:
        raise UnsupportedError(f"coverage must lie in (0, 1), got {coverage}")
    k = math.ceil((len(s) + 1) * coverage)
    return float("inf") if k > len(s) else float(s[k - 1])


@dataclass(frozen=True)
class IntervalRule:
    """A calibrated interval: ``value +- q x interval_scale(form, value, spread, floor, offset)`` (``banded``:
    ``value +- band_q[band of value] x interval_scale(...)``).

    ``unit``: the unit of ``q``, ``offset`` and ``edges`` for the forms in :data:`UNIT_FORMS` (the others are
    scale-free); ``coverage``: the share of calibration measurements whose reference lay inside; ``basis``: one
    sentence on the calibration data (for the record)."""

    form: str
    q: float
    coverage: float
    floor: float = 0.0
    unit: str = ""
    basis: str = ""
    offset: float = 0.0
    edges: tuple[float, ...] = ()
    band_q: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise UnsupportedError(f"unknown interval form '{self.form}'; choose one of {', '.join(FORMS)}")
        object.__setattr__(self, "edges", tuple(float(e) for e in self.edges))
        object.__setattr__(self, "band_q", tuple(float(q) for q in self.band_q))
        qs = self.band_q if self.form == "banded" else (self.q,)
        if not (all(math.isfinite(q) and q > 0 for q in qs) and 0 < self.coverage < 1 and self.floor >= 0
                and self.offset >= 0):
            raise UnsupportedError(f"interval rule needs positive finite quantiles, coverage in (0, 1) and floor, "
                                   f"offset >= 0; got q {qs}, coverage {self.coverage}, floor {self.floor}, "
                                   f"offset {self.offset}")
        increasing = list(self.edges) == sorted(set(self.edges))
        if self.form == "banded" and (len(self.band_q) != len(self.edges) + 1 or not increasing):
            raise UnsupportedError(f"a banded rule needs increasing edges and one quantile per band; got edges "
                                   f"{self.edges}, band_q {self.band_q}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntervalRule:
        names = ("form", "q", "coverage", "floor", "unit", "basis", "offset", "edges", "band_q")
        return cls(**{k: d[k] for k in names if k in d})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d, "edges": list(self.edges), "band_q": list(self.band_q)}

    def describe(self, basis: bool = True) -> str:
        """The rule in words, e.g. for a model card (``basis``: with the calibration data in brackets)."""
        u = f" {self.unit}" if self.unit else ""
        if self.form == "banded":
            scale = "" if self.floor == 0 else f" x (SD of the views + {self.floor:g} x value)"
            e = self.edges
            inner = (f"{a:g}-{b:g}{u}" for a, b in zip(e, e[1:], strict=False))
            edges = [f"< {e[0]:g}{u}", *inner, f">= {e[-1]:g}{u}"] if e else ["all"]
            how = "; ".join(f"{e}: +- {q:.4g}{scale}" for e, q in zip(edges, self.band_q, strict=True))
        else:
            scale = {"constant": u, "relative": " x value", "spread": f" x (SD of the views + {self.floor:g} x value)",
                     "affine": f" x (value + {self.offset:g}{u})"}[self.form]
            how = f"+- {self.q:.4g}{scale}"
        return f"{self.coverage:.0%} interval, {how}" + (f" ({self.basis})" if basis and self.basis else "")

    def half_widths(self, value: np.ndarray | float, spread: np.ndarray | float) -> np.ndarray:
        """The half-widths around ``value`` (the views' standard deviation ``spread``), in the value's unit."""
        scale = interval_scale(self.form, value, spread, self.floor, self.offset)
        if self.form == "banded":
            return np.asarray(self.band_q)[band_index(value, self.edges)] * scale
        return self.q * scale

    def half_width(self, value: float, spread: float, unit: str | None = None) -> float | None:
        """The interval's half-width around ``value`` (the views' standard deviation ``spread``, same unit);
        ``unit``: the unit of ``value``. None when the rule's numbers are in another unit."""
        if self.form in UNIT_FORMS and unit != self.unit:
            return None
        return float(self.half_widths(value, spread))

    def interval(self, value: float, spread: float, unit: str | None = None) -> list[float] | None:
        """``[low, high]`` around ``value`` (low clipped at 0), or None (see :meth:`half_width`)."""
        h = self.half_width(value, spread, unit)
        return None if h is None else [max(0.0, value - h), value + h]


def coverage_and_width(rule: IntervalRule, value: np.ndarray, spread: np.ndarray, reference: np.ndarray,
                       unit: str | None = None) -> tuple[float, float]:
    """The share of ``reference`` inside ``rule``'s intervals and their mean width (unit of ``value``)."""
    value, spread, reference = (np.asarray(x, dtype=float) for x in (value, spread, reference))
    if rule.form in UNIT_FORMS and unit != rule.unit:
        raise UnsupportedError(f"the rule's numbers are in {rule.unit or 'no unit'}, the values in {unit}")
    h = rule.half_widths(value, spread)
    return float(np.mean(np.abs(value - reference) <= h)), float(np.mean(2 * h))


def interval_label(record: dict[str, Any], key: str, digits: int, unit: str = "") -> str:
    """The value's unit and, where the record has its interval (``key``), `` +/- h (90%)``: the interval's
    half-width and coverage, for a drawn label (OpenCV's font has no plus-minus sign)."""
    interval, coverage = record.get(key), record.get(key.replace("_mm", "") + "_coverage")
    if not interval or not coverage:
        return unit
    return f" +/- {(interval[1] - interval[0]) / 2:.{digits}f}{unit} ({coverage:.0%})"
