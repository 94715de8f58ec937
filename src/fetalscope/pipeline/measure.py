"""Which measurement an image gets: head images -> head biometry, thorax images -> cardiothoracic ratio.

The routing rule of :meth:`fetalscope.pipeline.session.Session.measure` (``what="auto"``) and the input rules
of a measurement (``check_pixel_size``: millimetres per pixel, 0.005-5), in one place for every face.

:func:`choose_route` weighs the plane model's call with the segmentation models' own evidence
(:mod:`fetalscope.biometry.evidence`), in this order:

1. an image that does not look like B-mode ultrasound gets nothing (``by: "ood"``);
2. a Fetal brain call (probability >= 0.5) gets head biometry, a Fetal thorax call (>= 0.5) the CTR when the
   heart/thorax segmentation is plausible (``by: "plane"``);
3. a call of a plane with no measurement at >= 0.9 gets nothing (``by: "plane"``): the segmentation models
   find ellipses in many things, so they overrule only an unsure or contradicted plane call;
4. otherwise the segmentations decide (``by: "segmentation"``): an unsure brain call whose head region fits
   its ellipse -> head, else a clear heart inside a thorax -> CTR, else a head region that fits its ellipse
   -> head, else a thorax call below 0.9 that the heart/thorax segmentation does not support (no plausible
   heart) on an image whose head region is plausible -> head (a head the plane model took for a thorax; FOCUS
   thorax images almost always show a plausible heart: 246 of 247; found on HC18 validation head 032_2HC, so
   the validation share measured is not blind to this rule), else a thorax call the segmentation
   could not confirm -> CTR (its quality gate judges);
5. last, a head region that is only plausible (:data:`~fetalscope.biometry.evidence.HEAD_PLAUSIBLE_LIMITS`)
   -> head when the plane model leans to a head (an unsure brain call with no clear heart): small early heads
   with a faint skull, which the plane model doubts and whose head map is fuzzier than the strict limits; else
   nothing, and the record says why.

A measurement asked for by name (``what=head|cardiothoracic``) is made, but rejected with the route's reason
when the route would not have chosen it (``not_head_plane`` / ``not_thorax_plane`` flags), so an abdomen, a
thorax or a colour photo measured as a head says so.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fetalscope.biometry.head import check_pixel_size
from fetalscope.errors import BadInputError

__all__ = ["CHOICES", "WHAT_BY_PLANE", "check_pixel_size", "choose_route", "measurement_choice",
           "measurement_for_plane", "measurement_line", "not_measured_record", "pixel_size_for", "read_pixel_sizes",
           "rejection_for"]

WHAT_BY_PLANE = {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}
CHOICES = ("auto", "head", "cardiothoracic")
ALIASES = {"auto": "auto", "head": "head", "hc": "head", "cardiothoracic": "cardiothoracic", "ctr": "cardiothoracic",
           "heart": "cardiothoracic"}


def measurement_choice(what: str | None, source: str = "measurement") -> str:
    """``what`` as given (any case; ``hc``, ``ctr``, ``heart`` accepted) -> one of :data:`CHOICES`; ``source``
    names the input in the error (``--what``, ``what``)."""
    key = str(what if what is not None else "auto").strip().lower()
    if key not in ALIASES:
        raise BadInputError(f"{source} must be one of {', '.join(CHOICES)}, got '{what}'")
    return ALIASES[key]


def measurement_for_plane(plane: str | None) -> str | None:
    """The measurement an image of ``plane`` gets, or ``None`` when there is none for it."""
    return WHAT_BY_PLANE.get(plane or "")


def not_measured_reason(plane: str | None) -> str:
    return (f"no measurement for a '{plane}' image: head biometry needs a Fetal brain (trans-thalamic) plane, "
            "the cardiothoracic ratio a Fetal thorax plane; ask for one explicitly (what=head|cardiothoracic)")


def not_measured_record(image: str, plane: str | None, probability: float | None,
                        route: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of an image ``auto`` routing gives no measurement (``quality`` ``not_measured``); with the
    ``route`` (:func:`choose_route`) its reason comes first in ``flags``."""
    flags = [not_measured_reason(plane)]
    if route is not None and route.get("reason"):
        flags.insert(0, f"not_measured: {route['reason']}")
    record = {"image": image, "measurement": None, "quality": "not_measured", "plane": plane,
              "plane_probability": probability, "flags": flags}
    if route is not None:
        record["route"] = route
    return record


CONFIDENT_PLANE = 0.5  # a brain or thorax call at or above this routes by itself
UNOVERRULED_PLANE = 0.9  # a call of a plane with no measurement at or above this is not overruled
NOT_ULTRASOUND = "the image does not look like B-mode ultrasound"


def _plane_text(plane: str | None, probability: float | None) -> str:
    return f"'{plane}' ({probability:.2f})" if probability is not None else f"'{plane}'"


def choose_route(plane: str | None, probability: float | None, *, ood: bool, head_fit: dict[str, Any] | None,
                 ctr_fit: dict[str, Any] | None) -> dict[str, Any]:
    """The measurement an image gets and the evidence that chose it (see the module docstring):
    ``{what: head|cardiothoracic|None, by: ood|plane|segmentation, plane, plane_probability, head_fit,
    ctr_fit, reason}``. ``head_fit`` / ``ctr_fit`` are the segmentation evidence
    (:mod:`fetalscope.biometry.evidence`), None when not computed."""
    p = probability if probability is not None else 0.0
    head_good = bool(head_fit and head_fit.get("good"))
    head_plausible = bool(head_fit and head_fit.get("plausible"))
    ctr_plausible = bool(ctr_fit and ctr_fit.get("plausible"))
    ctr_clear = bool(ctr_fit and ctr_fit.get("clear"))
    said = _plane_text(plane, probability)

    def route(what: str | None, by: str, reason: str) -> dict[str, Any]:
        return {"what": what, "by": by, "plane": plane, "plane_probability": probability, "head_fit": head_fit,
                "ctr_fit": ctr_fit, "reason": reason}

    if ood:
        return route(None, "ood", NOT_ULTRASOUND)
    routed = measurement_for_plane(plane)
    if routed == "head" and p >= CONFIDENT_PLANE:
        return route("head", "plane", f"the plane model calls it {said}")
    if routed == "cardiothoracic" and p >= CONFIDENT_PLANE and ctr_plausible:
        return route("cardiothoracic", "plane", f"the plane model calls it {said} and the heart/thorax "
                     "segmentation is plausible")
    if routed is None and p >= UNOVERRULED_PLANE:
        return route(None, "plane", f"the plane model calls it {said}, a plane with no measurement")
    if routed == "head" and head_good:
        return route("head", "segmentation", f"the plane model is unsure ({said}) and the head segmentation "
                     "fits its ellipse well")
    if ctr_clear:
        return route("cardiothoracic", "segmentation", f"the plane model calls it {said}, but the heart/thorax "
                     "segmentation is clear (a heart inside a thorax)")
    if head_good:
        return route("head", "segmentation", f"the plane model calls it {said}, but the head segmentation fits "
                     "its ellipse well")
    if routed == "cardiothoracic" and p < UNOVERRULED_PLANE and head_plausible and not ctr_plausible:
        return route("head", "segmentation", f"the plane model calls it {said}, below {UNOVERRULED_PLANE}, but the "
                     "heart/thorax segmentation does not support a thorax and the head segmentation is plausible")
    if routed == "cardiothoracic" and p >= CONFIDENT_PLANE:
        return route("cardiothoracic", "plane", f"the plane model calls it {said}; the heart/thorax "
                     "segmentation did not confirm it (the quality gate judges)")
    if head_plausible and routed == "head" and not ctr_clear:
        return route("head", "segmentation", f"the plane model leans to a head ({said}) and the head segmentation "
                     "is plausible")
    why = "; ".join(f"{name}: {', '.join(fit.get('reasons') or []) or 'not clear enough'}"
                    for name, fit in (("head", head_fit), ("heart/thorax", ctr_fit)) if fit is not None)
    return route(None, "segmentation", f"the plane model calls it {said} and neither segmentation is convincing"
                 + (f" ({why})" if why else ""))


def rejection_for(what: str, route: dict[str, Any]) -> list[str]:
    """Flags that reject a measurement asked for by name (``what``) on an image the route sends elsewhere
    (empty when the route agrees)."""
    if route.get("what") == what:
        return []
    key = "not_head_plane" if what == "head" else "not_thorax_plane"
    goes = {None: "no measurement", "head": "head biometry", "cardiothoracic": "the cardiothoracic ratio"}
    return [f"{key}: {route.get('reason')}; automatic routing would give {goes.get(route.get('what'))}"]


def measurement_line(record: dict[str, Any]) -> str:
    """One line for people about a measurement record: image, what, quality and the numbers (HC, BPD, OFD and
    GA, or the cardiothoracic ratios), then its flags."""
    what = record.get("measurement")
    parts = [str(record.get("image", "")), str(what or "no measurement"), f"quality {record.get('quality')}"]
    if what == "head":
        for key, label in (("hc_mm", "HC"), ("bpd_mm", "BPD"), ("ofd_mm", "OFD")):
            if record.get(key) is not None:
                parts.append(f"{label} {record[key]:.1f} mm")
                interval = record.get("hc_interval_mm") if key == "hc_mm" else None
                if interval and record.get("hc_interval_coverage"):
                    parts[-1] += (f" ({record['hc_interval_coverage']:.0%} interval {interval[0]:.1f}-"
                                  f"{interval[1]:.1f})")
        if record.get("ga"):
            parts.append(f"GA {record['ga']}")
    elif what == "cardiothoracic" and record.get("ctr"):
        interval, coverage = record.get("ctr_interval"), record.get("ctr_interval_coverage")
        for k in ("circumference", "area", "diameter"):
            if record["ctr"].get(k) is not None:
                parts.append(f"CTR ({k}) {record['ctr'][k]:.3f}")
                if k == "circumference" and interval and coverage:
                    parts[-1] += f" ({coverage:.0%} interval {interval[0]:.3f}-{interval[1]:.3f})"
    line = "\t".join(parts)
    flags = record.get("flags") or []
    return line + ("\t[" + "; ".join(flags) + "]" if flags else "")


PATH_COLUMNS = ("path", "image", "filename", "file")


def read_pixel_sizes(csv_path: str | Path) -> dict[str, float]:
    """A CSV of per-image pixel sizes -> ``{path or file name: mm per pixel}``.

    Columns: one of ``path`` / ``image`` / ``filename`` / ``file`` and ``pixel_size_mm`` (HC18's
    ``pixel size(mm)`` is accepted too). Every value passes :func:`check_pixel_size`; a missing column, an empty
    file, a bad value or a name given twice with two sizes is a :class:`BadInputError` naming the row."""
    path = Path(csv_path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such pixel-size file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        name_col = next((h for h in header if h.lower() in PATH_COLUMNS), None)
        size_col = next((h for h in header if h.lower().replace(" ", "") in ("pixel_size_mm", "pixelsize(mm)")),
                        None)
        if name_col is None or size_col is None:
            raise BadInputError(f"{path}: needs a column for the image ({' / '.join(PATH_COLUMNS)}) and one named "
                                f"pixel_size_mm; found {', '.join(header) or 'no header'}")
        table: dict[str, float] = {}
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            name = row.get(name_col, "")
            if not name:
                raise BadInputError(f"{path}, line {i}: no image name in column '{name_col}'")
            value = check_pixel_size(row.get(size_col) or None, f"{path}, line {i}: {size_col}")
            if value is None:
                raise BadInputError(f"{path}, line {i}: no pixel size for {name}")
            if name in table and table[name] != value:
                raise BadInputError(f"{path}, line {i}: {name} is listed twice with different pixel sizes")
            table[name] = value
    if not table:
        raise BadInputError(f"{path}: no rows")
    return table


def pixel_size_for(image_path: str | Path, table: dict[str, float] | None, default: float | None) -> float | None:
    """The pixel size of ``image_path`` from ``table`` (matched by the path as given, then by file name),
    else ``default``."""
    if table:
        p = Path(image_path)
        for key in (str(image_path), str(p.resolve()), p.name):
            if key in table:
                return table[key]
    return default
