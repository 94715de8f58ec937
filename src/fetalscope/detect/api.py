"""Entry points for the faces (CLI ``fetalscope detect``, the API and the app): load a detector bundle once,
detect brain structures in images (the bundle applies its operating threshold and plausibility rules, see
:meth:`~fetalscope.detect.bundle_io.DetectorBundle.detect`), draw boxes, write JSON."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fetalscope.detect.bundle_io import DEFAULT_BUNDLE, DetectorBundle, load_detector
from fetalscope.detect.skull import SkullEllipse
from fetalscope.detect.types import Box
from fetalscope.errors import BadInputError
from fetalscope.imaging.loader import UltrasoundImage

# BGR-free: colours are RGB because images are RGB throughout fetalscope
COLOURS: dict[str, tuple[int, int, int]] = {
    "MIDLINE_FALX": (66, 135, 245),
    "CSP": (60, 200, 75),
    "CHOROID_PLEXUS": (240, 70, 70),
}
SKULL_COLOUR = (150, 150, 150)
SKULL_LABEL = "skull region (estimate, for plausibility)"
_FALLBACK = [(255, 200, 0), (200, 0, 255), (0, 220, 220), (255, 128, 0)]


@lru_cache(maxsize=4)
def _cached_bundle(key: str) -> DetectorBundle:
    return load_detector(key)


def get_bundle(bundle: str | Path | DetectorBundle = DEFAULT_BUNDLE) -> DetectorBundle:
    """A loaded detector bundle (loaded once per process for names and paths)."""
    if isinstance(bundle, DetectorBundle):
        return bundle
    return _cached_bundle(str(bundle))


def detect_image(
    image: UltrasoundImage,
    bundle: str | Path | DetectorBundle = DEFAULT_BUNDLE,
    score_threshold: float | None = None,
) -> dict[str, Any]:
    """Detect structures in one image. Returns a JSON-ready record:

    - ``image``, ``width``, ``height``, ``model``, ``score_threshold``;
    - ``boxes``: plausible boxes at the threshold, ``[{label, score, xyxy}]`` in original pixels;
    - ``plausibility``: rule outcome of the *raw* boxes at the threshold (``plausible``,
      ``violations``, ``counts``, ``skull_found``, ``skull``) and ``removed``: boxes the filter dropped.
    """
    return get_bundle(bundle).detect(image, score_threshold)


def draw_boxes(
    rgb: np.ndarray,
    boxes: Sequence[Box | dict[str, Any]],
    *,
    skull: SkullEllipse | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of ``rgb`` (``H x W x 3`` uint8) with labelled boxes (and the skull ellipse, if given)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError("draw_boxes expects an H x W x 3 uint8 RGB image")
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    t = thickness or max(1, round(max(h, w) / 320))
    scale = max(0.35, max(h, w) / 1400)
    if skull is not None:
        cv2.ellipse(out, skull.cv2_box(), SKULL_COLOUR, max(1, t - 1), cv2.LINE_4)
        # named, so it is not taken for a measured head ellipse (it only bounds the plausibility check)
        (tw, th), _ = cv2.getTextSize(SKULL_LABEL, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = int(np.clip(skull.cx - tw / 2, 0, max(0, w - tw - 1)))
        y = int(np.clip(skull.cy + skull.height / 2 + th + 4, th + 2, h - 3))
        cv2.putText(out, SKULL_LABEL, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, SKULL_COLOUR, 1, cv2.LINE_AA)
    for index, item in enumerate(boxes):
        box = item if isinstance(item, Box) else Box.from_dict(item)
        colour = COLOURS.get(box.label, _FALLBACK[index % len(_FALLBACK)])
        p0 = (int(round(box.x0)), int(round(box.y0)))
        p1 = (int(round(box.x1)), int(round(box.y1)))
        cv2.rectangle(out, p0, p1, colour, t, cv2.LINE_8)
        text = f"{box.label} {box.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = p0[1] - 3 if p0[1] - th - base - 3 >= 0 else min(h - 1, p0[1] + th + 3)
        cv2.rectangle(out, (p0[0], ty - th - 2), (min(w - 1, p0[0] + tw + 2), ty + base - 1), colour, -1)
        cv2.putText(
            out, text, (p0[0] + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out
