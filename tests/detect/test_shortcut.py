"""Shortcut measurements (fetalscope.evaluate.shortcut) and the YOLO image-level class adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fetalscope.data.splits import assert_patient_disjoint, patient_split
from fetalscope.data.yolo import read_yolo_dataset, yolo_classification_set
from fetalscope.errors import DataError
from fetalscope.evaluate.shortcut import (
    box_in_model_space,
    feature_matrix,
    mass_inside,
    nuisance_features,
    shortcut_auc,
)


def confounded_images(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Same random 'anatomy' in both classes; class 1 images carry a grey frame (a source marker)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        img = np.zeros((64, 80, 3), np.uint8)
        img[12:52, 15:65] = rng.integers(40, 200, size=(40, 50, 1), dtype=np.uint8)
        label = i % 2
        if label:
            img[:3, :] = 90
            img[-3:, :] = 90
        images.append(img)
        labels.append(label)
    return images, labels


def test_border_features_find_a_source_marker_and_size_does_not() -> None:
    images, labels = confounded_images(40)
    records = [nuisance_features(im, box_xyxy=(15, 12, 65, 52)) for im in images]
    groups = [f"p{i}" for i in range(len(images))]
    x, names = feature_matrix(records, "border")
    assert len(names) == 28
    border = shortcut_auc(x, labels, groups, n_boot=100)
    assert border["auc"] > 0.95 and border["ci_low"] > 0.8
    size = shortcut_auc(*feature_matrix(records, "size")[:1], labels, groups)
    assert size["auc"] == 0.5 and "constant" in size["note"]
    # the pixels inside the head box hold no class information: shuffled labels give chance
    rng = np.random.default_rng(1)
    shuffled = shortcut_auc(x, list(rng.permutation(labels)), groups, n_boot=50)
    assert shuffled["auc"] < 0.8
    with pytest.raises(Exception, match="binary"):
        shortcut_auc(x, [0] * len(labels), groups)


def test_mass_inside_and_box_mapping() -> None:
    amap = np.zeros((100, 100), np.float32)
    amap[20:40, 30:70] = 1.0
    m = mass_inside(amap, (30, 20, 70, 40))
    assert m["inside"] == pytest.approx(1.0) and m["area"] == pytest.approx(0.08) and m["ratio"] > 10
    uniform = mass_inside(np.ones((100, 100)), (0, 0, 50, 100))
    assert uniform["ratio"] == pytest.approx(1.0)
    # a 200 x 100 crop starting at (x=50, y=10) resized to 224 x 224
    box = box_in_model_space((100, 60, 150, 110), (10, 110, 50, 250), (224, 224))
    assert box == pytest.approx((56.0, 112.0, 112.0, 224.0))


def test_yolo_image_classes(tiny_yolo: Path) -> None:
    ds = read_yolo_dataset(tiny_yolo)
    with pytest.raises(DataError, match="several classes"):
        yolo_classification_set(ds)  # the generated images hold a BAR and a SQUARE each
    for label in (tiny_yolo / "train" / "labels").glob("*.txt"):
        label.write_text(label.read_text().splitlines()[0] + "\n")  # keep only the bar
    items = yolo_classification_set(ds := read_yolo_dataset(tiny_yolo), ["train"])
    assert len(items) == 18 and items.class_counts() == {"BAR": 18, "SQUARE": 0}
    assert len(items.patients) == 6 and items[0].meta["box_norm"][0] < items[0].meta["box_norm"][2]
    assert ds.names == items.classes


@pytest.mark.shared
def test_real_normal_abnormal_split_by_patient(shared_data: Path) -> None:
    full = yolo_classification_set(read_yolo_dataset(shared_data / "brain_normal_abnormal_roboflow"))
    assert full.class_counts() == {"abnormal": 210, "normal": 210}
    # the confound in numbers: every normal is FETAL_PLANES_DB, every abnormal a web source
    assert {s.meta["source_dataset"] for s in full if s.label == 1} == {"FETAL_PLANES_DB"}
    assert "FETAL_PLANES_DB" not in {s.meta["source_dataset"] for s in full if s.label == 0}
    split = patient_split(full, seed=0)
    assert_patient_disjoint(split.train, split.val, split.test)
    sources = [{s.meta["source"] for s in part} for part in (split.train, split.val, split.test)]
    assert sources[0].isdisjoint(sources[2]) and sources[1].isdisjoint(sources[2])
