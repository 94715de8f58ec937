"""The synthetic phantom generator and its FETAL_PLANES_DB-layout writer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.data.labels import BRAIN_PLANE_CLASSES, PLANE_CLASSES
from fetalscope.data.phantoms import make_phantom, write_phantom_dataset
from fetalscope.errors import BadInputError


def test_phantom_shape_dtype_and_fan() -> None:
    rng = np.random.default_rng(0)
    for label in [*PLANE_CLASSES, 0, 5]:
        img = make_phantom(label, rng, (96, 128))
        assert img.shape == (96, 128) and img.dtype == np.uint8
        assert img[0, 0] < 10 and img[0, -1] < 10  # dark background in the top corners (fan)
        assert img[60, 64] > 20  # tissue in the middle of the fan
        assert 0.3 < (img > 10).mean() < 0.8


def test_phantoms_are_random_but_reproducible() -> None:
    a = make_phantom("Fetal brain", np.random.default_rng(1))
    b = make_phantom("Fetal brain", np.random.default_rng(1))
    c = make_phantom("Fetal brain", np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_classes_differ_in_shape_not_only_brightness() -> None:
    """Mean brightness alone barely separates the classes (nearest class mean near chance)."""
    rng = np.random.default_rng(0)
    means = np.array([[make_phantom(c, rng, (64, 64)).mean() for _ in range(30)] for c in range(6)])
    centres = means[:, :15].mean(axis=1)
    test = means[:, 15:]
    predicted = np.abs(test[..., None] - centres[None, None, :]).argmin(axis=2)
    accuracy = (predicted == np.arange(6)[:, None]).mean()
    assert accuracy < 0.45


def test_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(BadInputError, match="unknown phantom label"):
        make_phantom("Fetal heart", rng)
    with pytest.raises(BadInputError, match="out of range"):
        make_phantom(6, rng)
    with pytest.raises(BadInputError, match="only brains"):
        make_phantom("Fetal femur", rng, brain_plane="Trans-thalamic")
    with pytest.raises(BadInputError, match="too small"):
        make_phantom(0, rng, (16, 16))


def test_write_dataset_layout(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path / "fpdb", n_patients=8, images_per_patient=6, size=(64, 64), seed=3)
    csv_path = root / "FETAL_PLANES_DB_data.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "
    assert all(line.endswith(" ") for line in lines)
    rows = list(csv.DictReader(lines, delimiter=";"))
    assert len(rows) == 48
    assert {r["Plane"] for r in rows} == set(PLANE_CLASSES)
    for r in rows:
        assert r["Image_name"].startswith("phantom_")
        img = Image.open(root / "Images" / f"{r['Image_name']}.png")
        assert img.size == (64, 64) and img.mode == "L"
        if r["Plane"] == "Fetal brain":
            assert r["Brain_plane"] in BRAIN_PLANE_CLASSES
        else:
            assert r["Brain_plane"] == "Not A Brain"
    by_patient: dict[str, set[str]] = {}
    for r in rows:
        by_patient.setdefault(r["Patient_num"], set()).add(r["Train "].strip())
    assert all(len(flags) == 1 for flags in by_patient.values())  # split by patient
    assert sum(flags == {"0"} for flags in by_patient.values()) == 2  # 25 % of 8
    readme = (root / "SYNTHETIC_README.txt").read_text()
    assert "SYNTHETIC" in readme and "never" in readme.lower()
