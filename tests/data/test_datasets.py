"""ImageDataset over phantom files through the real loader; class weights and balanced sampling."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fetalscope.data.augment import build_augment
from fetalscope.data.datasets import ImageDataset, balanced_sampler, class_weights
from fetalscope.data.fetal_planes_db import load_fetal_planes_db
from fetalscope.data.phantoms import write_phantom_dataset
from fetalscope.data.samples import Sample
from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import BadInputError
from fetalscope.imaging import load_image


@pytest.fixture(scope="module")
def planes(tmp_path_factory: pytest.TempPathFactory):
    root = write_phantom_dataset(
        tmp_path_factory.mktemp("fpdb"), n_patients=4, images_per_patient=6, size=(72, 96), seed=4
    )
    return load_fetal_planes_db(root)


@pytest.mark.parametrize(
    "cfg",
    [
        PreprocessConfig(input_size=(64, 48), channels=3),
        PreprocessConfig(input_size=(32, 32), channels=1, normalisation="per_image_standardise", scale=255.0),
    ],
)
def test_items_have_model_shape(planes, cfg: PreprocessConfig) -> None:
    ds = ImageDataset(planes, cfg)
    assert len(ds) == 24 and ds.classes == planes.classes
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (cfg.channels, *cfg.input_size)
    assert y == planes[3].label
    # identical to the inference path
    assert torch.allclose(x, to_tensor(load_image(planes[3].path), cfg), atol=1e-5)
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, cfg.channels, *cfg.input_size) and yb.shape == (8,)


def test_cache_and_augment(planes) -> None:
    cfg = PreprocessConfig(input_size=(48, 48))
    ds = ImageDataset(planes, cfg, augment=build_augment("default", seed=0), cache=True)
    a, _ = ds[0]
    b, _ = ds[0]
    assert not torch.equal(a, b)  # fresh augmentation each time
    assert len(ds._cache) == 1 and ds._cache[0].ndim == 2  # grey cached as one channel
    plain = ImageDataset(planes, cfg, cache=False)
    assert torch.equal(plain[0][0], plain[0][0]) and not plain._cache
    assert np.array_equal(ds.prepared(0), plain.prepared(0))


def test_unreadable_file_names_the_item(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    ds = ImageDataset([Sample(bad, 0, "1")], PreprocessConfig(input_size=(32, 32)))
    with pytest.raises(BadInputError, match="dataset item 0 .*bad.png"):
        ds[0]


def test_rgb_images_are_cached_in_colour(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(path)
    ds = ImageDataset([Sample(path, 0, "1")], PreprocessConfig(input_size=(20, 20), crop_sector=False))
    ds[0]
    assert ds._cache[0].shape == (20, 20, 3)


def test_class_weights_and_balanced_sampler() -> None:
    samples = [
        Sample(Path(f"{i}.png"), label, str(i)) for i, label in enumerate([0] * 30 + [1] * 10 + [2] * 0)
    ]
    w = class_weights(samples, 3)
    assert w.tolist() == pytest.approx([40 / 60, 40 / 20, 0.0])
    labels = torch.tensor([s.label for s in samples])
    assert float((w[labels]).mean()) == pytest.approx(1.0)
    sampler = balanced_sampler(samples, num_samples=4000, seed=0)
    drawn = Counter(samples[i].label for i in sampler)
    assert abs(drawn[0] - drawn[1]) < 300
    assert list(balanced_sampler(samples, seed=3)) == list(balanced_sampler(samples, seed=3))
