"""Measurements routed by plane: head images -> head biometry, thorax images -> cardiothoracic ratio."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.imaging import iter_image_paths, load_image
from fetalscope.imaging.loader import UltrasoundImage

WHAT_BY_PLANE = {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}
CHOICES = ("auto", "head", "cardiothoracic")


class PlaneRoutedMeasurer:
    """Runs the plane model when it must (``what="auto"``, or the thorax quality gate), then measures."""

    def __init__(self, what: str = "auto", plane_model: str | Path | None = None, runtime: str = "auto") -> None:
        if what not in CHOICES:
            raise BadInputError(f"--what must be one of {', '.join(CHOICES)}, got '{what}'")
        self.what = what
        self.plane_model = plane_model
        self.runtime = runtime
        self._analyser = None

    def _plane(self, image: UltrasoundImage) -> tuple[str | None, float | None]:
        from fetalscope.pipeline.analyser import DEFAULT_PLANE_MODEL, Analyser

        if self._analyser is None:
            self._analyser = Analyser(self.plane_model or DEFAULT_PLANE_MODEL, runtime=self.runtime,
                                      brain_plane_model=None, brain_findings_model=None)
        analysis = self._analyser.analyse(image)
        return analysis.plane, analysis.plane_probability

    def measure(self, image: UltrasoundImage, pixel_size_mm: float | None = None) -> dict[str, Any]:
        from fetalscope.biometry.measure import measure_image

        plane, prob = self._plane(image) if self.what in ("auto", "cardiothoracic") else (None, None)
        what = self.what
        if what == "auto":
            what = WHAT_BY_PLANE.get(plane or "", "")
            if not what:
                return {"image": image.source, "measurement": None, "quality": "not_measured", "plane": plane,
                        "plane_probability": prob,
                        "flags": [f"no measurement for a '{plane}' image: head biometry needs a Fetal brain "
                                  "(trans-thalamic) plane, the cardiothoracic ratio a Fetal thorax plane; "
                                  "force one with --what"]}
        record = measure_image(image, what, pixel_size_mm, plane=plane, plane_probability=prob,
                               runtime=self.runtime)
        if plane is not None:
            record.setdefault("plane", plane)
            record.setdefault("plane_probability", prob)
        return record


def measure_paths(paths: Iterable[str | Path], what: str = "auto", pixel_size_mm: float | None = None,
                  plane_model: str | Path | None = None, runtime: str = "auto") -> list[dict[str, Any]]:
    """One record per image of ``paths`` (files and folders)."""
    if pixel_size_mm is not None and not pixel_size_mm > 0:
        raise BadInputError(f"--pixel-size must be a positive number of millimetres, got {pixel_size_mm}")
    measurer = PlaneRoutedMeasurer(what, plane_model, runtime)
    return [measurer.measure(load_image(p), pixel_size_mm) for p in iter_image_paths(list(paths))]
