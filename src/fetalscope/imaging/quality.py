"""Does this image look like B-mode ultrasound? An out-of-distribution (OOD) check on pixels alone.

A plane classifier always answers with one of its classes, even for a cat photo or a scanned
letter. This check looks at simple image statistics that separate B-mode ultrasound from the
usual wrong inputs, so the product can warn before anyone reads the prediction:

- **colour**: B-mode is grey; photos are colourful. Fraction of strongly saturated pixels. Scanners also
  show B-mode through a colour map (bluish-grey, sepia: each grey level has one colour): in a dark image of
  one hue only colour that departs from the image's own colour for its grey level counts (a photo, colour
  Doppler), so tinted scans pass.
- **white page**: documents are mostly white. Fraction of near-white pixels.
- **bright overall**: B-mode is mostly dark (black background, dark fluid, grey tissue). Median grey level.
- **no spatial structure**: speckle and anatomy make neighbouring pixels alike; random noise does not.
  Correlation of each non-background pixel with its right and lower neighbour.
- **blank**: a constant image (all black, all white, all one grey).

Each cue gives evidence in [0, 1] (0.5 at its threshold); ``score`` is the strongest cue and the
image is flagged when ``score >= threshold``. Thresholds were calibrated on 1,758 real fetal
ultrasound images (HC18, FOCUS, FETAL_PLANES_DB trans-ventricular, both Roboflow sets: no image
flagged) against photos, rendered text documents and uniform/Gaussian noise (every one flagged); see
``tests/serve/test_ood.py``. Greyscale photos with dark regions (e.g. the moon) are not reliably
caught: this is a guard against wrong inputs, not a proof that an image is a fetal scan.

A DICOM file also says what it is: a Modality (0008,0060) of another imaging technique (CT, MR, X-ray,
PET, ...) flags the image whatever its pixels look like (a CT slice can pass every pixel cue). Modality
``US`` (or ``IVUS``, or a retired ultrasound code), and an unknown one (empty, ``OT``, a secondary capture,
a code not listed here) leave the decision to the pixels; with an unknown modality, an SOP class of another
technique (e.g. CT Image Storage) flags it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import median_filter

from fetalscope.imaging.loader import UltrasoundImage

WORK_SIDE = 512  # images are reduced (never enlarged) to this longest side first
BACKGROUND_LEVEL = 20  # grey levels at or below this are the black background of a B-mode display
WHITE_LEVEL = 220

# (value, evidence) knots: evidence is linear between knots and constant beyond the ends
COLOUR_KNOTS = ((0.02, 0.0), (0.08, 0.5), (0.30, 1.0))  # real ultrasound: 0.000 at most
WHITE_KNOTS = ((0.10, 0.0), (0.25, 0.5), (0.50, 1.0))  # real ultrasound: at most 0.073
MEDIAN_KNOTS = ((135.0, 0.0), (150.0, 0.5), (200.0, 1.0))  # real ultrasound: at most 129
CORRELATION_KNOTS = ((0.20, 1.0), (0.45, 0.5), (0.70, 0.0))  # real ultrasound: at least 0.80
BLANK_STD = 3.0  # grey-level standard deviation below which an image is blank
TINT_TOLERANCE = 40.0  # RGB distance from the image's own colour for a grey level that counts as colour
TINT_SMOOTH_LEVELS = 25  # grey levels over which the image's colour map is smoothed (median)
TINT_MAX_MEDIAN = 90.0  # a tinted image is read as a scanner display only this dark overall (real: <= 78) ...
TINT_MAX_HUE_SPREAD = 0.2  # ... and in one hue (circular std of the saturated pixels' hue, radians; tinted
#                            real scans 0.06-0.12; photos of several colours 0.5-0.6)

#: DICOM Modality (0008,0060) codes of other techniques than ultrasound (PS3.3 C.7.3.1.1.1, retired ones too)
NON_ULTRASOUND_MODALITIES = {
    "CT": "computed tomography", "MR": "magnetic resonance", "CR": "computed radiography",
    "DX": "digital radiography", "MG": "mammography", "PT": "positron emission tomography",
    "NM": "nuclear medicine", "XA": "X-ray angiography", "RF": "radio fluoroscopy",
    "RG": "radiographic imaging", "IO": "intra-oral radiography", "PX": "panoramic X-ray",
    "BMD": "bone densitometry (X-ray)", "DG": "diaphanography", "ES": "endoscopy",
    "XC": "external-camera photography", "OP": "ophthalmic photography", "OPT": "ophthalmic tomography",
    "OCT": "optical coherence tomography", "IVOCT": "intravascular optical coherence tomography",
    "SM": "slide microscopy", "GM": "general microscopy", "DMS": "dermoscopy", "TG": "thermography",
    "SEG": "segmentation", "RTIMAGE": "radiotherapy image", "RTDOSE": "radiotherapy dose",
    "RTSTRUCT": "radiotherapy structure set", "RTPLAN": "radiotherapy plan", "REG": "registration",
    "SR": "structured report", "DOC": "document", "KO": "key object selection", "PR": "presentation state",
    "ECG": "electrocardiography", "LS": "laser surface scan", "OSS": "optical surface scan",
    "ST": "single-photon emission computed tomography", "DS": "digital subtraction angiography",
    "DF": "digital fluoroscopy", "CF": "cinefluorography", "VF": "videofluorography",
    "MA": "magnetic resonance angiography", "MS": "magnetic resonance spectroscopy", "AS": "angioscopy",
    "LP": "laparoscopy", "CS": "cystoscopy", "CP": "colposcopy", "FA": "fluorescein angiography",
    "FS": "fundoscopy", "DM": "digital microscopy",
}
#: Modality codes of ultrasound (US, intravascular US; CD, DD, EC: retired colour flow, duplex, echo)
ULTRASOUND_MODALITIES = frozenset({"US", "IVUS", "CD", "DD", "EC"})
_STORAGE = "1.2.840.10008.5.1.4.1.1."
#: Storage SOP classes of other techniques, by the modality they belong to (used when the Modality is unknown)
NON_ULTRASOUND_SOP_CLASSES = {
    _STORAGE + suffix: code
    for code, suffixes in {
        "CR": ("1",), "DX": ("1.1", "1.1.1"), "MG": ("1.2", "1.2.1", "13.1.3", "13.1.4", "13.1.5"),
        "IO": ("1.3", "1.3.1"), "CT": ("2", "2.1", "2.2"), "MR": ("4", "4.1", "4.3", "4.4"),
        "XA": ("12.1", "12.1.1", "13.1.1"), "RF": ("12.2", "12.2.1"), "NM": ("20",),
        "PT": ("128", "128.1", "130"), "RTIMAGE": ("481.1",), "RTDOSE": ("481.2",), "SEG": ("66.4",),
        "ES": ("77.1.1",), "GM": ("77.1.2",), "XC": ("77.1.4",), "OP": ("77.1.5.1", "77.1.5.2"),
        "OPT": ("77.1.5.4",), "SM": ("77.1.6",),
    }.items()
    for suffix in suffixes
}


@dataclass
class OODResult:
    """Outcome of :func:`ood_check`.

    - ``flag``: True when the image does not look like B-mode ultrasound.
    - ``score``: 0..1, the strongest cue's evidence (``flag`` is ``score >= threshold``).
    - ``reasons``: one sentence per cue at or over the threshold.
    - ``features``: the measured statistics; ``evidence``: each cue's evidence.
    """

    flag: bool
    score: float
    reasons: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ramp(value: float, knots: tuple[tuple[float, float], ...]) -> float:
    xs = [k[0] for k in knots]
    ys = [k[1] for k in knots]
    return float(np.interp(value, xs, ys))


def _working_copy(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _neighbour_correlation(grey: np.ndarray) -> float:
    """Smaller of the horizontal and vertical lag-1 correlations over pixel pairs that are both
    brighter than the background (1.0 when there are too few such pairs to tell)."""
    values = []
    for a, b in ((grey[:, 1:], grey[:, :-1]), (grey[1:], grey[:-1])):
        mask = (a > BACKGROUND_LEVEL) & (b > BACKGROUND_LEVEL)
        if int(mask.sum()) < 64:
            continue
        x = a[mask] - a[mask].mean()
        y = b[mask] - b[mask].mean()
        denom = float(x.std() * y.std())
        values.append(float((x * y).mean() / denom) if denom > 1e-6 else 0.0)
    return min(values) if values else 1.0


def _hue_spread(hsv: np.ndarray, mask: np.ndarray) -> float:
    """Circular standard deviation (radians) of the hue of the ``mask`` pixels (0 for fewer than 16)."""
    if int(mask.sum()) < 16:
        return 0.0
    angle = hsv[..., 0][mask].astype(np.float32) * (np.pi / 90.0)  # OpenCV hue is 0..179
    length = float(np.hypot(np.cos(angle).mean(), np.sin(angle).mean()))
    return float(np.sqrt(-2.0 * np.log(max(length, 1e-9))))


def _off_tint(rgb: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Pixels whose colour is not the image's own colour for their grey level.

    Scanners show B-mode through a colour map (grey, bluish-grey, sepia, ...): every grey level has one
    colour, so colour follows brightness. The image's map is estimated as the median colour of each grey
    level; a pixel more than ``TINT_TOLERANCE`` from it carries colour of its own (a photo, colour Doppler)."""
    levels = np.clip(grey, 0, 255).astype(np.int32).ravel()
    flat = rgb.reshape(-1, 3).astype(np.float32)
    order = np.argsort(levels, kind="stable")
    bounds = np.searchsorted(levels[order], np.arange(257))
    present = np.flatnonzero(np.diff(bounds))
    lut = np.zeros((256, 3), np.float32)
    for level in present:
        lut[level] = np.median(flat[order[bounds[level]:bounds[level + 1]]], axis=0)
    for c in range(3):  # levels no pixel has: between their neighbours
        lut[:, c] = np.interp(np.arange(256), present, lut[present, c])
    # a colour map changes smoothly with grey level: a colour patch that owns a few levels (a Doppler box, a
    # logo) is not part of it
    lut = median_filter(lut, size=(TINT_SMOOTH_LEVELS, 1), mode="nearest")
    departure = np.linalg.norm(flat - lut[levels], axis=1)
    return (departure > TINT_TOLERANCE).reshape(grey.shape)


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """The statistics the check uses, from an ``H x W x 3`` uint8 RGB array."""
    work = _working_copy(rgb)
    hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)
    grey = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    saturated = (hsv[..., 1] > 60) & (hsv[..., 2] > 50)
    background = float((grey <= BACKGROUND_LEVEL).mean())
    median = float(np.median(grey))
    # a dark image in one hue: colour that follows brightness is the scanner's colour map, not a photo's
    display = median <= TINT_MAX_MEDIAN and _hue_spread(hsv, saturated) <= TINT_MAX_HUE_SPREAD
    colour = saturated & _off_tint(work, grey) if display else saturated
    return {
        "colour_fraction": float(colour.mean()),
        "saturated_fraction": float(saturated.mean()),
        "white_fraction": float((grey >= WHITE_LEVEL).mean()),
        "background_fraction": background,
        "median_grey": median,
        "grey_std": float(grey.std()),
        "neighbour_correlation": _neighbour_correlation(grey),
    }


def modality_reason(meta: dict[str, Any]) -> str | None:
    """Why an image's DICOM header says it is not ultrasound (from :attr:`UltrasoundImage.meta`'s ``modality``
    and ``sop_class_uid``), or ``None`` when it says ultrasound, says nothing, or is not a DICOM."""
    modality = str(meta.get("modality") or "").strip().upper()
    if modality in NON_ULTRASOUND_MODALITIES:
        return f"the DICOM says Modality {modality} ({NON_ULTRASOUND_MODALITIES[modality]}), not ultrasound"
    if modality in ULTRASOUND_MODALITIES:
        return None
    sop_class = str(meta.get("sop_class_uid") or "").strip()
    code = NON_ULTRASOUND_SOP_CLASSES.get(sop_class)
    if code is None:
        return None  # empty, OT, secondary capture, unknown: the pixels decide
    from pydicom.uid import UID

    return (f"the DICOM's SOP class is {UID(sop_class).name} ({NON_ULTRASOUND_MODALITIES[code]}), "
            "not ultrasound")


def ood_check(image: UltrasoundImage | np.ndarray, *, threshold: float = 0.5) -> OODResult:
    """Check whether ``image`` (an :class:`UltrasoundImage` or ``H x W [x 3]`` uint8 array) looks like
    B-mode ultrasound. Returns an :class:`OODResult`; ``flag`` True means it does not. A DICOM whose header
    names another technique (:func:`modality_reason`) is flagged whatever its pixels look like."""
    rgb = image.pixels if isinstance(image, UltrasoundImage) else np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("ood_check expects an UltrasoundImage or an H x W x 3 uint8 array")
    f = image_statistics(rgb)
    evidence = {
        "colour": _ramp(f["colour_fraction"], COLOUR_KNOTS),
        "white_page": _ramp(f["white_fraction"], WHITE_KNOTS),
        "bright": _ramp(f["median_grey"], MEDIAN_KNOTS),
        "no_structure": _ramp(f["neighbour_correlation"], CORRELATION_KNOTS),
        "blank": 1.0 if f["grey_std"] < BLANK_STD else 0.0,
    }
    header = modality_reason(image.meta) if isinstance(image, UltrasoundImage) else None
    evidence["modality"] = 1.0 if header else 0.0
    sentences = {
        "colour": f"{f['colour_fraction']:.0%} of pixels are strongly coloured; B-mode ultrasound is grey "
                  "(is this a photo or a colour Doppler image?)",
        "white_page": f"{f['white_fraction']:.0%} of pixels are near-white; B-mode ultrasound is mostly dark "
                      "(is this a document or a screenshot of a page?)",
        "bright": f"median grey level is {f['median_grey']:.0f} of 255; B-mode ultrasound is mostly dark",
        "no_structure": f"neighbouring pixels are almost unrelated (correlation "
                        f"{f['neighbour_correlation']:.2f}); the image looks like random noise, not speckle "
                        "and anatomy",
        "blank": f"the image is blank (grey-level standard deviation {f['grey_std']:.1f})",
        "modality": header or "",
    }
    score = max(evidence.values())
    # the header first: when the file says CT, that is the reason that matters
    reasons = [sentences[k] for k in sorted(evidence, key=lambda k: k != "modality")
               if evidence[k] >= threshold and sentences[k]]
    return OODResult(
        flag=bool(score >= threshold),
        score=round(float(score), 4),
        reasons=reasons,
        features={k: round(v, 4) for k, v in f.items()},
        evidence={k: round(v, 4) for k, v in evidence.items()},
        threshold=threshold,
    )
