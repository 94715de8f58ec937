"""What a consumer needs to know about an architecture, without building it."""

from __future__ import annotations

from dataclasses import dataclass, field

from fetalscope.data.transforms import PreprocessConfig


@dataclass(frozen=True)
class ModelSpec:
    """Static facts of a registered architecture.

    - ``preprocess``: how images become its input tensor.
    - ``gradcam_layer``: dotted module path (from the classifier root) of the default Grad-CAM layer.
    - ``base_weights`` / ``licence``: what ``pretrained=True`` loads and under which terms.
    - ``weights_hint``: how to supply the weights when they are missing.
    """

    name: str
    preprocess: PreprocessConfig
    gradcam_layer: str
    base_weights: str = "none (random initialisation)"
    licence: str = "n/a"
    weights_hint: str = ""
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
