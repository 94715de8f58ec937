"""Optional Ultralytics backend (detect.yolo_backend) and its training (train.detector.yolo): offline,
from a model yaml, one tiny epoch (skipped when not installed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fetalscope.data.yolo import read_yolo_dataset
from fetalscope.detect import yolo_backend
from fetalscope.errors import UnsupportedError
from fetalscope.train.detector import yolo as yolo_training

pytestmark = pytest.mark.skipif(not yolo_backend.is_available(), reason="ultralytics (fetalscope[yolo]) not installed")


@pytest.mark.slow
def test_one_epoch_offline_from_yaml(tiny_yolo: Path, tmp_path: Path) -> None:
    ds = read_yolo_dataset(tiny_yolo)
    data_yaml = yolo_training.write_ultralytics_dataset(
        ds.names, {"train": ds.items("train"), "val": ds.items("valid")}, tmp_path / "data"
    )
    # the source dataset stays untouched: Ultralytics sees symlinks and writes its caches beside them
    assert (tmp_path / "data" / "train" / "images").is_dir()
    weights = yolo_training.train_yolo(data_yaml, tmp_path / "run", model="yolov8n.yaml", epochs=1, imgsz=64,
                                      batch=6)
    assert weights.is_file()
    assert not list(tiny_yolo.rglob("*.cache"))
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert (yolo_backend.ultralytics_config_dir() / "Ultralytics" / "Arial.ttf").is_file()
    det = yolo_backend.UltralyticsDetector.load(weights, ds.names, imgsz=64)
    from fetalscope.imaging.loader import load_image

    boxes = det.predict(load_image(ds.items("valid")[0].image))
    assert isinstance(boxes, list)
    assert all(b.label in ds.names and 0 <= b.score <= 1 for b in boxes)


def test_refuses_pretrained_pt(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="model yaml"):
        yolo_training.train_yolo(tmp_path / "data.yaml", tmp_path / "run", model="yolov8n.pt")
