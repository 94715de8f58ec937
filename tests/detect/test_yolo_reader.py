"""YOLO/Roboflow dataset reading, validation errors and group-aware splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from fetalscope.data.yolo import (
    assert_groups_disjoint,
    group_kfold,
    group_split,
    read_label_file,
    read_yolo_dataset,
    source_name,
)
from fetalscope.errors import DataError


def test_reads_roboflow_layout(tiny_yolo: Path) -> None:
    ds = read_yolo_dataset(tiny_yolo)  # folder; data.yaml says ../train/images like Roboflow
    assert ds.names == ("BAR", "SQUARE")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 18, "valid": 6}
    item = ds.splits["train"][0]
    assert [b.cls for b in item.boxes] == [0, 1]
    bar = item.boxes[0]
    x0, y0, x1, y1 = bar.xyxy(96, 64)
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64
    # the three copies of one source share one group named after the source image
    assert item.group == item.source == source_name(item.image)
    assert sum(it.group == item.group for it in ds.splits["train"]) == 3
    assert ds.class_counts("train") == {"BAR": 18, "SQUARE": 18}


def test_source_name_parses_roboflow_copies() -> None:
    assert source_name("003_HC_png.rf.1e2c4c44d0a84638144ec500c28a9f9b.jpg") == "003_HC"
    assert source_name("Patient00709_Plane3_1_of_3_png.rf.50723eb7.jpg") == "Patient00709_Plane3_1_of_3"
    assert source_name("plain_image.png") == "plain_image"


def test_missing_label_file_means_no_objects(tiny_yolo: Path) -> None:
    label = next((tiny_yolo / "train" / "labels").glob("*.txt"))
    label.unlink()
    ds = read_yolo_dataset(tiny_yolo / "data.yaml")
    item = next(it for it in ds.splits["train"] if it.image.stem == label.stem)
    assert item.boxes == [] and item.label_file is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "expected 5"),
        ("0 0.5 0.5 abc 0.2", "not numbers"),
        ("7 0.5 0.5 0.2 0.2", "out of range"),
        ("-1 0.5 0.5 0.2 0.2", "out of range"),
        ("0.5 0.5 0.5 0.2 0.2", "not an integer"),
        ("0 0.95 0.5 0.3 0.2", "outside the image"),
        ("0 320 200 50 40", "outside the image"),
        ("1 0.5 0.5 0 0.2", "zero or negative size"),
    ],
)
def test_malformed_label_lines_name_file_and_line(tiny_yolo: Path, line: str, message: str) -> None:
    label = sorted((tiny_yolo / "train" / "labels").glob("*.txt"))[0]
    label.write_text("0 0.5 0.2 0.5 0.1\n" + line + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_yolo_dataset(tiny_yolo)
    assert f"{label}:2" in str(err.value)


def test_polygon_lines_become_boxes(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n\n")
    (box,) = read_label_file(label, nc=2)
    assert box.cls == 1
    assert box.xyxy(100, 100) == pytest.approx((10, 20, 50, 60))


def test_rounding_overshoot_is_clipped(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 1.0004 0.5\n")
    (box,) = read_label_file(label, nc=1)
    assert box.w == pytest.approx(1.0)


def test_yaml_errors(tiny_yolo: Path) -> None:
    yaml_path = tiny_yolo / "data.yaml"
    yaml_path.write_text("train: ../train/images\nnc: 3\nnames: ['BAR', 'SQUARE']\n")
    with pytest.raises(DataError, match="nc=3"):
        read_yolo_dataset(tiny_yolo)
    yaml_path.write_text("train: train/images\nnames: {0: BAR, 1: SQUARE}\n")
    assert read_yolo_dataset(tiny_yolo).names == ("BAR", "SQUARE")
    yaml_path.write_text("train: nowhere/images\nnames: [BAR, SQUARE]\n")
    with pytest.raises(DataError, match="does not point to a folder"):
        read_yolo_dataset(tiny_yolo)
    yaml_path.unlink()
    with pytest.raises(DataError, match="no data.yaml"):
        read_yolo_dataset(tiny_yolo)


def test_group_split_keeps_copies_together(tiny_yolo: Path) -> None:
    items = read_yolo_dataset(tiny_yolo).items("train")
    rest, held = group_split(items, 0.34, seed=3)
    assert len(rest) + len(held) == len(items)
    assert len(held) == 6  # 2 of 6 sources x 3 copies
    assert_groups_disjoint(rest, held)
    folds = group_kfold(items, folds=3)
    assert sorted(it.image.name for _, test in folds for it in test) == sorted(it.image.name for it in items)
    for train, test in folds:
        assert_groups_disjoint(train, test)
    # a naive split by image puts copies of one source on both sides, and the check says so
    with pytest.raises(DataError, match="must stay in one split"):
        assert_groups_disjoint(items[:4], items[4:])


@pytest.mark.shared
def test_real_brain_structures_groups_by_hc18_subject(shared_data: Path) -> None:
    ds = read_yolo_dataset(shared_data / "yolo_brain_structures")
    assert ds.names == ("CHOROID_PLEXUS", "CSP", "MIDLINE_FALX")
    train = ds.items("train")
    # labels.csv gives the HC18 subject: 003_HC and 003_2HC copies share one group
    groups = {it.group for it in train}
    assert all(g.startswith("HC18:") for g in groups)
    assert len(groups) < len({it.source for it in train}) < len(train)
    assert_groups_disjoint(ds.splits["train"], ds.splits["valid"])
    rest, held = group_split(train, 0.2)
    assert_groups_disjoint(rest, held)
    assert {it.source for it in rest}.isdisjoint({it.source for it in held})


@pytest.mark.shared
def test_real_normal_abnormal_official_split_shares_patients(shared_data: Path) -> None:
    """The Roboflow split of the normal/abnormal set puts frames of one patient in train and valid."""
    ds = read_yolo_dataset(shared_data / "brain_normal_abnormal_roboflow")
    with pytest.raises(DataError, match="FETAL_PLANES_DB"):
        assert_groups_disjoint(ds.splits["train"], ds.splits["valid"], ds.splits["test"])
    rest, held = group_split(ds.items(), 0.2)
    assert_groups_disjoint(rest, held)
