"""The named perturbations on a real image file: seeded, shape-keeping, identity at 0, stronger with strength."""

from __future__ import annotations

import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.imaging import load_image
from fetalscope.imaging.perturb import (
    PERTURBATIONS,
    REPORT_STRENGTHS,
    perturb,
    random_chain,
    random_perturbation,
    video_codec,
)
from fetalscope.serve.examples import BUNDLED_DIR

NAMES = list(PERTURBATIONS)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    image = load_image(BUNDLED_DIR / "phantom_fetal_brain.png").pixels
    return np.ascontiguousarray(image[::2, ::2])  # half size keeps the test fast


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("name", NAMES)
def test_seeded_shape_keeping_and_identity_at_zero(rgb, name):
    before = rgb.copy()
    out = perturb(rgb, name, 0.8, seed=3)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out, perturb(rgb, name, 0.8, seed=3))
    assert np.array_equal(rgb, before), "the input must not be changed"
    assert np.array_equal(perturb(rgb, name, 0.0, seed=3), rgb)
    assert change(out, rgb) > 0.2, f"{name} at 0.8 left the image (almost) unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_larger_strength_changes_the_image_more(rgb, name):
    changes = [change(perturb(rgb, name, s, seed=1), rgb) for s in REPORT_STRENGTHS]
    assert changes[0] < changes[-1], f"{name}: {changes}"
    assert changes == sorted(changes), f"{name}: {changes}"


def test_noise_depends_on_the_seed(rgb):
    for name in ("speckle", "speckle_correlated", "crop", "ui_chrome"):
        assert not np.array_equal(perturb(rgb, name, 1.0, seed=0), perturb(rgb, name, 1.0, seed=1)), name


def test_speckle_strength_is_the_relative_noise(rgb):
    bright = np.full((64, 64, 3), 200, np.uint8)
    noisy = perturb(bright, "speckle", 1 / 3, seed=0).astype(float)
    assert noisy.std() / 200 == pytest.approx(0.35 / 3, rel=0.1)


def test_correlated_speckle_is_smoother_than_pixel_wise():
    flat = np.full((200, 200, 3), 128, np.uint8)
    pix = perturb(flat, "speckle", 1.0, seed=0)[..., 0].astype(float)
    cor = perturb(flat, "speckle_correlated", 1.0, seed=0)[..., 0].astype(float)

    def neighbour_corr(x: np.ndarray) -> float:
        return float(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1])

    assert neighbour_corr(pix) < 0.1 < 0.8 < neighbour_corr(cor)


def test_video_codec_is_named():
    assert any(codec in video_codec() for codec in ("H.264", "MPEG-4", "Motion JPEG"))


def test_random_perturbation_is_seeded_and_bounded(rgb):
    a = random_perturbation(rgb, np.random.default_rng(7), 0.5)
    b = random_perturbation(rgb, np.random.default_rng(7), 0.5)
    assert np.array_equal(a, b) and a.shape == rgb.shape and a.dtype == np.uint8
    chains = [random_chain(np.random.default_rng(s), 0.5) for s in range(30)]
    assert all(1 <= len(c) <= 3 and all(0 <= s <= 0.5 for _, s in c) for c in chains)
    assert len({name for c in chains for name, _ in c}) > 8  # the draws cover most perturbations
    assert np.array_equal(random_perturbation(rgb, np.random.default_rng(0), 0.0), rgb)


@pytest.mark.parametrize("call", [
    lambda im: perturb(im, "no-such-thing", 0.5),
    lambda im: perturb(im, "blur", 1.5),
    lambda im: perturb(im, "blur", -0.1),
    lambda im: perturb(im[..., 0], "blur", 0.5),
    lambda im: perturb(im.astype(np.float32), "blur", 0.5),
    lambda im: random_perturbation(im, np.random.default_rng(0), 2.0),
    lambda im: random_chain(np.random.default_rng(0), 0.5, names=["jpeg", "nope"]),
])
def test_bad_input_is_refused(rgb, call):
    with pytest.raises(BadInputError):
        call(rgb)
