"""Cardiothoracic ratio (CTR) from heart and thorax ellipses, its quality gate and range flags.

CTR three ways (heart over thorax): circumference ratio (primary; Ramanujan perimeters), area
ratio (pi a b), diameter ratio (major axes). These are the definitions of the FOCUS labels.

The quality gate says why no CTR is given instead of giving a doubtful one: a structure not found,
a heart not inside the thorax, an extreme axis ratio, a structure of implausible size, or an image
that the plane classifier does not call a thorax plane. Limits of the gate are plausibility limits
set below/above everything seen in the FOCUS expert annotations (heart minor/major >= 0.58, thorax
>= 0.73; heart 2-17% and thorax 9-53% of the image area), never a clinical normal range.

Range flags use only what a named source measured, on the ratio it measured. The AHA statement
(Donofrio et al. 2014) gives a normal cardiothoracic area ratio of 0.25-0.35 and a circumference ratio
below 0.5. For ellipses the area ratio is about the circumference ratio squared (0.90-1.02 times it on
the FOCUS expert annotations), so a circumference ratio below 0.5 means an area ratio below about
0.25: the area ratio's lower limit and the circumference limit contradict each other and cannot both
describe one method. Neither is flagged. Measured on the 247 FOCUS expert annotations they would call
60% (area ratio below 0.25) and 51% (circumference ratio >= 0.5) of them abnormal; with both, every
annotation was flagged. The area ratio's upper limit (0.35, about a circumference ratio of 0.59)
agrees with both statements and stays: it flags 1 of 247 expert annotations. The statement's numbers
were checked against quotations of it, not its full text (not reachable offline). The diameter ratio
here (major axes) is not the transverse-diameter ratio of the literature and is never flagged.

Not used: the MRI reference of Gao D et al. (MRI reference ranges for fetal cardiothoracic ratio of
diameter, area, and circumference from 21 to 38 weeks gestational age, J Magn Reson Imaging 2024;
1024 low-risk singletons; 5th-95th percentile area ratio 0.15-0.27, circumference ratio 0.40-0.52)
is consistent with area ~ circumference squared, but it is another modality: its circumference
95th percentile is exceeded by 69 of the 247 FOCUS expert annotations (28%).
"""

from __future__ import annotations

from typing import Any

from fetalscope.biometry.ellipse import Ellipse

THORAX_PLANE = "Fetal thorax"
MIN_PLANE_PROBABILITY = 0.5
MIN_AXIS_RATIO = {"heart": 0.45, "thorax": 0.55}
AREA_FRACTION = {"heart": (0.005, 0.35), "thorax": (0.03, 0.9)}
MIN_HEART_INSIDE = 0.9  # fraction of the heart outline inside the thorax ellipse

# Published ranges the flags use. Each entry names its source in full (the flag text quotes it); a
# ratio or a limit without an entry is never flagged. See the module docstring for what was left out.
DONOFRIO_2014 = ("Donofrio MT, Moon-Grady AJ, Hornberger LK, et al. Diagnosis and treatment of fetal cardiac "
                 "disease: a scientific statement from the American Heart Association. Circulation "
                 "2014;129:2183-2242")
NORMAL_RANGES: list[dict[str, Any]] = [
    {"ratio": "area", "low": None, "high": 0.35,
     "source": f"{DONOFRIO_2014}: cardiothoracic area ratio (heart area in diastole over thoracic area, "
               "four-chamber view) 0.25-0.35 in normal fetuses; a consensus statement with no study population "
               "of its own, its numbers checked against quotations of it; only the upper limit is used, as its "
               "lower limit contradicts its circumference limit (below 0.5) for ellipses"},
]

CTR_CARD: dict[str, Any] = {
    "description": "Fetal heart and thorax segmentation (four-chamber view) for the cardiothoracic ratio",
    "postprocessing": [
        "probabilities averaged over the image and its mirror image (flip test-time augmentation); "
        "sigmoid > 0.5 per structure; thorax: largest component, holes filled; heart: restricted to the "
        "thorax region, largest component; sub-pixel outline; least-squares ellipse (OpenCV fitEllipse); with "
        "`inference.ellipse_average`, each ellipse is the mean of the fits on the image and on crops around its "
        "thorax ellipse (the thorax seen at a higher resolution)",
        "ellipse: cx, cy, a, b (pixels), angle_deg from +x towards +y, image y pointing down; a >= b",
        "CTR = heart / thorax: circumference (Ramanujan, primary), area (pi a b), diameter (major axes)",
        "quality gate: no CTR when a structure is missing, the heart is not inside the thorax, an axis ratio "
        "or size is implausible, or the plane classifier does not call the image a thorax plane",
    ],
    "normal_ranges": NORMAL_RANGES,
    "citations": [
        "Burgos-Artizzu XP et al. Evaluation of deep convolutional neural networks for automatic classification "
        "of common maternal fetal ultrasound planes. Sci Rep 10:10200 (2020). CC BY 4.0 (images)",
        "FOCUS heart/thorax ellipse annotations as redistributed in github.com/lukaznj/fetal-ctr-detection (MIT)",
        f"{DONOFRIO_2014} (the cardiothoracic area ratio limit used for flags)",
        "Paladini D, Chita SK, Allan LD. Prenatal measurement of cardiothoracic ratio in evaluation of heart "
        "disease. Arch Dis Child 1990;65:20-23 (cardiothoracic ratio fairly constant in 410 normal fetuses; "
        "no limit is taken from it)",
    ],
    "limitations": [
        "FOCUS CTR varies little (circumference ratio 0.50 +- 0.035): a constant prediction of the training "
        "mean already has a mean absolute error of 0.02-0.03 (see the constant baseline in the metrics and "
        "report); judge the model by the ellipse IoU as well.",
        "Images come from FETAL_PLANES_DB (two Barcelona hospitals); other scanners are untested.",
        "Only the published upper limit of the cardiothoracic area ratio (0.35, AHA statement 2014) is "
        "flagged; it flags 1 of the 247 FOCUS expert annotations. The same statement's lower area limit "
        "(0.25) and circumference limit (< 0.5) contradict each other for ellipses (area ratio ~ "
        "circumference ratio squared) and would have flagged 60% and 51% of the expert annotations; they are "
        "not used. Published ranges were measured by other methods (e.g. thorax at the skin or the ribs, "
        "diastole), so a flag is a prompt to look, not a finding.",
        "The gate relies on the plane label or probability passed in; without one it cannot tell that an "
        "image is not a four-chamber view.",
    ],
}


def ctr_ratios(heart: Ellipse, thorax: Ellipse) -> dict[str, float]:
    """Heart-to-thorax ratios: circumference (primary), area and diameter (major axes)."""
    return {
        "circumference": heart.circumference() / thorax.circumference(),
        "area": heart.area() / thorax.area(),
        "diameter": heart.major / thorax.major,
    }


def range_flags(ctr: dict[str, float], ranges: list[dict[str, Any]] | None = None) -> list[str]:
    """Flags for ratios outside a published range (each flag names the range and its source)."""
    flags = []
    for r in NORMAL_RANGES if ranges is None else ranges:
        value = ctr.get(r["ratio"])
        if value is None:
            continue
        if r.get("low") is not None and value < r["low"]:
            flags.append(f"ctr_{r['ratio']}_below_published_range: {value:.3f} < {r['low']} ({r['source']})")
        if r.get("high") is not None and value >= r["high"]:
            flags.append(f"ctr_{r['ratio']}_above_published_range: {value:.3f} >= {r['high']} ({r['source']})")
    return flags


def quality_gate(heart: Ellipse | None, thorax: Ellipse | None, image_shape: tuple[int, int], *,
                 plane: str | None = None, plane_probability: float | None = None) -> list[str]:
    """Reasons not to report a CTR (empty list: the measurement passes).

    ``plane`` is the plane classifier's label for the image, ``plane_probability`` its probability
    that the image is a thorax plane; either may be omitted.
    """
    reasons: list[str] = []
    if plane is not None and plane != THORAX_PLANE:
        reasons.append(f"not_thorax_plane: the plane classifier calls this image '{plane}', not '{THORAX_PLANE}'")
    if plane_probability is not None and plane_probability < MIN_PLANE_PROBABILITY:
        reasons.append(f"not_thorax_plane: thorax-plane probability {plane_probability:.2f} is below "
                       f"{MIN_PLANE_PROBABILITY}")
    image_area = float(image_shape[0] * image_shape[1])
    for name, e in (("heart", heart), ("thorax", thorax)):
        if e is None:
            reasons.append(f"{name}_not_found: no {name} region was segmented")
            continue
        if e.axis_ratio() < MIN_AXIS_RATIO[name]:
            reasons.append(f"{name}_implausible_shape: axis ratio {e.axis_ratio():.2f} < {MIN_AXIS_RATIO[name]}")
        lo, hi = AREA_FRACTION[name]
        frac = e.area() / image_area
        if not lo <= frac <= hi:
            reasons.append(f"{name}_implausible_size: ellipse covers {100 * frac:.1f}% of the image "
                           f"(plausible {100 * lo:.1f}-{100 * hi:.0f}%)")
    if heart is not None and thorax is not None:
        inside = heart.fraction_inside(thorax)
        if inside < MIN_HEART_INSIDE:
            reasons.append(f"heart_not_inside_thorax: only {100 * inside:.0f}% of the heart outline lies inside "
                           "the thorax ellipse")
        elif heart.area() >= thorax.area():
            reasons.append("heart_not_inside_thorax: heart ellipse is not smaller than the thorax ellipse")
    return reasons


def cardiothoracic_record(heart: Ellipse | None, thorax: Ellipse | None, image_shape: tuple[int, int], *,
                          plane: str | None = None, plane_probability: float | None = None,
                          ranges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``heart``, ``thorax`` (ellipse dicts or None), ``ctr`` (three ratios, or None when the gate
    fails), ``quality`` ("ok" | "rejected"), ``flags`` (gate reasons and range flags)."""
    gate = quality_gate(heart, thorax, image_shape, plane=plane, plane_probability=plane_probability)
    record: dict[str, Any] = {
        "heart": heart.normalised().to_dict() if heart is not None else None,
        "thorax": thorax.normalised().to_dict() if thorax is not None else None,
        "ctr": None, "quality": "rejected" if gate else "ok", "flags": list(gate),
    }
    if not gate and heart is not None and thorax is not None:
        ctr = ctr_ratios(heart, thorax)
        record["ctr"] = {k: round(v, 4) for k, v in ctr.items()}
        record["flags"] += range_flags(ctr, ranges)
    return record
