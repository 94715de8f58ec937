"""The one explanation record: an attribution map, the class it explains, the model behind it and its overlay.

Every face shows explanations through :class:`ExplanationResult`: ``POST /v1/explain`` returns its
:meth:`~ExplanationResult.to_dict` (or its PNG), the app shows its overlay and caption, ``fetalscope explain``
writes :meth:`~ExplanationResult.save` files and an index of the same records. One field name for the class
(``target_label``; ``target_class`` is kept beside it as an alias for one release) and one overlay rule
(:func:`fetalscope.explain.overlay.model_region`: the region the model saw, at most 512 px, opacity 0.5 unless
the caller asks otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.explain.overlay import (
    DEFAULT_CMAP,
    DEFAULT_SIGNED_CMAP,
    display_range,
    fit_map,
    png_bytes,
    save_map,
    with_colour_scale,
)
from fetalscope.explain.runner import file_slug
from fetalscope.explain.types import Explanation
from fetalscope.imaging.loader import UltrasoundImage

METHOD_TITLES = {
    "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "guided_backprop": "Guided Backprop",
    "guided_gradcam": "Guided Grad-CAM", "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion", "lime": "LIME", "saliency": "Saliency",
}
EXPLAIN_MODELS = ("plane", "brain_findings")  # the predictions a session can explain


def explain_model_name(model: str | None) -> str:
    """A ``model`` field as given (any case, ``-`` or ``_``) -> its :data:`EXPLAIN_MODELS` spelling."""
    return str(model or "plane").strip().lower().replace("-", "_")


@dataclass
class ExplanationResult:
    """One explanation of one image.

    - ``explanation``: the :class:`~fetalscope.explain.Explanation` (map at the model's input size, method,
      parameters, time);
    - ``target_label``: the class explained, by name;
    - ``region``: the image region the model saw (``H x W x 3`` uint8, at most 512 px) and ``overlay``: the
      map drawn on it;
    - ``explains``: the prediction explained (``plane`` or ``brain_findings``) and ``model`` its model
      (``id``, ``version``, ``task``, ``runtime``); for the brain findings, ``status`` and ``warning`` are the
      model card's own and ``note`` says when the image is not one the findings model is meant for;
    - ``crop_xyxy``: the box of the original image the model saw (its record's ``to_original`` says how a map
      pixel maps back to the original pixels).
    """

    explanation: Explanation
    target_label: str
    region: np.ndarray = field(repr=False)
    overlay: np.ndarray = field(repr=False)
    explains: str = "plane"
    model: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    warning: str | None = None
    note: str | None = None
    crop_xyxy: tuple[int, int, int, int] | None = None
    cmap: str | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        """The map values at the two ends of the overlay's colour map (symmetric around 0 for signed maps)."""
        return display_range(fit_map(self.explanation.map, self.overlay.shape), bool(self.explanation.signed))

    def with_scale(self) -> np.ndarray:
        """The overlay with its colour scale beside it, which states the range (what the app and the report
        show)."""
        return with_colour_scale(self.overlay, bool(self.explanation.signed), self.cmap, self.value_range)

    @property
    def method(self) -> str:
        return self.explanation.method

    @property
    def title(self) -> str:
        return METHOD_TITLES.get(self.method, self.method)

    def to_dict(self, include_map: bool = False) -> dict[str, Any]:
        """The JSON record (the map itself, rounded, only with ``include_map``)."""
        d = self.explanation.to_dict()
        if include_map:
            d["map"] = np.round(self.explanation.map.astype(np.float64), 5).tolist()
        d["target_label"] = self.target_label
        d["target_class"] = self.target_label  # alias of target_label for one release (the CLI index's old name)
        d["title"] = self.title
        d["explains"] = self.explains
        d["model"] = dict(self.model)
        signed = bool(self.explanation.signed)
        d["colour_scale"] = {"cmap": self.cmap or (DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP),
                             "range": [round(v, 8) for v in self.value_range], "symmetric": signed}
        if self.crop_xyxy is not None:  # how the map (at the model's input size) lies on the original image
            h, w = self.explanation.shape
            d["to_original"] = {
                "crop_xyxy": [int(v) for v in self.crop_xyxy], "map_size": [h, w],
                "rule": "map pixel (row i, column j) covers the original pixel x = x0 + (j + 0.5) * (x1 - x0) / W "
                        "- 0.5, y = y0 + (i + 0.5) * (y1 - y0) / H - 0.5 (crop_xyxy = [x0, y0, x1, y1], "
                        "map_size = [H, W])"}
        if self.explains != "plane":  # the findings model's card caution travels with its maps
            d.update(status=self.status, warning=self.warning, note=self.note)
        return d

    def save(self, folder: str | Path, stem: str) -> dict[str, str]:
        """Write ``<stem>_<method>.png`` (the overlay) and ``<stem>_<method>.npy`` (the raw ``H x W`` float32
        map) into ``folder``; returns their file names as ``{"overlay": ..., "array": ...}``."""
        folder = Path(folder)
        base = f"{stem}_{file_slug(self.method)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{base}.png").write_bytes(png_bytes(self.overlay))
        save_map(folder / f"{base}.npy", self.explanation.map)
        return {"overlay": f"{base}.png", "array": f"{base}.npy"}


@dataclass
class ExplainedImage:
    """The explanations of one image (:meth:`~fetalscope.pipeline.session.Session.explain_many`): the image,
    one :class:`ExplanationResult` per method, and the explained model's calibrated probabilities by class."""

    image: UltrasoundImage = field(repr=False)
    results: list[ExplanationResult]
    probabilities: dict[str, float]

    @property
    def predicted(self) -> str:
        return max(self.probabilities, key=lambda c: self.probabilities[c])
