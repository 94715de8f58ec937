"""The result of one attribution method on one image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Explanation:
    """One attribution map for one image and one target class.

    - ``map``: ``H x W`` float32 at the model's input resolution (the preprocessed image's size).
      Higher means more evidence *for* ``target``; ``signed`` maps (Integrated Gradients,
      occlusion, LIME) also hold negative evidence below zero.
    - ``target``: the class index explained; ``probability``: the model's softmax probability of it.
    - ``method``: canonical method name (see :func:`fetalscope.explain.list_methods`).
    - ``params``: every parameter the method ran with (defaults filled in), JSON-serialisable.
    - ``seconds``: wall time of the method for this image (a batch's time divided by its size).
    - ``extra``: method-specific facts, e.g. the Integrated Gradients completeness check.
    """

    map: np.ndarray
    target: int
    method: str
    params: dict[str, Any]
    seconds: float
    probability: float | None = None
    signed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.map.shape[0]), int(self.map.shape[1]))

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        """JSON-ready record (the map itself only when ``include_map``; it is large)."""
        d: dict[str, Any] = {
            "method": self.method,
            "target": int(self.target),
            "probability": None if self.probability is None else float(self.probability),
            "signed": bool(self.signed),
            "shape": list(self.shape),
            "seconds": float(self.seconds),
            "params": dict(self.params),
            "extra": dict(self.extra),
        }
        if include_map:
            d["map"] = self.map.tolist()
        return d
