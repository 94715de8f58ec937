"""Fetal head biometry from the head ellipse: HC, BPD, OFD (mm) and gestational age from HC.

- HC: ellipse circumference (Ramanujan) times the pixel size.
- BPD and OFD: the ellipse's minor and major axis (2 b, 2 a) times the pixel size. The ellipse follows
  the outer skull border as HC18 annotates it, so BPD here is outer-to-outer, not the clinical
  outer-to-inner caliper placement.
- GA from HC by Hadlock's regression: GA (weeks) = 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm
  (Hadlock FP, Deter RL, Harrist RB, Park SK. Estimating fetal age: computer-assisted analysis of
  multiple fetal growth parameters. Radiology 1984;152:497-501; derived from 361 fetuses at 14-42
  menstrual weeks). Outside that range the value is an extrapolation and is flagged.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from fetalscope.biometry.ellipse import Ellipse, fit_ellipse, ramanujan_circumference
from fetalscope.errors import BadInputError, DataError

HADLOCK_CITATION = ("Hadlock FP, Deter RL, Harrist RB, Park SK. Estimating fetal age: computer-assisted analysis "
                    "of multiple fetal growth parameters. Radiology 1984;152:497-501")
HADLOCK_RANGE_WEEKS = (14.0, 42.0)


def hadlock_ga_weeks(hc_mm: float) -> float:
    """Gestational (menstrual) age in weeks implied by head circumference ``hc_mm`` (Hadlock 1984)."""
    if not math.isfinite(hc_mm) or hc_mm <= 0:
        raise BadInputError(f"head circumference must be a positive number of mm, got {hc_mm}")
    hc_cm = hc_mm / 10.0
    return 8.96 + 0.540 * hc_cm + 0.0003 * hc_cm**3


def weeks_days(ga_weeks: float) -> str:
    """``20.43`` -> ``"20w3d"``."""
    total = int(round(ga_weeks * 7))
    return f"{total // 7}w{total % 7}d"


def check_pixel_size(pixel_size_mm: float | None, source: str = "pixel size") -> float | None:
    """Validate a pixel size in mm (None passes through). Raises :class:`BadInputError` when it is not
    a positive finite number or is outside 0.005-5 mm (an image in metres or micrometres)."""
    if pixel_size_mm is None:
        return None
    try:
        value = float(pixel_size_mm)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{source} must be a number of millimetres per pixel, got {pixel_size_mm!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise BadInputError(f"{source} must be a positive number of millimetres per pixel, got {value}")
    if not 0.005 <= value <= 5.0:
        raise BadInputError(f"{source} {value} mm/pixel is outside 0.005-5 mm; give it in millimetres "
                            "(e.g. 0.1 for 0.1 mm per pixel)")
    return value


def head_measurements(ellipse: Ellipse, pixel_size_mm: float | None) -> dict[str, Any]:
    """HC/BPD/OFD in mm, cephalic index and Hadlock GA for a head ellipse; pixels only when the
    pixel size is unknown (``hc_mm`` etc. are then None and ``flags`` says why)."""
    e = ellipse.normalised()
    out: dict[str, Any] = {
        "hc_px": round(e.circumference(), 2), "bpd_px": round(2 * e.b, 2), "ofd_px": round(2 * e.a, 2),
        "cephalic_index": round(100.0 * e.b / e.a, 1) if e.a > 0 else None,
        "hc_mm": None, "bpd_mm": None, "ofd_mm": None, "ga_weeks": None, "ga": None, "flags": [],
    }
    if pixel_size_mm is None:
        out["flags"].append("no_pixel_size: millimetres and gestational age are not reported; give the pixel "
                            "size in mm per pixel (CLI --pixel-size, API pixel_size_mm, the app's Pixel size "
                            "field) or use a DICOM with PixelSpacing")
        return out
    hc = e.circumference() * pixel_size_mm
    out.update(hc_mm=round(hc, 2), bpd_mm=round(2 * e.b * pixel_size_mm, 2), ofd_mm=round(2 * e.a * pixel_size_mm, 2))
    ga = hadlock_ga_weeks(hc)
    out.update(ga_weeks=round(ga, 2), ga=weeks_days(ga))
    lo, hi = HADLOCK_RANGE_WEEKS
    if not lo <= ga <= hi:
        out["flags"].append(f"ga_extrapolated: {ga:.1f} weeks is outside the {lo:.0f}-{hi:.0f} weeks of Hadlock's data")
    return out


# ---- HC18 reference ellipses ------------------------------------------------------------------------
def hc18_reference_ellipse(mask: np.ndarray, hc_px: float) -> Ellipse:
    """The reference ellipse of an HC18 image: the filled mask's ellipse shrunk on both semi-axes by
    the margin that makes its circumference equal the reference HC (in pixels).

    HC18 filled masks include the drawn annotation line; measured over all 872 images their fitted
    outline lies 1.36 +- 0.03 px outside the ellipse whose circumference is the published HC.
    """
    fitted = fit_ellipse(mask, exclude_frame=False)
    if fitted is None:
        raise DataError("HC18 mask is empty")
    delta = 0.0
    for _ in range(3):  # Newton on C(a - d, b - d) = hc_px; dC/dd ~ -2 pi
        c = ramanujan_circumference(fitted.a - delta, fitted.b - delta)
        delta += (c - hc_px) / (2 * math.pi)
    return replace(fitted, a=fitted.a - delta, b=fitted.b - delta)
