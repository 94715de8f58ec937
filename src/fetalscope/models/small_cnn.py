"""A tiny from-scratch CNN (~100k parameters) for baselines and fast tests.

Four blocks of 3x3 conv + BN + ReLU + 2x2 max-pool (widths 16-32-64-128 by default), global average
pool, dropout, Linear. Input size and channel count are options and flow into the instance's
``spec.preprocess`` (and so into its bundle card).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError, UnsupportedError
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import register_model
from fetalscope.models.spec import ModelSpec

SPEC = ModelSpec(
    name="small_cnn",
    preprocess=PreprocessConfig(input_size=(128, 128), channels=3, mean=(0.5, 0.5, 0.5),
                                std=(0.25, 0.25, 0.25)),
    gradcam_layer="backbone.block4",
    description="4-block from-scratch CNN (~100k parameters), configurable input size and channels",
    tags=("scratch", "baseline"),
)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallCNNBackbone(nn.Module):
    """``block1..block4`` then global average pool: returns a ``widths[-1]``-d vector."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise BadInputError(f"small_cnn needs 4 widths, got {widths}")
        chans = (in_chans, *widths)
        for i in range(4):
            self.add_module(f"block{i + 1}", _block(chans[i], chans[i + 1]))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.num_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.pool(x)


@register_model(SPEC)
def small_cnn(num_classes: int, pretrained: bool = False, input_size: int | tuple[int, int] = 128,
              in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128),
              drop_rate: float = 0.1) -> FetalscopeClassifier:
    if pretrained:
        raise UnsupportedError(
            "small_cnn has no pretrained weights (it is trained from scratch); use pretrained=False")
    if in_chans not in (1, 3):
        raise BadInputError(f"small_cnn in_chans must be 1 or 3, got {in_chans}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or min(size) < 16:
        raise BadInputError(f"small_cnn input_size must be >= 16 px (one int or (H, W)), got {input_size}")
    backbone = SmallCNNBackbone(in_chans, tuple(widths))
    head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(backbone.num_features, num_classes))
    spec = dataclasses.replace(SPEC, preprocess=SPEC.preprocess.replace(input_size=size, channels=in_chans))
    blocks = [f"backbone.block{i}" for i in range(1, 5)]
    return FetalscopeClassifier(backbone, head, spec, num_classes, blocks=blocks)
