"""Acquisition feedback: is this image a good standard plane, and what should the sonographer change?

A per-criterion checklist after the ISUOG guidelines (Salomon et al., UOG 2006 image scoring; ISUOG biometry
guideline UOG 2019; cardiac screening guideline UOG 2013), in the form published systems report it (Lin et al.
2019 for the head plane, Dong et al. 2020 for the four-chamber view): each criterion has a measured ``value``,
the ``expected`` range, ``passed``, a graded ``compliance`` in [0, 1] and one line of ``advice``. Compliance
is 1 inside the expected range and falls linearly with the distance outside it, in units of the criterion's
``scale`` in the card (the width of the passing range, or the threshold itself for quantities with no natural
top), to 0 at one scale out; a structure's is its best box score over the detector's operating threshold. The
``score`` (0-100) is 100 x the weighted mean compliance of the judged criteria (weights in the card), so a
degradation lowers it even when the criterion had already failed or another one flips; the ``grade`` is
``standard`` (>= 80), ``acceptable`` (60-79) or ``not standard`` (< 60).

The checklist of an image follows its plane: the head (trans-thalamic) checklist for brain images, the
four-chamber checklist for thorax images (``what="auto"``); any other plane gets a record that says it was not
assessed (``score`` None), never a made-up score. Thresholds and their sources live in the card
``quality_card/thresholds.json`` (written by ``scripts/quality_thresholds.py``). The criterion maths is in
:mod:`fetalscope.imaging.acquisition`; :meth:`fetalscope.pipeline.session.Session.quality` runs the models and
calls :func:`judge_head` / :func:`judge_four_chamber`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.biometry.ellipse import Ellipse, mask_iou
from fetalscope.imaging.acquisition import area_share, frame_cut_share, gain_level, points_inside, sharpness

CARD_DIR = Path(__file__).resolve().parent / "quality_card"
THRESHOLDS_PATH = CARD_DIR / "thresholds.json"
GRADES = (("standard", 80), ("acceptable", 60), ("not standard", 0))
HEAD_PLANE, THORAX_PLANE = "Fetal brain", "Fetal thorax"
WHAT_BY_PLANE = {HEAD_PLANE: "head", THORAX_PLANE: "cardiothoracic"}
#: detector label of each head-plane structure criterion
STRUCTURES = {"midline_falx": "MIDLINE_FALX", "cavum_septi_pellucidi": "CSP", "choroid_plexus": "CHOROID_PLEXUS"}
#: why the trans-thalamic criterion "the cerebellum should not be visible" is recorded but never judged
CEREBELLUM_NOT_JUDGED = ("not judged: no model here can tell whether the cerebellum is visible (the structure "
                         "detector has no cerebellum class; SonoNet's own Brain (Cb.) plane calls 180/873 HC18 and "
                         "29/57 FETAL_PLANES_DB trans-thalamic planes cerebellar, see the sononet-planes report; "
                         "the brain sub-plane model is source-confounded, see its card)")

ADVICE: dict[str, dict[str, str]] = {
    "plane_confidence": {"low": "The plane model does not see a fetal head plane here: find the axial "
                                "trans-thalamic plane (thalami and cavum septi pellucidi)."},
    "four_chamber_view": {"low": "The plane model does not see a four-chamber view here: find the axial thorax "
                                 "plane with the four chambers of the heart."},
    "head_size": {"low": "Zoom in (or reduce the depth): the head should fill more of the image.",
                  "high": "Zoom out (or increase the depth): the head fills too much of the image."},
    "thorax_size": {"low": "Zoom in (or reduce the depth): the thorax should fill more of the image.",
                    "high": "Zoom out (or increase the depth): the thorax fills too much of the image."},
    "head_in_view": {"low": "Move the probe so the whole skull outline lies inside the ultrasound sector."},
    "thorax_in_view": {"low": "Move the probe so the whole thorax outline lies inside the ultrasound sector."},
    "heart_found": {"low": "No heart was found inside the thorax: centre the four-chamber view of the heart in "
                           "the thorax."},
    "heart_thorax_area": {"low": "The heart looks small for the thorax: check that the section passes through "
                                 "the four chambers, not above or below them.",
                          "high": "The heart looks large for the thorax: check the section (an oblique cut "
                                  "enlarges it) before reading the cardiothoracic ratio."},
    "midline_falx": {"low": "The midline echo (falx) was not found: adjust the plane until it is a continuous "
                            "line across the head."},
    "cavum_septi_pellucidi": {"low": "The cavum septi pellucidi was not found: tilt towards the trans-thalamic "
                                     "plane, where it lies in front of the thalami."},
    "choroid_plexus": {"low": "The choroid plexus was not found: adjust the section so the lateral ventricle and "
                              "its choroid plexus are seen."},
    "ellipse_fit": {"low": "The outline is not an even ellipse: rotate the probe for a symmetrical axial "
                           "section."},
    "gain": {"low": "Raise the gain: the image inside the sector is too dark.",
             "high": "Lower the gain: the image inside the sector is too bright."},
    "sharpness": {"low": "The image is blurred: hold the probe still (freeze between fetal movements) and set "
                         "the focus at the depth of the structure."},
}
LABELS = {"plane_confidence": "Head plane (plane model)", "four_chamber_view": "Four-chamber view (plane model)",
          "head_size": "Head size (magnification)", "thorax_size": "Thorax size (magnification)",
          "head_in_view": "Whole skull in view", "thorax_in_view": "Whole thorax in view",
          "heart_found": "Heart inside the thorax", "heart_thorax_area": "Heart about a third of the thorax",
          "midline_falx": "Midline falx", "cavum_septi_pellucidi": "Cavum septi pellucidi",
          "choroid_plexus": "Choroid plexus", "cerebellum_not_visible": "Cerebellum not visible",
          "ellipse_fit": "Outline fits an ellipse", "gain": "Gain",
          "sharpness": "Sharpness (focus, motion)"}


@lru_cache(maxsize=4)
def _read_thresholds(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def thresholds(path: str | Path | None = None) -> dict[str, Any]:
    """The threshold card: ``{"version", "head": {criterion: {low, high, unit, source}}, "cardiothoracic":
    {...}, "calibration": {...}}``."""
    return _read_thresholds(str(path or THRESHOLDS_PATH))


def grade_of(score: int | None) -> str | None:
    """``standard`` (>= 80), ``acceptable`` (60-79), ``not standard`` (< 60); None for no score."""
    if score is None:
        return None
    return next(name for name, low in GRADES if score >= low)


@dataclass
class Criterion:
    """One checklist item: ``passed`` None means it could not be assessed (and does not count);
    ``compliance`` (None with it) is the graded pass in [0, 1] the score averages."""

    id: str
    passed: bool | None
    value: float | None
    expected: str
    advice: str | None
    label: str = ""
    compliance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expected(limits: dict[str, Any]) -> str:
    low, high, unit = limits.get("low"), limits.get("high"), limits.get("unit", "")
    unit = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{low:.3g}-{high:.3g}{unit}"
    if low is not None:
        return f">= {low:.3g}{unit}"
    return f"<= {high:.3g}{unit}" if high is not None else "any"


def compliance_of(value: float, limits: dict[str, Any]) -> float:
    """1 inside ``limits`` (``low`` / ``high``), else ``1 - distance / scale`` clipped at 0: the distance outside
    the range in units of ``limits["scale"]`` (default: the range's width when it has both ends, else the
    threshold itself). ``limits["fall"] == "log"``: below the range, distance and scale are log ratios
    (``ln(low / value)``, default scale ``ln(high / low)``), for a quantity the machine multiplies (gain), so
    halving it costs the same at every level and a darker copy always complies less until it reaches 0; above
    the range the fall stays linear over ``limits["scale_high"]`` (default the range's width), as grey levels
    saturate at the top instead of multiplying."""
    low, high = limits.get("low"), limits.get("high")
    if low is not None and value < low:
        distance = low - value
    elif high is not None and value > high:
        distance = value - high
    else:
        return 1.0
    if limits.get("fall") == "log":
        if low is not None and value < low:  # a ratio (the gain knob is in dB): distance and scale in log units
            scale = limits.get("scale") or (np.log(high / low) if low and high else 0.0)
            return max(0.0, 1.0 - float(np.log(low / max(value, 1e-6))) / scale) if scale else 0.0
        scale = limits.get("scale_high") or (high - low if low is not None and high is not None else 0.0)
        return max(0.0, 1.0 - distance / scale) if scale else 0.0
    scale = limits.get("scale")
    if not scale:
        scale = high - low if low is not None and high is not None else abs(low if low is not None else high)
    return max(0.0, 1.0 - distance / scale) if scale else 0.0


def check(cid: str, value: float | None, limits: dict[str, Any], *, expected: str | None = None,
          missing: str | None = None) -> Criterion:
    """The criterion ``cid`` for ``value`` against ``limits`` (``low`` / ``high``, either may be None; ``scale``
    for :func:`compliance_of`). ``value`` None: failed (compliance 0) with ``missing`` as advice (the structure
    was not found), or not assessed when ``missing`` is None."""
    label = LABELS.get(cid, cid)
    shown = expected or _expected(limits)
    if value is None:
        if missing is None:
            return Criterion(cid, None, None, shown, None, label)
        return Criterion(cid, False, None, shown, missing, label, 0.0)
    low, high = limits.get("low"), limits.get("high")
    side = "low" if low is not None and value < low else "high" if high is not None and value > high else None
    advice = ADVICE.get(cid, {}).get(side) if side else None
    return Criterion(cid, side is None, round(float(value), 4), shown, advice, label,
                     compliance_of(float(value), limits))


@dataclass
class QualityRecord:
    """The acquisition feedback of one image (``fetalscope quality``, ``POST /v1/quality``).

    - ``plane`` / ``plane_probability``: the plane model's top class; ``what``: the checklist used (``head`` |
      ``cardiothoracic``, None when not assessed, with ``reason``).
    - ``score`` 0-100 (100 x the weighted mean compliance of the judged criteria), ``grade``; ``criteria``:
      ``[{id, passed, value, expected, advice, label, compliance}]`` (``passed`` None: not judged, not counted).
    - ``ellipses`` (``{name: {cx, cy, a, b, angle_deg}}``) and ``boxes`` (``[{label, score, xyxy}]``): what the
      image was judged on, in original pixels; ``sector``: the scan sector's bounding box [x0, y0, x1, y1];
      ``pixel_size_mm``: the one given, else the DICOM's spacing, else None (the criteria are shares, in
      pixels; it is recorded so a batch can convert).
    - ``model``: the models' ids and versions; ``thresholds``: the card version; ``timing_ms``.
    """

    image: str
    plane: str | None
    plane_probability: float | None
    what: str | None
    score: int | None
    grade: str | None
    criteria: list[Criterion] = field(default_factory=list)
    reason: str | None = None
    ellipses: dict[str, dict[str, float]] = field(default_factory=dict)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    sector: list[int] | None = None
    pixel_size_mm: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    thresholds: str = ""
    timing_ms: float | None = None

    @property
    def assessed(self) -> bool:
        return self.score is not None

    def criterion(self, cid: str) -> Criterion:
        for c in self.criteria:
            if c.id == cid:
                return c
        raise KeyError(f"no criterion '{cid}' in this record (have: {', '.join(c.id for c in self.criteria)})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = [c.to_dict() for c in self.criteria]
        out["assessed"] = self.assessed
        return out

    def line(self) -> str:
        """One line for people: image, plane, score and grade, then the failed criteria with their advice."""
        if not self.assessed:
            return f"{self.image}\tnot assessed\t{self.reason}"
        failed = [c for c in self.criteria if c.passed is False]
        parts = [self.image, f"{self.what} checklist", f"score {self.score}", str(self.grade),
                 f"{sum(c.passed is True for c in self.criteria)}/{sum(c.passed is not None for c in self.criteria)}"
                 " criteria passed"]
        line = "\t".join(parts)
        return line + ("\t[" + "; ".join(f"{c.id}: {c.advice}" for c in failed) + "]" if failed else "")


def weights(what: str, card: dict[str, Any] | None = None) -> dict[str, float]:
    """Each criterion's weight in the score, from the card (criteria the card does not list weigh 1)."""
    card = card or thresholds()
    return {cid: float(t.get("weight", 1.0)) for cid, t in card.get(what, {}).items()}


def score_of(criteria: list[Criterion], weight: dict[str, float] | None = None) -> int | None:
    """100 x the weighted mean ``compliance`` of the judged criteria (``passed`` not None; a criterion without a
    compliance counts as its pass/fail), rounded; None when none was judged. ``weight``: by criterion id,
    default 1."""
    judged = [c for c in criteria if c.passed is not None]
    if not judged:
        return None
    w = np.array([(weight or {}).get(c.id, 1.0) for c in judged], dtype=float)
    got = np.array([float(c.passed) if c.compliance is None else c.compliance for c in judged], dtype=float)
    return round(float(100 * (w * got).sum() / w.sum())) if w.sum() > 0 else None


def not_assessed(image: str, plane: str | None, probability: float | None, reason: str,
                 model: dict[str, Any]) -> QualityRecord:
    """The record of an image no checklist fits (``score`` None, ``reason`` says why)."""
    return QualityRecord(image, plane, probability, None, None, None, reason=reason, model=model,
                         thresholds=str(thresholds().get("version", "")))


def not_assessed_reason(plane: str | None) -> str:
    return (f"not assessed: plane '{plane}'; the checklists cover the fetal head (trans-thalamic, plane "
            f"'{HEAD_PLANE}') and the four-chamber view ('{THORAX_PLANE}'); ask for one explicitly "
            "(what=head|cardiothoracic)")


# ------------------------------------------------------------------------------------------- criteria
@dataclass
class Judged:
    """What the checklist of one image is judged on: the pixels, the sector, the plane probabilities, the
    segmentation masks and ellipses, and the detector's boxes (None: no detector)."""

    rgb: np.ndarray
    sector: np.ndarray
    plane_probabilities: dict[str, float]
    masks: dict[str, np.ndarray]
    ellipses: dict[str, Ellipse | None]
    boxes: list[dict[str, Any]] | None = None
    detector_note: str | None = None
    box_threshold: float | None = None  # the detector's operating threshold; ``boxes`` may hold weaker ones
    # the ellipse fitted to each segmentation alone (no averaging over views or crops): ``ellipse_fit`` compares
    # the mask with it, so that it measures the outline's own shape; None: the measured ``ellipses``
    mask_fits: dict[str, Ellipse | None] | None = None

    def mask_fit(self, structure: str) -> Ellipse | None:
        return (self.mask_fits if self.mask_fits is not None else self.ellipses).get(structure)


def _fit(mask: np.ndarray | None, ellipse: Ellipse | None) -> float | None:
    """IoU of a segmentation mask and the ellipse fitted to it (how well the outline is an ellipse)."""
    if mask is None or ellipse is None or not mask.any():
        return None
    return mask_iou(mask, ellipse.rasterise(mask.shape))


def _image_criteria(j: Judged, limits: dict[str, Any]) -> list[Criterion]:
    return [check("gain", gain_level(j.rgb, j.sector), limits["gain"]),
            check("sharpness", sharpness(j.rgb, j.sector), limits["sharpness"])]


IN_VIEW_MARGIN = 0.02  # outline points this close to the sector (share of the image's longest side) count inside


def _in_view(e: Ellipse | None, sector: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Share of the outline in view: the share of the ellipse's outline inside the sector grown by
    :data:`IN_VIEW_MARGIN` (the fit's own slack, and a sector edge that moves a little with blur or gain; points
    off the image are outside), less the share of the segmentation's own outline that runs along the image frame
    (within the same margin of it: :func:`~fetalscope.imaging.acquisition.frame_cut_share`). A structure cut by
    the frame is segmented only up to the edge, and an ellipse fitted to that visible part stays inside the image
    although the structure does not; the frame is a hard edge, so the outline reaching it is a cut."""
    if e is None:
        return None
    import cv2

    size = max(3, round(IN_VIEW_MARGIN * max(sector.shape)) | 1)
    grown = cv2.dilate(sector.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    inside = points_inside(e.points(360), grown.astype(bool))
    return inside if mask is None else min(inside, 1.0 - frame_cut_share(mask, IN_VIEW_MARGIN))


def judge_head(j: Judged, limits: dict[str, Any]) -> list[Criterion]:
    """The head (trans-thalamic) checklist."""
    head = j.ellipses.get("head")
    shape = j.rgb.shape[:2]
    lost = ADVICE["head_size"]["low"].split(":")[0] + ": no head was found in the image."
    out = [check("plane_confidence", j.plane_probabilities.get(HEAD_PLANE), limits["plane_confidence"]),
           check("head_size", None if head is None else area_share(head.area(), shape), limits["head_size"],
                 missing=lost),
           check("head_in_view", _in_view(head, j.sector, j.masks.get("head")), limits["head_in_view"], missing=lost)]
    threshold = j.box_threshold or 0.0
    for cid, label in STRUCTURES.items():
        if j.boxes is None:
            out.append(Criterion(cid, None, None, "detected", None, f"{LABELS[cid]} ({j.detector_note})"))
            continue
        scores = [float(b["score"]) for b in j.boxes if b.get("label") == label]
        best = max(scores) if scores else None
        out.append(check(cid, best, {"low": threshold, "scale": threshold},
                         expected=f"detected (box score >= {threshold:.2g})", missing=ADVICE[cid]["low"]))
    out.append(Criterion("cerebellum_not_visible", None, None, "not visible (trans-thalamic, not "
                         "trans-cerebellar)", None, f"{LABELS['cerebellum_not_visible']} ({CEREBELLUM_NOT_JUDGED})"))
    out.append(check("ellipse_fit", _fit(j.masks.get("head"), j.mask_fit("head")), limits["ellipse_fit"],
                     missing=lost))
    return out + _image_criteria(j, limits)


def judge_four_chamber(j: Judged, limits: dict[str, Any]) -> list[Criterion]:
    """The four-chamber view checklist."""
    thorax, heart = j.ellipses.get("thorax"), j.ellipses.get("heart")
    shape = j.rgb.shape[:2]
    lost = "No thorax was found: centre the fetal chest in the image."
    inside = None if heart is None or thorax is None else heart.fraction_inside(thorax)
    share = None if heart is None or thorax is None else heart.area() / thorax.area()
    no_heart = ADVICE["heart_found"]["low"]
    out = [check("four_chamber_view", j.plane_probabilities.get(THORAX_PLANE), limits["four_chamber_view"]),
           check("thorax_size", None if thorax is None else area_share(thorax.area(), shape),
                 limits["thorax_size"], missing=lost),
           check("thorax_in_view", _in_view(thorax, j.sector, j.masks.get("thorax")), limits["thorax_in_view"],
                 missing=lost),
           check("heart_found", inside, limits["heart_found"], missing=no_heart),
           check("heart_thorax_area", share, limits["heart_thorax_area"], missing=no_heart),
           check("ellipse_fit", _fit(j.masks.get("thorax"), j.mask_fit("thorax")), limits["ellipse_fit"],
                 missing=lost)]
    return out + _image_criteria(j, limits)


def judge(what: str, j: Judged, card: dict[str, Any] | None = None) -> list[Criterion]:
    """The checklist ``what`` (``head`` | ``cardiothoracic``) of one image."""
    card = card or thresholds()
    return judge_head(j, card["head"]) if what == "head" else judge_four_chamber(j, card["cardiothoracic"])


def sector_box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if ys.size else None


SECTOR_COLOUR = (160, 160, 160)


def draw_quality(rgb: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """A copy of ``rgb`` with what a quality record was judged on: the sector's box (grey), the ellipses and the
    detector's boxes, and the score and grade in the corner."""
    import cv2

    from fetalscope.biometry.ellipse import draw_ellipse
    from fetalscope.biometry.measure import COLOURS
    from fetalscope.detect import draw_boxes

    out = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).copy())
    t = max(1, round(max(out.shape[:2]) / 400))
    if record.get("sector"):
        x0, y0, x1, y1 = record["sector"]
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), SECTOR_COLOUR, t)
    for name, e in (record.get("ellipses") or {}).items():
        out = draw_ellipse(out, Ellipse.from_dict(e), COLOURS.get(name, (255, 255, 255)), label=name)
    if record.get("boxes"):
        out = draw_boxes(out, record["boxes"])
    if record.get("score") is not None:
        text = f"score {record['score']} ({record['grade']})"
        scale = max(0.5, max(out.shape[:2]) / 1200)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
        cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), t, cv2.LINE_AA)
    return out
