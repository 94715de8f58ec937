"""The batch model input of a clip (numpy, sector found once) equals the per-image input of the one
preprocessing path, for every normalisation the bundled models use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fetalscope.data.transforms import PreprocessConfig, model_input, model_inputs, normalise_batch
from fetalscope.imaging.loader import load_image
from fetalscope.imaging.sector_tracker import SectorTracker

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"
CONFIGS = {
    "sononet": PreprocessConfig(input_size=(224, 288), channels=1, normalisation="per_image_standardise",
                                mean=(0.0,), std=(1.0,), scale=255.0),
    "imagenet": PreprocessConfig(input_size=(96, 128)),
    "grey-mean-std": PreprocessConfig(input_size=(64, 64), channels=1, mean=(0.2,), std=(0.3,)),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_batch_input_equals_per_image_input(name: str) -> None:
    cfg = CONFIGS[name]
    images = [load_image(p).pixels for p in sorted(EXAMPLES.glob("*.png"))[:3]]
    batch = np.concatenate([model_inputs([rgb], cfg) for rgb in images])  # one clip per image: own sector
    single = np.concatenate([model_input(rgb, cfg) for rgb in images])
    assert batch.shape == single.shape and batch.dtype == np.float32
    assert np.abs(batch - single).max() <= 1e-5 * max(1.0, float(np.abs(single).max()))


def test_frames_of_one_clip_share_the_first_frames_sector() -> None:
    rgb = load_image(EXAMPLES / "phantom_fetal_thorax.png").pixels
    tracker = SectorTracker()
    cfg = CONFIGS["sononet"]
    out = model_inputs([rgb, rgb.copy(), rgb.copy()], cfg, tracker)
    assert tracker.searches == 1 and out.shape == (3, 1, 224, 288)
    assert np.allclose(out[0], out[2]) and np.allclose(out[0], model_input(rgb, cfg)[0], atol=1e-3)
    flat = normalise_batch(np.zeros((2, 8, 8, 3), np.uint8), cfg)
    assert np.isfinite(flat).all() and not flat.any()  # a blank frame: no division by zero
