"""FetalNet-style classifier: MobileNetV2 features + conv/SE attention head.

Backbone: torchvision ``mobilenet_v2`` ``features`` (1280 x H/32 x W/32). ``pretrained=True`` loads the
ImageNet weights converted from the quantised TFLite file in shared/weights
(:mod:`fetalscope.models.weights.tflite_mobilenet_v2`).
Head: 3x3 conv (1280 -> ``head_channels``) + BN + ReLU, a squeeze-and-excitation block (``se=False``
replaces it by the identity, the "without SE" ablation), global average pool, dropout, Linear.
Inputs: RGB in [-1, 1] (mean 0.5, std 0.5 on [0, 1] pixels), 224 px.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import register_model
from fetalscope.models.spec import ModelSpec
from fetalscope.models.weights import tflite_mobilenet_v2

BACKBONE_CHANNELS = 1280


class FetalNetHead(nn.Module):
    """``conv`` (3x3 conv+BN+ReLU) -> ``se`` (squeeze-excitation or identity) -> pool -> dropout -> ``fc``."""

    def __init__(self, num_classes: int, in_channels: int = BACKBONE_CHANNELS, head_channels: int = 256,
                 se: bool = True, se_reduction: int = 4, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.conv = Conv2dNormActivation(in_channels, head_channels, kernel_size=3,
                                         activation_layer=nn.ReLU)
        self.se: nn.Module = (SqueezeExcitation(head_channels, max(8, head_channels // se_reduction))
                              if se else nn.Identity())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(self.se(self.conv(x)))))


SPEC = ModelSpec(
    name="fetalnet",
    preprocess=PreprocessConfig(input_size=(224, 224), channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    gradcam_layer="head.se",
    base_weights=f"MobileNetV2 1.0/224 ImageNet ({tflite_mobilenet_v2.SOURCE})",
    licence=tflite_mobilenet_v2.LICENCE,
    weights_hint=f"shared/weights/{tflite_mobilenet_v2.RELATIVE_PATH} (env FETALSCOPE_SHARED)",
    description="MobileNetV2 features + 3x3 conv/BN/ReLU + squeeze-excitation + pool + dropout + linear",
    tags=("imagenet", "mobilenet_v2", "attention"),
)


def imagenet_mobilenet_v2() -> nn.Module:
    """The full 1000-class ImageNet MobileNetV2 converted from the TFLite file (eval mode)."""
    return tflite_mobilenet_v2.imagenet_mobilenet_v2()


@register_model(SPEC)
def fetalnet(num_classes: int, pretrained: bool = False, se: bool = True, head_channels: int = 256,
             drop_rate: float = 0.2) -> FetalscopeClassifier:
    net = mobilenet_v2(weights=None, num_classes=1000)
    if pretrained:
        net.load_state_dict(tflite_mobilenet_v2.cached_state_dict())
    backbone = net.features
    head = FetalNetHead(num_classes, BACKBONE_CHANNELS, head_channels=head_channels, se=se,
                        drop_rate=drop_rate)
    blocks = [f"backbone.{i}" for i in range(len(backbone))]
    return FetalscopeClassifier(backbone, head, SPEC, num_classes, blocks=blocks)
