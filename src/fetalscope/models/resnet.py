"""ResNet-18 classifier (torchvision) with a dropout + Linear head.

No ImageNet ResNet-18 weights exist offline, so ``pretrained=True`` needs ``weights_path=`` pointing at a
local torchvision-format state dict (``.pth`` or ``.safetensors``); its ``fc.*`` entries are ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18

from fetalscope.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from fetalscope.errors import MissingWeightsError
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import register_model
from fetalscope.models.spec import ModelSpec

SPEC = ModelSpec(
    name="resnet18",
    preprocess=PreprocessConfig(input_size=(224, 224), channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    gradcam_layer="backbone.layer4",
    base_weights="none offline; a local torchvision resnet18 state dict via weights_path=",
    licence="depends on the supplied weights",
    weights_hint="create_model('resnet18', n, pretrained=True, weights_path='resnet18.pth')",
    description="torchvision ResNet-18, dropout + linear head",
    tags=("resnet",),
)


class ResNetBackbone(nn.Module):
    """torchvision ResNet without ``fc``: ``stem`` -> ``layer1..4`` -> ``pool`` (512-d vector)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.num_features = int(net.fc.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.pool(x)


def load_torchvision_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision-format ResNet state dict from ``.pth``/``.pt`` or ``.safetensors`` (``fc.*`` dropped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"resnet18 weights_path {path} does not exist; pass a local state dict file.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items() if not k.startswith(("fc.", "module.fc."))}


@register_model(SPEC)
def resnet18(num_classes: int, pretrained: bool = False, weights_path: str | None = None,
             drop_rate: float = 0.0) -> FetalscopeClassifier:
    net = tv_resnet18(weights=None)
    if pretrained or weights_path:
        if not weights_path:
            raise MissingWeightsError(
                "no ImageNet ResNet-18 weights are available offline (torchvision would download them, "
                "which fetalscope never does). Supply a local torchvision resnet18 state dict with "
                "create_model('resnet18', num_classes, pretrained=True, "
                "weights_path='path/to/resnet18.pth'), "
                "or use pretrained=False, or pick efficientnet_lite0 / fetalnet, which have offline weights."
            )
        state = load_torchvision_state_dict(weights_path)
        try:
            result = net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise MissingWeightsError(
                f"{weights_path} is not a torchvision resnet18 state dict: {exc}") from exc
        missing = [k for k in result.missing_keys if not k.startswith("fc.")]
        if missing or result.unexpected_keys:
            raise MissingWeightsError(
                f"{weights_path} is not a torchvision resnet18 state dict: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}."
            )
    backbone = ResNetBackbone(net)
    head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(backbone.num_features, num_classes))
    blocks = [f"backbone.{n}" for n in ("stem", "layer1", "layer2", "layer3", "layer4")]
    return FetalscopeClassifier(backbone, head, SPEC, num_classes, blocks=blocks)
