"""Default detector backend: torchvision Faster R-CNN on a MobileNetV2 + FPN backbone (BSD-3-Clause code).

The backbone starts from the offline ImageNet MobileNetV2 (the quantised TFLite file in
``shared/weights``, converted by :mod:`fetalscope.models.weights.tflite_mobilenet_v2`, Apache-2.0
weights). Nothing is downloaded: torchvision builders are always called with ``weights=None``.

Design, for small axial head images (HC18 at 640 x 432) with large, elongated structures:

- input: the image's shorter side resized to ``min_size`` (320 by default), pixels scaled to [-1, 1]
  as the TFLite MobileNetV2 expects (``image_mean = image_std = 0.5``);
- backbone: MobileNetV2 ``features[0:18]`` with FrozenBatchNorm (the TFLite BatchNorms are folded
  identities), FPN over the stride-8/16/32 stages (32/96/320 channels) plus a max-pool level;
- anchors one size per level (32, 64, 128, 256 px) and aspect ratios h/w 0.25..2, because the
  midline falx is a long, thin box (h/w about 0.2-0.35);
- a small box head (FPN 128 channels, 256-d MLP) so the bundle stays well under 25 MB.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from fetalscope.detect.types import Box
from fetalscope.errors import BadInputError
from fetalscope.imaging.loader import UltrasoundImage

ARCH = "fasterrcnn_mobilenet_v2_fpn"
BACKBONE_LICENCE = (
    "Apache-2.0 (MobileNetV2 ImageNet weights, google-coral/test_data; ImageNet research-use terms apply)"
)
CODE_LICENCE = "BSD-3-Clause (torchvision)"
# MobileNetV2 feature indices whose outputs feed the FPN (strides 8, 16, 32)
RETURN_LAYERS = {"6": "0", "13": "1", "17": "2"}
RETURN_CHANNELS = [32, 96, 320]


@dataclass
class DetectorConfig:
    """Architecture and inference settings of the torchvision detector (stored in the bundle card)."""

    arch: str = ARCH
    min_size: int = 320
    max_size: int = 640
    width_mult: float = 1.0
    fpn_channels: int = 128
    representation_size: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256)
    aspect_ratios: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    trainable_backbone_layers: int = (
        5  # MobileNetV2 feature blocks to fine-tune, counted from the top (0..18)
    )
    min_score: float = 0.01  # boxes below this are never returned (mAP needs low-score boxes)
    nms_iou: float = 0.5
    detections_per_img: int = 30
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("anchor_sizes", "aspect_ratios", "image_mean", "image_std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("anchor_sizes", "aspect_ratios", "image_mean", "image_std"):
            if key in known:
                known[key] = tuple(known[key])
        if known.get("arch", ARCH) != ARCH:
            raise BadInputError(
                f"unknown torchvision detector architecture '{known['arch']}'; expected {ARCH}"
            )
        return cls(**known)


def _backbone(cfg: DetectorConfig, pretrained: bool) -> BackboneWithFPN:
    net = mobilenet_v2(weights=None, width_mult=cfg.width_mult, norm_layer=FrozenBatchNorm2d)
    if pretrained:
        if cfg.width_mult != 1.0:
            raise BadInputError("ImageNet MobileNetV2 weights exist only for width_mult=1.0")
        from fetalscope.models.weights.tflite_mobilenet_v2 import cached_state_dict

        state = {k: v for k, v in cached_state_dict().items() if not k.endswith("num_batches_tracked")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
            raise RuntimeError(
                f"MobileNetV2 weights did not fit: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    features = net.features[:18]
    # freeze all but the last ``trainable_backbone_layers`` feature blocks
    n_blocks = len(features)
    first_trainable = n_blocks - max(0, min(cfg.trainable_backbone_layers, n_blocks))
    for index, block in enumerate(features):
        for p in block.parameters():
            p.requires_grad_(index >= first_trainable)
    channels = [_out_channels(features[int(i)]) for i in RETURN_LAYERS]
    return BackboneWithFPN(
        features,
        return_layers=RETURN_LAYERS,
        in_channels_list=channels,
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


def build_detector(
    num_classes: int, cfg: DetectorConfig | None = None, *, pretrained: bool = False
) -> FasterRCNN:
    """Faster R-CNN for ``num_classes`` object classes (background is added internally).

    ``pretrained=True`` initialises the backbone from the offline ImageNet MobileNetV2 (raises
    :class:`~fetalscope.errors.MissingWeightsError` when the TFLite file is absent).
    """
    cfg = cfg or DetectorConfig()
    if num_classes < 1:
        raise BadInputError(f"a detector needs at least one class, got {num_classes}")
    backbone = _backbone(cfg, pretrained)
    n_maps = len(RETURN_LAYERS) + 1  # + the max-pool level
    sizes = tuple(cfg.anchor_sizes)
    if len(sizes) != n_maps:
        raise BadInputError(f"anchor_sizes needs {n_maps} values (one per feature level), got {sizes}")
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in sizes), aspect_ratios=(tuple(cfg.aspect_ratios),) * n_maps
    )
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.representation_size)
    predictor = FastRCNNPredictor(cfg.representation_size, num_classes + 1)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        image_mean=list(cfg.image_mean),
        image_std=list(cfg.image_std),
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=predictor,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        box_score_thresh=cfg.min_score,
        box_nms_thresh=cfg.nms_iou,
        box_detections_per_img=cfg.detections_per_img,
    )


def image_to_tensor(image: UltrasoundImage | np.ndarray) -> torch.Tensor:
    """``H x W x 3`` uint8 RGB to the ``3 x H x W`` float tensor in [0, 1] that torchvision detectors take."""
    rgb = image.pixels if isinstance(image, UltrasoundImage) else image
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if not rgb.flags.writeable or not rgb.flags.c_contiguous:
        rgb = np.array(rgb, copy=True, order="C")
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


class TorchvisionDetector:
    """A trained :func:`build_detector` model behind the :class:`~fetalscope.detect.types.Detector` face."""

    def __init__(self, model: FasterRCNN, classes: tuple[str, ...] | list[str], cfg: DetectorConfig) -> None:
        self.model = model.eval()
        self.classes = tuple(classes)
        self.cfg = cfg

    @torch.inference_mode()
    def predict_batch(self, images: list[UltrasoundImage]) -> list[list[Box]]:
        if not images:
            return []
        outputs = self.model([image_to_tensor(im) for im in images])
        return [self._boxes(out) for out in outputs]

    def predict(self, image: UltrasoundImage) -> list[Box]:
        return self.predict_batch([image])[0]

    def _boxes(self, out: dict[str, torch.Tensor]) -> list[Box]:
        boxes = []
        for xyxy, score, label in zip(
            out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist(), strict=True
        ):
            boxes.append(Box(self.classes[int(label) - 1], float(score), *(float(v) for v in xyxy)))
        return sorted(boxes, key=lambda b: -b.score)

    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        return self.model.state_dict()
