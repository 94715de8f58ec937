"""Sector crop on synthetic scanner screens and on real images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fetalscope.data.phantoms import embed_in_screenshot, make_phantom
from fetalscope.imaging import load_image
from fetalscope.imaging.sector import crop_to_sector, find_sector


@pytest.mark.parametrize("seed", range(6))
def test_finds_fan_on_screenshot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    side = int(rng.integers(140, 360))
    fan = make_phantom(seed % 6, rng, (side, side))
    screen, (y0, y1, x0, x1) = embed_in_screenshot(fan, rng)
    box = find_sector(screen)
    assert abs(box.y0 - y0) <= 3 and abs(box.y1 - y1) <= 3
    assert abs(box.x0 - x0) <= 3 and abs(box.x1 - x1) <= 3
    crop = crop_to_sector(screen)
    assert crop.shape == (box.height, box.width, 3)
    # no screen furniture left: text is white, the colour bar saturated
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    assert (hsv[..., 1] > 60).sum() == 0


def test_grey_scale_bar_beside_fan_is_left_out() -> None:
    rng = np.random.default_rng(11)
    fan = make_phantom("Fetal brain", rng, (256, 256))
    ys, xs = np.nonzero(fan > 8)
    screen = np.zeros((300, 340, 3), np.uint8)
    screen[20:276, 10:266] = fan[..., None]
    right = 10 + int(xs.max()) + 1
    bar = np.linspace(255, 0, 200).astype(np.uint8)
    screen[40:240, right + 8 : right + 14] = bar[:, None, None]  # grey bar 8 px from the fan
    box = find_sector(screen)
    assert abs(box.x1 - right) <= 2
    assert abs(box.x0 - (10 + int(xs.min()))) <= 2


def test_already_cropped_image_is_kept_whole() -> None:
    rng = np.random.default_rng(3)
    screen, (y0, y1, x0, x1) = embed_in_screenshot(make_phantom(0, rng, (200, 200)), rng)
    cropped = np.ascontiguousarray(screen[y0:y1, x0:x1])
    box = find_sector(cropped)
    assert (box.y0, box.y1, box.x0, box.x1) == (0, cropped.shape[0], 0, cropped.shape[1])


def test_plain_texture_and_black_image_give_whole_image() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    assert crop_to_sector(texture).shape == texture.shape
    black = np.zeros((120, 160, 3), np.uint8)
    assert crop_to_sector(black).shape == black.shape


def test_rejects_wrong_array() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        find_sector(np.zeros((10, 10), np.uint8))


def _real_images(shared_data: Path) -> list[Path]:
    picks = [
        *sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[:2],
        *sorted((shared_data / "hc18" / "training_set").glob("*_HC.png"))[:2],
        *sorted((shared_data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png"))[:2],
    ]
    if not picks:
        pytest.skip("no real images in shared data")
    return picks


def test_real_images_keep_most_of_the_scan(shared_data: Path) -> None:
    for path in _real_images(shared_data):
        rgb = load_image(path).pixels
        box = find_sector(rgb)
        grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (0, 0), 2) > 20
        kept = grey[box.y0 : box.y1, box.x0 : box.x1].sum() / grey.sum()
        assert kept >= 0.93, f"{path.name}: crop keeps only {kept:.2f} of the bright pixels"
        assert box.height * box.width >= 0.4 * rgb.shape[0] * rgb.shape[1], path.name
