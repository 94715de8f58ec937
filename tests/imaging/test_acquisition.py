"""The acquisition measures (sector, gain, sharpness, shares) and the degradations, on a real image file."""

from __future__ import annotations

import numpy as np
import pytest

from fetalscope.imaging import degrade, load_image
from fetalscope.imaging.acquisition import (
    area_share,
    frame_cut_share,
    gain_level,
    points_inside,
    sector_mask,
    sharpness,
)
from fetalscope.serve.examples import BUNDLED_DIR


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return load_image(BUNDLED_DIR / "phantom_fetal_brain.png").pixels


def test_blurred_copy_is_less_sharp(rgb):
    assert sharpness(degrade.blur(rgb)) < 0.5 * sharpness(rgb)


def test_gain_follows_brightness_and_sharpness_does_not(rgb):
    mask = sector_mask(rgb)
    dark, bright = degrade.darken(rgb, 0.3), degrade.over_gain(rgb, 2.0)
    assert gain_level(dark, mask) == pytest.approx(0.3 * gain_level(rgb, mask), rel=0.05)
    assert gain_level(bright, mask) > gain_level(rgb, mask) + 40
    # sharpness is the share of contrast in fine detail: a darker copy keeps it
    assert sharpness(dark, mask) == pytest.approx(sharpness(rgb, mask), rel=0.2)


def test_sector_mask_of_a_fan_on_black():
    h, w = 200, 300
    yy, xx = np.mgrid[0:h, 0:w]
    angle = np.degrees(np.arctan2(xx - w / 2, yy + 20))
    fan = (np.abs(angle) < 35) & (np.hypot(xx - w / 2, yy + 20) < 200)
    rng = np.random.default_rng(0)
    grey = np.where(fan, rng.integers(40, 200, (h, w)), 0).astype(np.uint8)
    grey[fan & (np.hypot(xx - 150, yy - 120) < 25)] = 5  # dark fluid inside the fan is still sector
    mask = sector_mask(grey)
    overlap = (mask & fan).sum() / (mask | fan).sum()
    assert overlap > 0.93
    assert mask[120, 150]  # the fluid
    assert not mask[5, 5] and not mask[5, w - 6]  # black corners


def test_points_inside_and_area_share():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    pts = np.array([[1, 1], [2, 8], [7, 7], [20, 3]])  # inside, inside, outside, off the image
    assert points_inside(pts, mask) == 0.5
    assert area_share(25, mask) == 0.5 and area_share(25, (10, 10)) == 0.25


def test_frame_cut_share_is_the_outline_along_the_frame():
    import cv2

    whole, cut = np.zeros((200, 300), np.uint8), np.zeros((200, 300), np.uint8)
    cv2.circle(whole, (150, 100), 60, 1, -1)
    cv2.circle(cut, (0, 100), 60, 1, -1)  # a disc whose centre sits on the left edge: half of it is out of frame
    assert frame_cut_share(whole, 0.02) == 0.0 and frame_cut_share(np.zeros_like(cut), 0.02) == 0.0
    near_field = np.zeros_like(cut)
    cv2.circle(near_field, (150, 58), 60, 1, -1)  # touches the top: the transducer's side, not a cut
    assert frame_cut_share(near_field, 0.02) == 0.0
    bottom = np.zeros_like(cut)
    cv2.circle(bottom, (150, 199), 60, 1, -1)  # cut by the depth (bottom edge)
    assert frame_cut_share(bottom, 0.02) > 0.3
    # the straight cut (120 px) over the outline (half circle ~188 px + cut; fewer pixels on the 8-connected arc,
    # and the arc's ends inside the band count as on the frame)
    assert 120 / (np.pi * 60 + 120) < frame_cut_share(cut, 0.02) < 0.5


def test_degradations_keep_the_size_and_do_what_they_say(rgb):
    h, w = rgb.shape[:2]
    for name, make in degrade.DEGRADATIONS.items():
        out = make(rgb, (w * 0.4, h / 2))
        assert out.shape == rgb.shape and out.dtype == np.uint8, name
    zoomed = degrade.zoom_out(rgb, 0.5)
    assert (zoomed[: h // 5] == 0).all() and (zoomed[:, : w // 5] == 0).all()
    shifted = degrade.shift_out_of_view(rgb, w * 0.4, h / 2)  # centre moves to the left edge
    assert (shifted[:, -int(w * 0.35):] == 0).all()
