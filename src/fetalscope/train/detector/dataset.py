"""YOLO items as a torch dataset for torchvision detectors: image tensor in [0, 1] + target boxes.

Training augmentation (on top of the copies Roboflow already made): horizontal flip (axial head
planes are left-right symmetric in layout), brightness/contrast/gamma jitter and mild speckle-like
multiplicative noise. No vertical flips: near and far field of an ultrasound image differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from fetalscope.data.yolo import YoloItem
from fetalscope.imaging.loader import load_image


class DetectionDataset(Dataset):
    """``(image 3xHxW float [0,1], {"boxes": N x 4 pixel xyxy, "labels": N int64 (1-based)})``.

    Decoded images are kept in memory (datasets here are a few hundred small images).
    """

    def __init__(self, items: Sequence[YoloItem], augment: bool = False, seed: int = 0) -> None:
        self.items = list(items)
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> np.ndarray:
        if index not in self._cache:
            self._cache[index] = load_image(self.items[index].image).pixels
        return self._cache[index]

    def target(self, index: int, width: int, height: int) -> dict[str, torch.Tensor]:
        boxes = self.items[index].boxes
        xyxy = torch.tensor([b.xyxy(width, height) for b in boxes], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([b.cls + 1 for b in boxes], dtype=torch.int64)
        return {"boxes": xyxy, "labels": labels}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rgb = self.image(index)
        h, w = rgb.shape[:2]
        target = self.target(index, w, h)
        x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float().div_(255.0)
        if self.augment:
            x, target = self._augment(x, target, w)
        return x, target

    def _augment(
        self, x: torch.Tensor, target: dict[str, torch.Tensor], width: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = self.rng
        if rng.random() < 0.5:
            x = x.flip(-1)
            b = target["boxes"].clone()
            b[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            target = {**target, "boxes": b}
        gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
        contrast = float(rng.uniform(0.8, 1.2))
        brightness = float(rng.uniform(-0.08, 0.08))
        x = x.clamp_min(0).pow(gamma)
        x = (x - x.mean()) * contrast + x.mean() + brightness
        if rng.random() < 0.5:
            noise = torch.from_numpy(rng.normal(1.0, 0.08, size=x.shape[1:]).astype(np.float32))
            x = x * noise.unsqueeze(0)
        return x.clamp_(0.0, 1.0), target


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
