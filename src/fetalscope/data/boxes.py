"""A plain box type: class name, confidence and corners in original-image pixels.

It lives in ``data`` because the detector backends (``detect``), the detection metrics
(``evaluate.detection``, which may not import ``detect``) and detector training (annotations turned into
boxes) all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Box:
    """One detected object: class name, confidence in [0, 1], corners in original-image pixels."""

    label: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def to_dict(self) -> dict[str, Any]:
        """``{"label", "score", "xyxy": [x0, y0, x1, y1]}`` rounded for JSON."""
        return {
            "label": self.label,
            "score": round(float(self.score), 4),
            "xyxy": [round(float(v), 1) for v in self.xyxy],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Box:
        if "xyxy" in d:
            x0, y0, x1, y1 = d["xyxy"]
        else:
            x0, y0, x1, y1 = d["x0"], d["y0"], d["x1"], d["y1"]
        return cls(str(d["label"]), float(d.get("score", 1.0)), float(x0), float(y0), float(x1), float(y1))
