"""The scan sector of a clip, found once and reused while the frames keep their layout.

Finding the sector (:func:`fetalscope.imaging.sector.find_sector`) costs a few milliseconds a frame; in a cine
loop or a live stream the fan stays where it is while the anatomy inside it moves. :class:`SectorTracker` keeps
the box of the last search with a small signature of that frame (which pixels are display background, on a
copy of :data:`SIGNATURE_SIDE` px) and searches again only when the frame size changes or the signature's
overlap with the kept one (intersection over union) falls below ``min_iou`` (another scanner layout, a zoom,
a new image)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fetalscope.imaging.sector import DARK_LEVEL, SectorBox, find_sector

SIGNATURE_SIDE = 64  # longest side of the copy the layout signature is taken on
# Less overlap than MIN_IOU means a new layout: search again. On sweeps whose whole screen drifts (data/sweeps.py),
# 0.9 searched on 39% of the frames and lost 4 of 229 frames' planes against a search on every frame; 0.95 searched
# on 74-78% and matched it exactly (8 sweeps each of test- and calibration-split stills). A scanner's fan does not
# move on screen, so a real clip is searched about once per layout either way.
MIN_IOU = 0.95


def layout_signature(rgb: np.ndarray, side: int = SIGNATURE_SIDE) -> np.ndarray:
    """Boolean mask of the non-background pixels of a copy of ``rgb`` reduced to ``side`` px (longest side)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
    return grey > DARK_LEVEL


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@dataclass
class SectorTracker:
    """``box(rgb)``: the sector of this frame, searched again only when the layout changed. ``searches`` counts
    the searches made (the rest reused a box)."""

    min_iou: float = MIN_IOU
    searches: int = 0
    frames: int = 0
    _box: SectorBox | None = field(default=None, repr=False)
    _shape: tuple[int, ...] = field(default=(), repr=False)
    _signature: np.ndarray | None = field(default=None, repr=False)

    def box(self, rgb: np.ndarray) -> SectorBox:
        self.frames += 1
        signature = layout_signature(rgb)
        if (self._box is None or rgb.shape != self._shape or self._signature is None
                or _iou(signature, self._signature) < self.min_iou):
            self._box = find_sector(rgb)
            self._shape, self._signature = rgb.shape, signature
            self.searches += 1
        return self._box

    def reset(self) -> None:
        self._box, self._shape, self._signature = None, (), None
