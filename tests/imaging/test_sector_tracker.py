"""The sector of a clip is searched once and reused while the layout holds; a new layout is searched again."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fetalscope.imaging.loader import load_image
from fetalscope.imaging.sector import find_sector
from fetalscope.imaging.sector_tracker import SectorTracker

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"


def _framed(rgb: np.ndarray, canvas: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """``rgb`` pasted on a black screen of ``canvas`` (h, w) at ``at`` (y, x), with a white caption."""
    screen = np.zeros((*canvas, 3), np.uint8)
    h, w = rgb.shape[:2]
    screen[at[0]:at[0] + h, at[1]:at[1] + w] = rgb
    cv2.putText(screen, "GA 22w", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return screen


def test_one_search_for_frames_of_one_layout_and_a_new_search_when_it_changes() -> None:
    still = cv2.resize(load_image(EXAMPLES / "phantom_fetal_brain.png").pixels, (200, 150))
    rng = np.random.default_rng(0)
    frames = [_framed(np.clip(still.astype(np.int16) + rng.integers(-8, 9, still.shape), 0, 255).astype(np.uint8),
                      (240, 320), (60, 80)) for _ in range(10)]
    tracker = SectorTracker()
    boxes = [tracker.box(f) for f in frames]
    assert tracker.searches == 1 and tracker.frames == 10
    assert boxes[-1] == find_sector(frames[0])
    fresh = find_sector(frames[-1])  # the kept box is the one a search on a later frame finds, within a pixel
    kept = (boxes[-1].y0, boxes[-1].y1, boxes[-1].x0, boxes[-1].x1)
    assert max(abs(a - b) for a, b in zip(kept, (fresh.y0, fresh.y1, fresh.x0, fresh.x1), strict=True)) <= 1
    moved = _framed(still, (240, 320), (10, 10))  # the image moved on the screen: another layout
    box = tracker.box(moved)
    assert tracker.searches == 2 and box == find_sector(moved) and box.y0 < 20
    tracker.box(cv2.resize(moved, (160, 120)))  # another frame size is always searched
    assert tracker.searches == 3
