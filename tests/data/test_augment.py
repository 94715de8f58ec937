"""Ultrasound augmentation: shape, dtype, variety, levels, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from fetalscope.data.augment import build_augment
from fetalscope.data.phantoms import make_phantom
from fetalscope.errors import BadInputError


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    g = make_phantom("Fetal brain", np.random.default_rng(0), (64, 80))
    return np.repeat(g[..., None], 3, axis=2)


@pytest.mark.parametrize("level", ["default", "light"])
def test_keeps_shape_dtype_and_changes_pixels(rgb: np.ndarray, level: str) -> None:
    aug = build_augment(level, seed=0)
    outs = [aug(rgb) for _ in range(30)]
    for out in outs:
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])  # grey
    changed = [o for o in outs if not np.array_equal(o, rgb)]
    assert len(changed) >= 24  # a draw leaves the image as is with probability 1 % (default), 7 % (light)
    assert len({o.tobytes() for o in changed}) == len(changed)  # every changed draw differs
    assert all(abs(float(o.mean()) - float(rgb.mean())) < 40 for o in outs)  # still the same image
    assert rgb.flags.writeable and rgb[0, 0, 0] < 10  # input untouched


def test_default_is_stronger_than_light(rgb: np.ndarray) -> None:
    def change(level: str) -> float:
        aug = build_augment(level, seed=1)
        return float(np.mean([np.abs(aug(rgb).astype(int) - rgb).mean() for _ in range(20)]))

    assert change("default") > change("light") > 0


def test_none_is_identity_and_seed_reproducible(rgb: np.ndarray) -> None:
    assert build_augment("none")(rgb) is rgb
    a, b = build_augment(seed=7), build_augment(seed=7)
    assert all(np.array_equal(a(rgb), b(rgb)) for _ in range(3))


def test_flip_only_override(rgb: np.ndarray) -> None:
    aug = build_augment("default", seed=0, p_affine=0, p_photometric=0, p_speckle=0, p_blur=0, p_hflip=1.0)
    assert np.array_equal(aug(rgb), rgb[:, ::-1])


def test_bad_arguments(rgb: np.ndarray) -> None:
    with pytest.raises(BadInputError, match="unknown augmentation level"):
        build_augment("heavy")
    with pytest.raises(BadInputError, match="unknown augmentation parameter"):
        build_augment("default", rotation=5)
    with pytest.raises(BadInputError, match="H x W x 3 uint8"):
        build_augment()(rgb[..., 0])
