"""Generated YOLO datasets for the detection tests: dark images with bright rectangles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

NAMES = ["BAR", "SQUARE"]


def make_yolo_dataset(root: Path, n_train: int = 6, n_valid: int = 2, size: tuple[int, int] = (96, 64),
                      copies: int = 1, seed: int = 0) -> Path:
    """Write a Roboflow-style export: ``data.yaml`` (``../train/images``), images and YOLO labels.

    Class 0 is a wide bright bar, class 1 a small bright square; each source image is written
    ``copies`` times as ``<source>_png.rf.<hash>.jpg`` (like Roboflow's augmented copies).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    for split, n in (("train", n_train), ("valid", n_valid)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 40, size=(h, w), dtype=np.uint8)
            bw, bh = int(rng.integers(w // 2, w - 8)), int(rng.integers(6, 10))
            bx, by = int(rng.integers(2, w - bw - 2)), int(rng.integers(2, h // 2 - bh))
            img[by:by + bh, bx:bx + bw] = 230
            s = int(rng.integers(10, 16))
            sx, sy = int(rng.integers(2, w - s - 2)), int(rng.integers(h // 2 + 2, h - s - 2))
            img[sy:sy + s, sx:sx + s] = 200
            lines = [
                f"0 {(bx + bw / 2) / w:.6f} {(by + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}",
                f"1 {(sx + s / 2) / w:.6f} {(sy + s / 2) / h:.6f} {s / w:.6f} {s / h:.6f}",
            ]
            for c in range(copies):
                stem = f"{split}{i:03d}_png.rf.{c:08x}{i:04x}"
                Image.fromarray(img).convert("RGB").save(root / split / "images" / f"{stem}.jpg", quality=95)
                (root / split / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\n\nnc: 2\nnames: ['BAR', 'SQUARE']\n"
    )
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Detection tests run tiny models: one thread beats two contending threads on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_yolo(tmp_path: Path) -> Path:
    """A generated dataset: 6 train sources x 3 copies, 2 valid sources x 3 copies."""
    return make_yolo_dataset(tmp_path / "ds", n_train=6, n_valid=2, copies=3)


@pytest.fixture()
def yolo_factory():
    """``make_yolo_dataset`` itself, for tests that need other sizes."""
    return make_yolo_dataset
