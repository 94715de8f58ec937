"""One image in, one measurement record out: the function behind ``fetalscope measure`` and
``POST /v1/measure``.

``measure_image(image, "head", pixel_size_mm=0.1)`` segments the head, fits its ellipse and reports
HC/BPD/OFD (mm) and the gestational age HC implies; ``measure_image(image, "cardiothoracic")``
segments heart and thorax, fits both ellipses and reports the CTR three ways, or says why not.
:func:`draw_measurement` draws a record on the image.

Post-processing happens at the model's resolution on probability maps (sigmoid), and the outline
is mapped to the original image before the ellipse fit, so every ellipse is in original pixels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from fetalscope.biometry.cardiothoracic import cardiothoracic_record, ctr_ratios
from fetalscope.biometry.ellipse import (
    Ellipse,
    draw_ellipse,
    fill_holes,
    fit_ellipse,
    largest_component,
    mean_ellipse,
)
from fetalscope.biometry.evidence import ctr_fit, head_fit
from fetalscope.biometry.head import check_pixel_size, head_measurements
from fetalscope.biometry.segbundle import SegBundle, load_seg_bundle
from fetalscope.biometry.uncertainty import IntervalRule, interval_label, views_sd
from fetalscope.config import DEFAULT_MODELS
from fetalscope.data.transforms import to_tensor
from fetalscope.errors import BadInputError, UnsupportedError
from fetalscope.imaging.loader import UltrasoundImage, iter_image_paths, load_image

Measurement = Literal["head", "cardiothoracic"]
DEFAULT_BUNDLES: dict[str, str] = {what: DEFAULT_MODELS[what] for what in ("head", "cardiothoracic")}
ALIASES = {"hc": "head", "head": "head", "cardiothoracic": "cardiothoracic", "ctr": "cardiothoracic",
           "heart": "cardiothoracic"}
HEAD_PLANE = "Fetal brain"
INTERVAL_KEYS = {"head": "hc_interval", "cardiothoracic": "ctr_interval"}  # the card's inference key per measurement
MIN_HEAD_AXIS_RATIO = 0.5


def measurement_name(what: str) -> str:
    key = str(what).strip().lower()
    if key not in ALIASES:
        raise BadInputError(f"unknown measurement '{what}'; choose 'head' or 'cardiothoracic'")
    return ALIASES[key]


class Measurer:
    """A loaded segmentation bundle and its runtime; ``measure(image)`` gives a record."""

    def __init__(self, what: str = "head", bundle: str | Path | SegBundle | None = None,
                 runtime: str = "auto") -> None:
        from fetalscope.models.runtime import make_predictor

        self.what = measurement_name(what)
        self.bundle = bundle if isinstance(bundle, SegBundle) else load_seg_bundle(bundle or DEFAULT_BUNDLES[self.what])
        served = self.bundle.measurement
        if served and served != self.what:
            raise BadInputError(f"bundle {self.bundle.name} measures '{served}', not '{self.what}'")
        needed = ("head",) if self.what == "head" else ("heart", "thorax")
        missing = [s for s in needed if s not in self.bundle.structures]
        if missing:
            raise UnsupportedError(f"bundle {self.bundle.name} does not segment {', '.join(missing)}")
        if self.bundle.preprocess.crop_sector:
            raise UnsupportedError(f"bundle {self.bundle.name} crops to the sector; segmentation bundles must "
                                   "see the whole image so that ellipses map back to it")
        self.predictor = make_predictor(self.bundle, runtime=runtime)  # type: ignore[arg-type]
        self.model_info = {"id": self.bundle.name, "version": str(self.bundle.card.get("version", "")),
                           "runtime": self.predictor.name}
        if self.bundle.card.get("revision") is not None:  # retrained weights of one version (the card's history)
            self.model_info["revision"] = int(self.bundle.card["revision"])
        inference = self.bundle.card.get("inference", {})
        # test-time augmentation: average the probabilities of the image and its mirror image
        self.flip_tta = bool(inference.get("flip_tta", False))
        # the ellipses averaged over several views of the image (:meth:`head_ellipse`, :meth:`ctr_ellipses`)
        self.ellipse_views = [str(v) for v in inference.get("ellipse_average", [])]
        # probability level of the measured head outline (the routing evidence keeps 0.5)
        self.head_level = float(inference.get("level", 0.5)) if self.what == "head" else 0.5
        # fit the head only where its outline is sharp (:func:`~fetalscope.biometry.ellipse.sharp_outline`)
        self.head_sharpness = float(inference.get("min_outline_sharpness", 0.0)) if self.what == "head" else 0.0
        if not 0.0 < self.head_level < 1.0:
            raise UnsupportedError(f"bundle {self.bundle.name}: inference level {self.head_level} is not in (0, 1)")
        # the interval of the HC or the circumference CTR, calibrated out of fold
        # (:mod:`fetalscope.biometry.uncertainty`); None: no interval
        key = INTERVAL_KEYS[self.what]
        try:
            self.interval_rule = IntervalRule.from_dict(inference[key]) if inference.get(key) else None
        except (TypeError, UnsupportedError) as exc:
            raise UnsupportedError(f"bundle {self.bundle.name}: bad inference.{key} ({exc})") from exc
        self._lock = threading.Lock()

    # ---- network -----------------------------------------------------------------------------------
    def probabilities(self, image: UltrasoundImage, flip: bool | None = None) -> dict[str, np.ndarray]:
        """Per-structure probability maps at the model's input size (``flip``: average with the mirror image's;
        default: the bundle's ``flip_tta``)."""
        flip = self.flip_tta if flip is None else flip
        x = to_tensor(image, self.bundle.preprocess).unsqueeze(0).numpy()
        if flip:
            x = np.concatenate([x, x[..., ::-1]], axis=0)
        probs = self._sigmoid(x)
        probs = (probs[0] + probs[1][..., ::-1]) / 2 if flip else probs[0]
        return {s: probs[i].astype(np.float32) for i, s in enumerate(self.bundle.structures)}

    def _sigmoid(self, x: np.ndarray) -> np.ndarray:
        """The network's per-structure probabilities (float64) of a batch of model inputs."""
        with self._lock:
            logits = self.predictor.predict_logits(np.ascontiguousarray(x))
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def _with_mirror(self, image: UltrasoundImage, plain: np.ndarray) -> np.ndarray:
        """The head probabilities of ``probabilities(image, flip=True)``, running only the mirror image:
        ``plain`` is the image's own head map, already computed."""
        x = to_tensor(image, self.bundle.preprocess).unsqueeze(0).numpy()[..., ::-1]
        mirrored = self._sigmoid(x)[0][self.bundle.structures.index("head")][..., ::-1]
        return ((plain.astype(np.float64) + mirrored) / 2).astype(np.float32)

    def crop_around(self, image: UltrasoundImage, around: Ellipse,
                    margin: float) -> tuple[UltrasoundImage, float, float]:
        """A crop of ``image`` around ``around`` (its major axis plus ``margin`` on each side, in the model's
        aspect ratio, zero-padded beyond the image) and the crop's top-left corner in image pixels."""
        h0, w0 = self.bundle.preprocess.input_size
        bh = bw = 2.0 * around.major * (1.0 + margin)
        bw, bh = (bh * w0 / h0, bh) if bw / bh < w0 / h0 else (bw, bw * h0 / w0)
        x0, y0 = around.cx - bw / 2.0, around.cy - bh / 2.0
        return crop_image(image, x0, y0, max(8, int(round(bw))), max(8, int(round(bh)))), x0, y0

    def zoomed_ellipse(self, image: UltrasoundImage, around: Ellipse, margin: float) -> Ellipse | None:
        """The head ellipse fitted on a crop around ``around`` (:meth:`crop_around`), mapped back to the image."""
        crop, x0, y0 = self.crop_around(image, around, margin)
        fitted = fit_ellipse(self.probabilities(crop, flip=False)["head"], out_shape=(crop.height, crop.width),
                             level=self.head_level, min_sharpness=self.head_sharpness)
        return _shifted(fitted, x0, y0)

    def head_ellipse(self, image: UltrasoundImage, probs: dict[str, np.ndarray]) -> Ellipse | None:
        """The head ellipse: fitted to ``probs``, then, when the bundle's ``inference.ellipse_average`` lists
        views, the mean of the ellipses of those views (:func:`~fetalscope.biometry.ellipse.mean_ellipse`):
        ``plain`` (the image), ``flip`` (probabilities averaged with the mirror image's), ``zoom:M`` (a crop
        around the plain ellipse with margin M, :meth:`zoomed_ellipse`). Every outline is traced at the bundle's
        ``inference.level`` (default 0.5) and fitted where it is sharp (``inference.min_outline_sharpness``)."""
        return self.head_views(image, probs)[0]

    def head_views(self, image: UltrasoundImage, probs: dict[str, np.ndarray]) -> tuple[Ellipse | None, list[Ellipse]]:
        """:meth:`head_ellipse` and the ellipses of the views it averaged (empty without views)."""
        shape = (image.height, image.width)
        level, sharp = self.head_level, self.head_sharpness
        base = fit_ellipse(probs["head"], out_shape=shape, level=level, min_sharpness=sharp)
        if base is None or not self.ellipse_views:
            return base, []
        plain = base if not self.flip_tta else fit_ellipse(self.probabilities(image, flip=False)["head"],
                                                           out_shape=shape, level=level, min_sharpness=sharp) or base
        fits: list[Ellipse | None] = []
        for view in self.ellipse_views:
            if view == "plain":
                fits.append(plain)
            elif view == "flip":
                fits.append(base if self.flip_tta else
                            fit_ellipse(self._with_mirror(image, probs["head"]), out_shape=shape, level=level,
                                        min_sharpness=sharp))
            elif view.startswith("zoom:"):
                fits.append(self.zoomed_ellipse(image, plain, float(view.split(":", 1)[1])))
            else:
                raise UnsupportedError(f"bundle {self.bundle.name}: unknown ellipse_average view '{view}'")
        found = [f for f in fits if f is not None]
        return mean_ellipse(found) or base, found

    def ellipses(self, image: UltrasoundImage, probs: dict[str, np.ndarray] | None = None, *,
                 refine: bool = True) -> dict[str, Ellipse | None]:
        """Fitted ellipses (original image pixels) of each structure the measurement needs (``refine=False``:
        the head ellipse of ``probs`` alone, without the bundle's view averaging)."""
        probs = probs if probs is not None else self.probabilities(image)
        shape = (image.height, image.width)
        if self.what == "head":
            return {"head": self.head_ellipse(image, probs) if refine else fit_ellipse(probs["head"], out_shape=shape)}
        plain = _heart_and_thorax(probs, shape)
        return self.ctr_ellipses(image, plain) if refine else plain

    def ctr_ellipses(self, image: UltrasoundImage, plain: dict[str, Ellipse | None]) -> dict[str, Ellipse | None]:
        """Heart and thorax ellipses: ``plain`` (those of the whole image) or, when the bundle's
        ``inference.ellipse_average`` lists views, per structure the mean of the ellipses of those views:
        ``plain`` and ``zoom:M`` (the image's probabilities on a crop around the plain thorax ellipse with
        margin M, :meth:`crop_around`: the thorax seen at a higher resolution)."""
        return self.ctr_views(image, plain)[0]

    def ctr_views(self, image: UltrasoundImage, plain: dict[str, Ellipse | None]
                  ) -> tuple[dict[str, Ellipse | None], list[dict[str, Ellipse | None]]]:
        """:meth:`ctr_ellipses` and the heart and thorax ellipses of each view it averaged (empty without
        views)."""
        if not self.ellipse_views or plain["thorax"] is None:
            return plain, []
        fits: list[dict[str, Ellipse | None]] = []
        for view in self.ellipse_views:
            if view == "plain":
                fits.append(plain)
            elif view.startswith("zoom:"):
                crop, x0, y0 = self.crop_around(image, plain["thorax"], float(view.split(":", 1)[1]))
                fitted = _heart_and_thorax(self.probabilities(crop), (crop.height, crop.width))
                fits.append({k: _shifted(e, x0, y0) for k, e in fitted.items()})
            else:
                raise UnsupportedError(f"bundle {self.bundle.name}: unknown ellipse_average view '{view}'")
        means = {k: mean_ellipse([f[k] for f in fits if f[k] is not None]) or plain[k] for k in ("heart", "thorax")}
        return means, fits

    def masks(self, image: UltrasoundImage, probs: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Raw masks at the original resolution (probability resized bilinearly, > 0.5, largest
        component; the heart restricted to the thorax)."""
        probs = probs if probs is not None else self.probabilities(image)
        size = (image.width, image.height)
        full = {s: cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) >= 0.5 for s, p in probs.items()}
        out = {}
        if "thorax" in full:
            out["thorax"] = fill_holes(largest_component(full["thorax"]))
            if "heart" in full:
                out["heart"] = largest_component(full["heart"] & out["thorax"])
        for s, m in full.items():
            out.setdefault(s, largest_component(m))
        return out

    def fit(self, image: UltrasoundImage, probs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """How much the segmentation looks like the structure measured (:mod:`fetalscope.biometry.evidence`):
        :func:`~fetalscope.biometry.evidence.head_fit` or :func:`~fetalscope.biometry.evidence.ctr_fit`."""
        probs = probs if probs is not None else self.probabilities(image)
        ellipses = self.ellipses(image, probs, refine=False)
        shape = (image.height, image.width)
        if self.what == "head":
            return head_fit(probs["head"], ellipses["head"], shape)
        return ctr_fit(probs["heart"], probs["thorax"], ellipses["heart"], ellipses["thorax"], shape)

    # ---- records -----------------------------------------------------------------------------------
    def measure(self, image: UltrasoundImage, pixel_size_mm: float | None = None, *, plane: str | None = None,
                plane_probability: float | None = None, probs: dict[str, np.ndarray] | None = None,
                reject: list[str] | None = None) -> dict[str, Any]:
        """The measurement record of one image (see :func:`measure_image`); ``probs``: this model's
        probabilities when the caller has them; ``reject``: reasons (flags) to reject the measurement for
        that came from elsewhere (e.g. the routing's evidence that the image is not this plane)."""
        t0 = time.perf_counter()
        record: dict[str, Any] = {"image": image.source, "measurement": self.what,
                                  "image_size": [image.width, image.height]}
        probs = probs if probs is not None else self.probabilities(image)
        if self.what == "head":
            head, views = self.head_views(image, probs)
            record.update(_head_record(head, image, pixel_size_mm, plane, plane_probability, reject))
            record.update(_hc_interval(record, views, self.interval_rule))
        else:
            ellipses, ctr_views = self.ctr_views(image, _heart_and_thorax(probs, (image.height, image.width)))
            record.update(cardiothoracic_record(ellipses["heart"], ellipses["thorax"], (image.height, image.width),
                                                plane=plane, plane_probability=plane_probability))
            if reject:
                record.update(ctr=None, quality="rejected",
                              flags=[*reject, *(f for f in record["flags"] if not f.startswith("ctr_"))])
            record.update(_ctr_interval(record, ctr_views, self.interval_rule))
        record["model"] = dict(self.model_info)
        record["timing_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return record


def crop_image(image: UltrasoundImage, x0: float, y0: float, width: int, height: int) -> UltrasoundImage:
    """The ``width`` x ``height`` window of ``image`` whose top-left corner is (``x0``, ``y0``) in image pixels
    (sub-pixel, bilinear; zero beyond the image)."""
    shift = np.array([[1, 0, -x0], [0, 1, -y0]], np.float32)
    crop = cv2.warpAffine(image.pixels, shift, (int(width), int(height)), flags=cv2.INTER_LINEAR, borderValue=0)
    return replace(image, pixels=crop)


def _shifted(e: Ellipse | None, dx: float, dy: float) -> Ellipse | None:
    return None if e is None else Ellipse(e.cx + dx, e.cy + dy, e.a, e.b, e.angle_deg)


def _heart_and_thorax(probs: dict[str, np.ndarray], shape: tuple[int, int]) -> dict[str, Ellipse | None]:
    """Heart and thorax ellipses (pixels of an image of ``shape``) of one view's probability maps: the thorax
    fitted to its largest region's soft boundary, the heart kept within (one pixel around) that region."""
    region = fill_holes(largest_component(probs["thorax"] >= 0.5))
    if not region.any():
        return {"heart": None, "thorax": None}
    # the fitter keeps the largest region itself and reads the soft boundary around it
    thorax = fit_ellipse(probs["thorax"], out_shape=shape)
    near = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    heart = fit_ellipse(np.where(near, probs["heart"], 0.0), out_shape=shape)  # the heart is kept inside the thorax
    return {"heart": heart, "thorax": thorax}


def _head_record(ellipse: Ellipse | None, image: UltrasoundImage, pixel_size_mm: float | None,
                 plane: str | None, plane_probability: float | None,
                 reject: list[str] | None = None) -> dict[str, Any]:
    flags: list[str] = list(reject or [])
    given = check_pixel_size(pixel_size_mm, "--pixel-size")
    dicom = image.pixel_spacing_mm if image.pixel_spacing_mm and image.pixel_spacing_mm > 0 else None
    pixel, source = (given, "argument") if given is not None else (dicom, "dicom") if dicom else (None, None)
    if given is not None and dicom and abs(given / dicom - 1) > 0.01:
        flags.append(f"pixel_size_overrides_dicom: using {given} mm given, the DICOM says {dicom:.5f} mm")
    if plane is not None and plane != HEAD_PLANE:
        flags.append(f"not_head_plane: the plane classifier calls this image '{plane}', not '{HEAD_PLANE}'")
    if plane_probability is not None and plane_probability < 0.5:
        flags.append(f"not_head_plane: head-plane probability {plane_probability:.2f} is below 0.5")
    record: dict[str, Any] = {"ellipse": None, "pixel_size_mm": pixel, "pixel_size_source": source,
                              "hc_mm": None, "bpd_mm": None, "ofd_mm": None, "ga_weeks": None, "ga": None,
                              "ga_formula": "Hadlock 1984 (HC)", "quality": "ok"}
    if ellipse is None:
        record["quality"] = "rejected"
        record["flags"] = [*flags, "head_not_found: no head region was segmented"]
        return record
    record["ellipse"] = ellipse.normalised().to_dict()
    if ellipse.axis_ratio() < MIN_HEAD_AXIS_RATIO:
        flags.append(f"head_implausible_shape: axis ratio {ellipse.axis_ratio():.2f} < {MIN_HEAD_AXIS_RATIO}")
    values = head_measurements(ellipse, pixel)
    flags += values.pop("flags")
    record.update(values)
    if reject or any(f.startswith(("not_head_plane", "head_implausible")) for f in flags):
        record["quality"] = "rejected"
        for key in ("hc_mm", "bpd_mm", "ofd_mm", "ga_weeks", "ga"):
            record[key] = None
    elif pixel is None:
        record["quality"] = "no_pixel_size"
    record["flags"] = flags
    return record


def hc_views_sd(views: list[Ellipse]) -> float:
    """The standard deviation of the HCs (pixels) of the views a head ellipse averages (0 for one view)."""
    return views_sd([v.circumference() for v in views])


def ctr_views_sd(views: list[dict[str, Ellipse | None]]) -> float | None:
    """The standard deviation of the circumference CTRs of the views a CTR averages (each view's own heart and
    thorax); None when no view has both."""
    values = [ctr_ratios(v["heart"], v["thorax"])["circumference"] for v in views
              if v["heart"] is not None and v["thorax"] is not None]
    return views_sd(values) if values else None


def _rounded_interval(rule: IntervalRule | None, value: float | None, spread: float | None, digits: int,
                      unit: str | None = None) -> tuple[list[float] | None, float | None]:
    """``rule``'s interval around ``value`` rounded to ``digits``, and its coverage; (None, None) without a rule,
    a value or a spread, or when the rule's numbers are in another unit."""
    if rule is None or value is None or spread is None:
        return None, None
    interval = rule.interval(value, spread, unit)
    return (None, None) if interval is None else ([round(x, digits) for x in interval], rule.coverage)


def _hc_interval(record: dict[str, Any], views: list[Ellipse], rule: IntervalRule | None) -> dict[str, Any]:
    """The spread of the views' HCs (pixels) and, where the bundle has a calibrated rule and the HC is reported in
    its unit, the HC interval (:mod:`fetalscope.biometry.uncertainty`)."""
    sd_px = hc_views_sd(views) if views else None
    pixel = record.get("pixel_size_mm")
    sd_mm = None if sd_px is None or pixel is None else sd_px * pixel
    interval, coverage = _rounded_interval(rule, record.get("hc_mm"), sd_mm, 2, unit="mm")
    return {"hc_views_sd_px": None if sd_px is None else round(sd_px, 2), "hc_interval_mm": interval,
            "hc_interval_coverage": coverage}


def _ctr_interval(record: dict[str, Any], views: list[dict[str, Ellipse | None]],
                  rule: IntervalRule | None) -> dict[str, Any]:
    """The spread of the views' circumference CTRs and, where the bundle has a calibrated rule and a CTR was given,
    its interval (:mod:`fetalscope.biometry.uncertainty`)."""
    sd = ctr_views_sd(views)
    interval, coverage = _rounded_interval(rule, (record.get("ctr") or {}).get("circumference"), sd, 4)
    return {"ctr_views_sd": None if sd is None else round(sd, 5), "ctr_interval": interval,
            "ctr_interval_coverage": coverage}


_CACHE: dict[tuple[str, str, str], Measurer] = {}
_CACHE_LOCK = threading.Lock()


def get_measurer(what: str = "head", bundle: str | Path | SegBundle | None = None, runtime: str = "auto") -> Measurer:
    """A cached :class:`Measurer` (one per measurement, bundle and runtime)."""
    what = measurement_name(what)
    if isinstance(bundle, SegBundle):
        return Measurer(what, bundle, runtime)
    key = (what, str(bundle or DEFAULT_BUNDLES[what]), runtime)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Measurer(what, bundle, runtime)
        return _CACHE[key]


def measure_image(image: UltrasoundImage | str | Path | bytes, what: Measurement | str = "head",
                  pixel_size_mm: float | None = None, bundle: str | Path | SegBundle | None = None, *,
                  plane: str | None = None, plane_probability: float | None = None,
                  runtime: str = "auto") -> dict[str, Any]:
    """Measure one image; returns a JSON-serialisable record.

    - ``what="head"``: ``ellipse`` {cx, cy, a, b, angle_deg} (pixels, a >= b), ``hc_mm``, ``bpd_mm``,
      ``ofd_mm``, ``ga_weeks``/``ga`` (Hadlock 1984), their ``*_px`` twins, ``pixel_size_mm`` and its
      ``pixel_size_source`` ("argument" | "dicom" | None). Without a pixel size the millimetres and
      GA are None, ``quality`` is "no_pixel_size" and a flag says how to give one; the ellipse is
      still returned (and drawn by :func:`draw_measurement`). ``hc_views_sd_px``: the standard deviation of
      the HCs of the views the ellipse averages; ``hc_interval_mm`` [low, high]: where the bundle carries a
      rule calibrated out of fold (card ``inference.hc_interval``), the interval that held the reference HC in
      ``hc_interval_coverage`` of unseen heads (:mod:`fetalscope.biometry.uncertainty`); None otherwise.
    - ``what="cardiothoracic"``: ``heart`` and ``thorax`` ellipses, ``ctr`` {circumference, area,
      diameter} or None when the quality gate fails (``quality`` "rejected", reasons in ``flags``);
      ``ctr_views_sd`` and, with a calibrated rule (card ``inference.ctr_interval``), ``ctr_interval`` [low, high]
      of the circumference CTR and its ``ctr_interval_coverage``.
      ``plane``/``plane_probability`` come from the plane classifier (thorax plane expected).
    - always: ``image``, ``measurement``, ``quality``, ``flags``, ``model`` {id, version, runtime},
      ``image_size`` [W, H], ``timing_ms``.
    """
    if not isinstance(image, UltrasoundImage):
        image = load_image(image)
    return get_measurer(what, bundle, runtime).measure(image, pixel_size_mm, plane=plane,
                                                      plane_probability=plane_probability)


def measure_paths(paths: Iterable[str | Path] | str | Path, what: Measurement | str = "head",
                  pixel_size_mm: float | None = None, bundle: str | Path | SegBundle | None = None, *,
                  runtime: str = "auto") -> list[dict[str, Any]]:
    """:func:`measure_image` over files and folders (folders expanded, sorted)."""
    measurer = get_measurer(what, bundle, runtime)
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return [measurer.measure(load_image(p), pixel_size_mm) for p in iter_image_paths(items)]


COLOURS = {"head": (255, 220, 0), "heart": (255, 64, 64), "thorax": (64, 200, 255)}


def draw_measurement(image: UltrasoundImage | np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """``H x W x 3`` uint8 RGB image with the record's ellipses (and a short label) drawn on it."""
    rgb = image.pixels if isinstance(image, UltrasoundImage) else np.asarray(image)
    out = np.ascontiguousarray(rgb.copy())
    if record.get("measurement") == "head":
        if record.get("ellipse"):
            e = Ellipse.from_dict(record["ellipse"])
            label = f"HC {record['hc_mm']:.1f}{interval_label(record, 'hc_interval_mm', 1, ' mm')}" \
                if record.get("hc_mm") is not None else f"HC {record.get('hc_px', 0):.0f} px (no pixel size)"
            out = draw_ellipse(out, e, COLOURS["head"], axes=True, label=label)
        return out
    for name in ("thorax", "heart"):
        if record.get(name):
            out = draw_ellipse(out, Ellipse.from_dict(record[name]), COLOURS[name], label=name)
    if record.get("ctr"):
        text = f"CTR {record['ctr']['circumference']:.3f}{interval_label(record, 'ctr_interval', 3)}"
        cv2.putText(out, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out
