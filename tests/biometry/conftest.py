"""Synthetic ultrasound-like images with elliptical structures, written to disk as real PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.biometry.ellipse import Ellipse
from fetalscope.data.segsets import SegSample


def speckle_image(shape: tuple[int, int], ellipses: list[tuple[Ellipse, int]], seed: int) -> np.ndarray:
    """Grey speckle background with each ellipse filled at the given brightness."""
    rng = np.random.default_rng(seed)
    img = rng.normal(60, 20, size=shape)
    for e, level in ellipses:
        img[e.rasterise(shape)] = rng.normal(level, 20, size=int(e.rasterise(shape).sum()))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def synthetic_heads(tmp_path_factory) -> list[SegSample]:
    """12 head-like images (bright ellipse) 96x144 with ellipse targets, 6 groups of 2."""
    root: Path = tmp_path_factory.mktemp("heads")
    rng = np.random.default_rng(1)
    out = []
    for i in range(12):
        e = Ellipse(72 + rng.uniform(-8, 8), 48 + rng.uniform(-6, 6), rng.uniform(30, 40), rng.uniform(22, 28),
                    rng.uniform(0, 180))
        path = root / f"head_{i:02d}.png"
        Image.fromarray(speckle_image((96, 144), [(e, 200)], i)).save(path)
        out.append(SegSample(path=path, group=f"s{i // 2}", ellipses={"head": e.to_dict(ndigits=None)},
                             meta={"pixel_size_mm": 0.5}))
    return out
