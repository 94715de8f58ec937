"""A tiny model trained (in a few seconds) on two-class speckle phantoms whose evidence sits in a
known place: class ``blob`` has a bright disc somewhere in the top-left quadrant, class ``plain``
has speckle only. Explanations of ``blob`` should therefore point at the top-left quadrant."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from fetalscope.data.transforms import PreprocessConfig, normalise
from fetalscope.models import create_model

SIZE = 64
CLASSES = ["plain", "blob"]


def speckle_image(rng: np.random.Generator, blob: bool, size: int = SIZE) -> tuple[np.ndarray, tuple[int, int]]:
    """``size x size x 3`` uint8 speckle (gamma noise, slightly blurred); with ``blob`` a bright disc
    of radius size/10 fully inside the top-left quadrant. Returns (image, blob centre or (-1, -1))."""
    tissue = rng.gamma(2.0, 0.5, size=(size, size)).astype(np.float32)
    tissue = cv2.GaussianBlur(tissue, (0, 0), 0.8) * 0.25 + 0.15
    centre = (-1, -1)
    if blob:
        r = max(3, size // 10)
        cy, cx = (int(v) for v in rng.integers(r + 2, size // 2 - r - 1, size=2))
        yy, xx = np.mgrid[:size, :size]
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
        tissue = np.where(disc, tissue + 0.45, tissue)
        centre = (cy, cx)
    g = (np.clip(tissue, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2), centre


@dataclass
class Trained:
    model: torch.nn.Module
    preprocess: PreprocessConfig
    classes: list[str]
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_rgb: list[np.ndarray]
    centres: list[tuple[int, int]]
    accuracy: float


def make_set(rng: np.random.Generator, n: int, cfg: PreprocessConfig):
    rgbs, xs, ys, centres = [], [], [], []
    for i in range(n):
        label = i % 2
        rgb, c = speckle_image(rng, bool(label))
        rgbs.append(rgb)
        xs.append(normalise(rgb, cfg))
        ys.append(label)
        centres.append(c)
    return rgbs, torch.stack(xs), torch.tensor(ys), centres


@pytest.fixture(scope="session")
def trained() -> Trained:
    return train_tiny()


def train_tiny() -> Trained:
    """small_cnn (8-16-32-32 wide, 1 channel, 64 px) trained for 3 epochs on 128 phantoms; BatchNorm
    statistics are then recomputed over the whole training set (a few dozen steps leave the running
    averages far from the final weights' statistics)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_model("small_cnn", 2, input_size=SIZE, in_chans=1, widths=(8, 16, 32, 32), drop_rate=0.0)
    cfg = model.spec.preprocess.replace(crop_sector=False)
    _, x, y, _ = make_set(rng, 128, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _epoch in range(3):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration pass
    with torch.no_grad():
        model(x)
    model.eval()
    rgbs, tx, ty, centres = make_set(np.random.default_rng(1), 32, cfg)
    with torch.no_grad():
        acc = float((model(tx).argmax(1) == ty).float().mean())
    return Trained(model, cfg, CLASSES, tx, ty, rgbs, centres, acc)
