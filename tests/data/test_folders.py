"""Folder-per-class adapter on real PNG trees written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.data.folders import (
    has_split_folders,
    load_class_folders,
    load_split_folders,
    patient_from_name,
)
from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.phantoms import make_phantom
from fetalscope.errors import DataError


def put(folder: Path, name: str, label: str = "Other", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.fromarray(make_phantom(label, np.random.default_rng(seed), (32, 32)), mode="L").save(path)
    return path


def test_patient_from_name() -> None:
    assert patient_from_name("Patient00012_Plane3_1_of_2.png") == "12"
    assert patient_from_name("phantom_Patient00007_Plane1_1_of_6.png") == "7"
    assert patient_from_name("/x/y/012_HC.png") == "012_HC"


def test_class_folders_sorted_classes(tmp_path: Path) -> None:
    put(tmp_path / "brain", "Patient00001_a.png", "Fetal brain")
    put(tmp_path / "brain", "Patient00002_b.png", "Fetal brain", 1)
    put(tmp_path / "abdomen" / "nested", "scan_9.png", "Fetal abdomen")
    (tmp_path / "brain" / "notes.txt").write_text("not an image")
    ds = load_class_folders(tmp_path)
    assert ds.classes == ("abdomen", "brain")
    assert ds.class_counts() == {"abdomen": 1, "brain": 2}
    by_name = {s.path.name: s for s in ds}
    assert by_name["Patient00001_a.png"].patient == "1" and by_name["Patient00001_a.png"].label == 1
    assert by_name["scan_9.png"].patient == "scan_9" and by_name["scan_9.png"].label == 0
    assert by_name["scan_9.png"].meta["class_folder"] == "abdomen"


def test_given_classes_match_loosely_and_fix_order(tmp_path: Path) -> None:
    put(tmp_path / "fetal_brain", "a.png")
    put(tmp_path / "MATERNAL-CERVIX", "b.png")
    ds = load_class_folders(tmp_path, classes=PLANE_CLASSES)
    assert ds.classes == PLANE_CLASSES
    labels = {s.path.name: PLANE_CLASSES[s.label] for s in ds}
    assert labels == {"a.png": "Fetal brain", "b.png": "Maternal cervix"}


def test_unknown_class_folder(tmp_path: Path) -> None:
    put(tmp_path / "fetal_brain", "a.png")
    put(tmp_path / "fetal heart", "b.png")
    with pytest.raises(
        DataError, match=r"class folder\(s\) \['fetal heart'\] are not in the expected classes"
    ):
        load_class_folders(tmp_path, classes=PLANE_CLASSES)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_class_folders(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    put(tmp_path, "loose.png")
    with pytest.raises(DataError, match="no class folders"):
        load_class_folders(tmp_path / "flat")
    put(tmp_path / "tree" / "a", "x.png")
    (tmp_path / "tree" / "b").mkdir()
    (tmp_path / "tree" / "b" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"\['b'\] contain no images"):
        load_class_folders(tmp_path / "tree")


def test_split_folders_share_one_class_list(tmp_path: Path) -> None:
    put(tmp_path / "train" / "brain", "Patient00001_1.png")
    put(tmp_path / "train" / "femur", "Patient00002_1.png")
    put(tmp_path / "test" / "thorax", "Patient00003_1.png")
    assert has_split_folders(tmp_path) and not has_split_folders(tmp_path / "train")
    parts = load_split_folders(tmp_path)
    assert set(parts) == {"train", "test"}
    assert parts["train"].classes == parts["test"].classes == ("brain", "femur", "thorax")
    assert parts["test"][0].label == 2 and parts["test"][0].meta["split"] == "test"
    with pytest.raises(DataError, match="none of the split folders"):
        load_split_folders(tmp_path / "train")
