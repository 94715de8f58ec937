"""fetalscope's ellipse records in DICOM graphic coordinates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# fetalscope's pixel coordinates put the centre of the top-left pixel at (0, 0); DICOM's 2D coordinates put
# its top-left corner there, so the centre is at (0.5, 0.5)
PIXEL_CENTRE = 0.5


def ellipse_points(ellipse: dict[str, Any]) -> np.ndarray:
    """The four points of a DICOM ELLIPSE (major axis ends, then minor axis ends) as (column, row) of
    ``ellipse`` {cx, cy, a, b, angle_deg} (angle from +x towards +y)."""
    cx, cy = float(ellipse["cx"]) + PIXEL_CENTRE, float(ellipse["cy"]) + PIXEL_CENTRE
    a, b = float(ellipse["a"]), float(ellipse["b"])
    angle = math.radians(float(ellipse["angle_deg"]))
    if b > a:
        a, b, angle = b, a, angle + math.pi / 2
    ux, uy = math.cos(angle), math.sin(angle)
    return np.array([[cx - a * ux, cy - a * uy], [cx + a * ux, cy + a * uy],
                     [cx + b * uy, cy - b * ux], [cx - b * uy, cy + b * ux]], dtype=np.float32)


def box_points(box: dict[str, Any]) -> np.ndarray:
    """A detection box ``{"xyxy": [x0, y0, x1, y1]}`` (continuous image coordinates: 0 is the image's left
    and top edge, as DICOM's) as a closed DICOM POLYLINE of (column, row)."""
    x1, y1, x2, y2 = (float(v) for v in box["xyxy"])
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float32)
