"""The "does this look like ultrasound" check (fetalscope.imaging.quality) on real ultrasound, synthetic
phantoms, photos, rendered documents and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.phantoms import SCANNER_TINTS, embed_in_screenshot, make_phantom, tint_display
from fetalscope.imaging import load_image
from fetalscope.imaging.quality import ood_check

REAL_SETS = {
    "hc18": ("hc18/training_set", "*_HC.png"),
    "focus": ("focus_fetal_thorax/images", "*.png"),
    "tv": ("fetal_planes_db_tv_alzubaidi/images", "*.png"),
    "roboflow_brain": ("brain_normal_abnormal_roboflow", "*/images/*.jpg"),
    "yolo_brain": ("yolo_brain_structures", "*/images/*.jpg"),
}


def _spread(paths: list[Path], k: int) -> list[Path]:
    paths = sorted(paths)
    return paths[:: max(1, len(paths) // k)][:k]


@pytest.mark.parametrize("name", list(REAL_SETS))
def test_real_ultrasound_passes(shared_data: Path, name: str):
    folder, pattern = REAL_SETS[name]
    paths = _spread(list((shared_data / folder).glob(pattern)), 12)
    if not paths:
        pytest.skip(f"no images in {shared_data / folder}")
    for path in paths:
        result = ood_check(load_image(path))
        assert not result.flag, f"{path}: {result.reasons} {result.features}"
        assert result.score < 0.5


def test_synthetic_phantoms_and_scanner_screens_pass():
    rng = np.random.default_rng(0)
    for label in PLANE_CLASSES:
        grey = make_phantom(label, rng, (160, 200))
        assert not ood_check(grey).flag, label
        screen, _ = embed_in_screenshot(grey, rng)  # text, colour bar and border around the fan
        assert not ood_check(screen).flag, label


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"])
def test_colour_photos_fail(name: str):
    from skimage import data

    result = ood_check(np.ascontiguousarray(getattr(data, name)()))
    assert result.flag and result.score >= 0.5
    assert any("coloured" in r for r in result.reasons)


def _document(width: int, height: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=size)
    y = 10
    while y < height - size - 5:
        words = ["".join(chr(97 + int(c)) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(9)]
        draw.text((12, y), " ".join(words), fill="black", font=font)
        y += int(size * 1.5)
    return np.asarray(page)


@pytest.mark.parametrize("shape", [(300, 400, 14), (800, 600, 18), (500, 700, 24)])
def test_text_documents_fail(shape):
    height, width, size = shape
    result = ood_check(_document(width, height, size, seed=size))
    assert result.flag
    assert any("near-white" in r for r in result.reasons)


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "uniform_colour", "dark_gaussian", "noise_fan"])
def test_noise_fails(kind: str):
    rng = np.random.default_rng(1)
    h, w = 300, 400
    if kind == "uniform":
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "gaussian":
        img = np.clip(rng.normal(128, 40, (h, w)), 0, 255).astype(np.uint8)
    elif kind == "uniform_colour":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "dark_gaussian":  # dark like B-mode, but no structure
        img = np.clip(rng.normal(30, 30, (h, w)), 0, 255).astype(np.uint8)
    else:  # noise inside a fan-shaped sector on black: the shape of a scan, none of its content
        yy, xx = np.mgrid[0:h, 0:w]
        fan = ((xx - w / 2) ** 2 + yy**2 < (0.95 * h) ** 2) & (np.abs(np.arctan2(xx - w / 2, yy + 1)) < 0.7)
        img = np.zeros((h, w), np.uint8)
        img[fan] = rng.integers(30, 256, int(fan.sum()))
    result = ood_check(img)
    assert result.flag, (kind, result.features)
    assert any("noise" in r or "coloured" in r for r in result.reasons)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_images_fail(value: int):
    result = ood_check(np.full((64, 64, 3), value, np.uint8))
    assert result.flag and any("blank" in r for r in result.reasons)


def test_result_record_and_input_checks():
    d = ood_check(make_phantom("Fetal femur", np.random.default_rng(2), (96, 96))).to_dict()
    assert set(d) >= {"flag", "score", "reasons", "features", "evidence"}
    assert 0.0 <= d["score"] <= 1.0 and d["reasons"] == []
    with pytest.raises(ValueError):
        ood_check(np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("name", ["hc18", "focus", "tv", "yolo_brain"])
def test_real_scans_shown_through_a_tinted_colour_map_pass(shared_data: Path, name: str):
    """Scanners show B-mode through bluish-grey or sepia colour maps: that is ultrasound, not a photo. The
    same scans with a colour-Doppler-like patch, and photos, stay flagged."""
    folder, pattern = REAL_SETS[name]
    paths = _spread(list((shared_data / folder).glob(pattern)), 6)
    if not paths:
        pytest.skip(f"no images in {shared_data / folder}")
    false_alarms = 0
    for path in paths:
        grey = load_image(path).gray
        for low, high in SCANNER_TINTS.values():
            tinted = tint_display(grey, low, high)
            false_alarms += ood_check(tinted).flag
        h, w = grey.shape
        patch = (slice(h // 4, h // 4 + h // 2), slice(w // 4, w // 4 + w // 2))  # a large colour box
        for base in (np.repeat(grey[..., None], 3, axis=2), tint_display(grey, *SCANNER_TINTS["bluish-grey"])):
            doppler = base.copy()
            doppler[patch] = np.where(np.indices(doppler[patch].shape[:2]).sum(0)[..., None] % 8 < 4,
                                      np.array([220, 30, 30], np.uint8), np.array([30, 60, 230], np.uint8))
            result = ood_check(doppler)  # the same answer on a grey and on a tinted display
            assert result.flag and any("coloured" in r for r in result.reasons), f"{path}: {result.features}"
    assert false_alarms == 0, f"{false_alarms} of {len(paths) * len(SCANNER_TINTS)} tinted real scans flagged"
