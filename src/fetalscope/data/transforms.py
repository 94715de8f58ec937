"""How an image becomes a tensor: the per-model preprocessing recipe and its implementation.

A model's :class:`PreprocessConfig` lives in its bundle's ``card.json``; consumers never write a
mean/std or input size a second time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import torch

from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.imaging.sector import SectorBox, crop_to_sector
from fetalscope.imaging.sector_tracker import SectorTracker

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Normalisation = Literal["mean_std", "per_image_standardise"]


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to turn an :class:`UltrasoundImage` into a model input tensor.

    - ``input_size``: (height, width) fed to the model.
    - ``channels``: 1 (greyscale) or 3 (grey replicated / RGB).
    - ``normalisation``: ``mean_std`` uses ``mean``/``std`` on [0, 1] pixels;
      ``per_image_standardise`` computes ``(x - x.mean()) / x.std()`` per image (SonoNet).
    - ``scale``: multiplies the normalised tensor (SonoNet needs 255).
    - ``crop_sector``: crop to the ultrasound sector first (:mod:`fetalscope.imaging.sector`).
    """

    input_size: tuple[int, int] = (224, 224)
    channels: int = 3
    normalisation: Normalisation = "mean_std"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scale: float = 1.0
    crop_sector: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        d = dict(d)
        d["input_size"] = tuple(d.get("input_size", (224, 224)))
        d["mean"] = tuple(d.get("mean", IMAGENET_MEAN))
        d["std"] = tuple(d.get("std", IMAGENET_STD))
        return cls(**d)

    def replace(self, **changes: Any) -> PreprocessConfig:
        d = asdict(self)
        d.update(changes)
        return PreprocessConfig(**d)


def prepare_array(image: UltrasoundImage | np.ndarray, cfg: PreprocessConfig,
                  box: SectorBox | None = None) -> np.ndarray:
    """Crop (optionally: to ``box`` when given, else to the sector found here) and resize to ``cfg.input_size``;
    returns ``H x W x 3`` uint8 RGB."""
    rgb = image.pixels if isinstance(image, UltrasoundImage) else image
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if cfg.crop_sector:
        rgb = crop_to_sector(rgb) if box is None else rgb[box.y0 : box.y1, box.x0 : box.x1]
    h, w = cfg.input_size
    interp = cv2.INTER_AREA if rgb.shape[0] > h or rgb.shape[1] > w else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interp)


GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma


def normalise_batch(rgbs: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """``N x H x W x 3`` uint8 RGB to the model's ``N x C x H x W`` float32 input (numpy, one pass for the whole
    batch: the arrays of :func:`normalise`, to float rounding, several times faster than per-image torch)."""
    x = np.asarray(rgbs, dtype=np.float32) * np.float32(1.0 / 255.0)
    if cfg.channels == 1:
        x = (x @ np.asarray(GREY_WEIGHTS, dtype=np.float32))[..., None]
    if cfg.normalisation == "per_image_standardise":
        flat = x.reshape(len(x), -1)
        mean = flat.mean(axis=1, dtype=np.float64).astype(np.float32)
        std = np.maximum(flat.std(axis=1, ddof=1, dtype=np.float64), 1e-6).astype(np.float32)
        x = (x - mean[:, None, None, None]) / std[:, None, None, None]
    else:
        c = x.shape[-1]
        x = (x - np.asarray(cfg.mean[:c], dtype=np.float32)) / np.asarray(cfg.std[:c], dtype=np.float32)
    if cfg.scale != 1.0:
        x = x * np.float32(cfg.scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def model_inputs(images: list[np.ndarray], cfg: PreprocessConfig, tracker: SectorTracker | None = None) -> np.ndarray:
    """The ``N x C x H x W`` float32 input of frames of one clip (``H x W x 3`` uint8 RGB): cropped to the
    sector ``tracker`` keeps (found once, searched again when the layout changes), resized, normalised as one
    batch."""
    tracker = tracker if tracker is not None else SectorTracker()
    prepared = [prepare_array(rgb, cfg, tracker.box(rgb) if cfg.crop_sector else None) for rgb in images]
    return normalise_batch(np.stack(prepared), cfg)


def normalise(rgb: np.ndarray | torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """``H x W x 3`` uint8 array (or ``3 x H x W`` float tensor in [0, 1]) to the model's tensor."""
    if isinstance(rgb, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    else:
        x = rgb.float()
    if cfg.channels == 1:
        x = (x[0:1] * 0.299 + x[1:2] * 0.587 + x[2:3] * 0.114) if x.shape[0] == 3 else x[0:1]
    elif x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if cfg.normalisation == "per_image_standardise":
        std = x.std().clamp_min(1e-6)
        x = (x - x.mean()) / std
    else:
        mean = torch.tensor(cfg.mean[: x.shape[0]], dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(cfg.std[: x.shape[0]], dtype=x.dtype).view(-1, 1, 1)
        x = (x - mean) / std
    if cfg.scale != 1.0:
        x = x * cfg.scale
    return x.contiguous()


def to_tensor(image: UltrasoundImage | np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """The inference path: crop, resize, normalise. Returns ``C x H x W`` float32."""
    return normalise(prepare_array(image, cfg), cfg)


def model_input(image: UltrasoundImage | np.ndarray, cfg: PreprocessConfig,
                memo: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The ``1 x C x H x W`` float32 input of one image for a model preprocessing with ``cfg``. ``memo``
    (a dict kept for one image) lets every model with the same preprocessing reuse it."""
    key = repr(cfg)
    if memo is not None and key in memo:
        return memo[key]
    x = to_tensor(image, cfg).unsqueeze(0).numpy()
    if memo is not None:
        memo[key] = x
    return x
