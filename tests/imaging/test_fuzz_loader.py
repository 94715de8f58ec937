"""Seeded mutation fuzzing of the one loader (``tests/fuzzing.py`` makes the cases).

Invariant: ``load_image`` either returns an ``UltrasoundImage`` whose ``pixels`` are a plain, owned
``H x W x 3`` uint8 array within the limits (and nothing but plain values beside it), or raises a
``BadInputError`` (``PayloadTooLargeError`` for the limits) whose one-line message names the input.
Anything else (another exception, a hang) fails with the case id, which replays it:
``FETALSCOPE_FUZZ_CASES_ONLY=<id> pytest tests/imaging/test_fuzz_loader.py``.

Counts: ``$FETALSCOPE_FUZZ_LOADER_CASES`` in the default run (300), ``$FETALSCOPE_FUZZ_LOADER_NIGHTLY_CASES``
more under ``-m nightly`` (2,000, numbered apart from the default ones).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import fuzzing
from fetalscope.errors import BadInputError, FetalscopeError
from fetalscope.imaging import UltrasoundImage, load_image
from fetalscope.imaging.decoding import MIN_SIDE

MAX_PIXELS = 4_000_000  # the test server's limit: absurd-dimension cases stay light on a small machine
CASE_SECONDS = 20.0
DEFAULT_CASES = fuzzing.cases(fuzzing.env_count("FETALSCOPE_FUZZ_LOADER_CASES", 300))
NIGHTLY_CASES = fuzzing.cases(fuzzing.env_count("FETALSCOPE_FUZZ_LOADER_NIGHTLY_CASES", 2000), start=1_000_000)


def _plain(value: Any) -> bool:
    """Only builtin values (no decoder objects such as pydicom's MultiValue or DSfloat)."""
    if isinstance(value, (tuple, list)):
        return type(value) in (tuple, list) and all(_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value) is dict and all(type(k) is str and _plain(v) for k, v in value.items())
    return value is None or type(value) in (str, int, float, bool)


def assert_valid_image(img: Any, max_pixels: int = MAX_PIXELS, where: str = "") -> None:
    assert type(img) is UltrasoundImage, where
    px = img.pixels
    assert type(px) is np.ndarray and px.dtype == np.uint8 and px.ndim == 3 and px.shape[2] == 3, \
        f"{where}: pixels {type(px).__name__} {getattr(px, 'dtype', None)} {getattr(px, 'shape', None)}"
    h, w = px.shape[:2]
    assert min(h, w) >= MIN_SIDE and h * w <= max_pixels, f"{where}: {w}x{h} outside the limits"
    assert px.flags.owndata and px.flags.writeable and px.flags.c_contiguous, f"{where}: pixels are a view"
    spacing = img.pixel_spacing_mm
    assert spacing is None or (type(spacing) is float and math.isfinite(spacing) and spacing > 0), \
        f"{where}: pixel spacing {spacing!r}"
    assert type(img.frame) is int and type(img.n_frames) is int and 0 <= img.frame < img.n_frames, where
    assert type(img.bit_depth) is int and type(img.source) is str and type(img.format) is str, where
    assert _plain(img.meta), f"{where}: meta holds non-builtin values: {img.meta!r}"


def test_seed_files_are_valid_images(fuzz_seeds: dict[str, bytes]) -> None:
    """Mutations start from files the loader reads correctly, every format."""
    assert set(fuzz_seeds) == set(fuzzing.SEEDS)
    formats = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "dicom": "DICOM"}
    for name, data in fuzz_seeds.items():
        img = load_image(data, name=f"seed{fuzzing.SEEDS[name]}")
        assert_valid_image(img, where=name)
        assert img.pixels.shape == (*fuzzing.SEED_SIZE, 3), name
        assert img.format == formats[name.split("-")[0].rstrip("0123456789")], name
        assert img.pixels.std() > 10, f"{name}: the seed lost its picture"
    assert load_image(fuzz_seeds["tiff16"], name="s.tif").bit_depth == 16
    assert load_image(fuzz_seeds["dicom-mono2"], name="s.dcm").pixel_spacing_mm == pytest.approx(0.142)
    cine = load_image(fuzz_seeds["dicom-multiframe"], name="s.dcm")
    assert cine.n_frames == 3 and cine.frame == 1 and cine.pixel_spacing_mm == pytest.approx(0.2)


def test_every_mutation_changes_its_seed(fuzz_seeds: dict[str, bytes]) -> None:
    """No mutation is a silent no-op on any format it claims (over a few numbers each)."""
    for fmt, mutation in fuzzing.pairs():
        outputs = {fuzzing.mutate(fuzz_seeds, fuzzing.Case(fmt, mutation, n)) for n in range(4)}
        assert outputs - {fuzz_seeds[fmt]}, f"{fmt}:{mutation} never changes the file"


def test_cases_are_deterministic(fuzz_seeds: dict[str, bytes]) -> None:
    case = fuzzing.Case("dicom-mono2", "dicom-attr", 7)
    assert fuzzing.mutate(fuzz_seeds, case) == fuzzing.mutate(fuzz_seeds, fuzzing.Case.parse(case.id))
    assert {c.id for c in DEFAULT_CASES}.isdisjoint(c.id for c in NIGHTLY_CASES)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", fuzzing.params(DEFAULT_CASES, NIGHTLY_CASES, pytest.mark.nightly))
def test_loader_returns_a_valid_image_or_bad_input_error(case: fuzzing.Case, fuzz_seeds: dict[str, bytes]) -> None:
    data = fuzzing.mutate(fuzz_seeds, case)
    replay = f"(replay: {fuzzing.CASES_ONLY_ENV}={case.id} pytest {__file__})"
    try:
        with fuzzing.time_limit(CASE_SECONDS, f"load_image on {case.id}"):
            img = load_image(data, name=case.filename, max_pixels=MAX_PIXELS)
    except FetalscopeError as exc:
        message = str(exc)
        assert isinstance(exc, BadInputError), f"{case.id}: {type(exc).__name__} is not a BadInputError {replay}"
        assert case.filename in message, f"{case.id}: the message does not name the input: {message!r} {replay}"
        assert "\n" not in message and len(message) < 600, f"{case.id}: message not one short line {replay}"
        return
    except (Exception, fuzzing.CaseTimeout) as exc:
        pytest.fail(f"{case.id}: load_image raised {type(exc).__name__}: {exc} {replay}")
    assert_valid_image(img, where=f"{case.id} {replay}")
