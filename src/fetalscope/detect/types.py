"""The one interface every detector backend implements; it returns :class:`~fetalscope.data.boxes.Box` lists."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fetalscope.data.boxes import Box
from fetalscope.imaging.loader import UltrasoundImage

__all__ = ["Box", "Detector"]


@runtime_checkable
class Detector(Protocol):
    """A detector backend: class names and ``predict(image) -> boxes`` in original pixel coordinates.

    ``predict`` returns every box above the backend's minimum score (``min_score``, low, for mAP);
    applying the operating threshold and the plausibility filter is the caller's job.
    """

    classes: tuple[str, ...]

    def predict(self, image: UltrasoundImage) -> list[Box]: ...

    def predict_batch(self, images: list[UltrasoundImage]) -> list[list[Box]]: ...
