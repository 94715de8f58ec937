"""Train an Ultralytics YOLO detector (optional extra ``fetalscope[yolo]``, AGPL-3.0) with the same protocol as
:func:`fetalscope.train.detector.protocol.train_and_evaluate`; the trained model is served through
:class:`fetalscope.detect.yolo_backend.UltralyticsDetector` (see that module for the licence and the offline set-up).

The dataset is presented to Ultralytics as a folder of symbolic links inside the run folder (its
label caches are written beside the labels, and the source dataset must stay untouched).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fetalscope.data.yolo import YoloItem, assert_groups_disjoint, group_split, read_yolo_dataset
from fetalscope.detect.yolo_backend import LICENCE, UltralyticsDetector, yolo_class
from fetalscope.errors import UnsupportedError
from fetalscope.train.detector.detection_report import write_report
from fetalscope.train.detector.protocol import (
    decide_threshold_and_filter,
    evaluate_split,
    measure_speed,
    split_summary,
)


def _link_split(items: Sequence[YoloItem], folder: Path) -> Path:
    """Symlink images and label files of ``items`` into ``folder/images`` and ``folder/labels``."""
    images, labels = folder / "images", folder / "labels"
    for sub in (images, labels):
        if sub.exists():
            shutil.rmtree(sub)
        sub.mkdir(parents=True)
    for item in items:
        (images / item.image.name).symlink_to(item.image.resolve())
        if item.label_file is not None:
            (labels / f"{item.image.stem}.txt").symlink_to(item.label_file.resolve())
    return images


def write_ultralytics_dataset(
    names: Sequence[str], splits: dict[str, Sequence[YoloItem]], folder: str | Path
) -> Path:
    """A ``data.yaml`` + linked split folders Ultralytics can train from; returns the yaml path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"path": str(root.resolve()), "names": {i: n for i, n in enumerate(names)}}
    for split, items in splits.items():
        _link_split(items, root / split)
        data[split] = f"{split}/images"
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class YoloTrainSettings:
    """How :func:`train_yolo` trains: the Ultralytics model yaml (random init), epochs, square input size
    ``imgsz``, batch size, seed, data-loader workers and the fraction of the training images used."""

    model: str = "yolov8n.yaml"
    epochs: int = 30
    imgsz: int = 320
    batch: int = 8
    seed: int = 0
    workers: int = 0
    fraction: float = 1.0


def train_yolo(data_yaml: str | Path, out_dir: str | Path, **settings: Any) -> Path:
    """Train an Ultralytics detector from a model yaml (random init, offline, CPU); returns best weights.

    ``settings`` (keyword-only): the fields of :class:`YoloTrainSettings` (``model``, ``epochs``, ``imgsz``,
    ``batch``, ``seed``, ``workers``, ``fraction``), with its defaults."""
    opts = YoloTrainSettings(**settings)
    if not str(opts.model).endswith((".yaml", ".yml")):
        raise UnsupportedError(
            f"model '{opts.model}': the offline YOLO backend builds from a model yaml (e.g. yolov8n.yaml, "
            "yolo11n.yaml); pretrained .pt files cannot be downloaded here"
        )
    out = Path(out_dir).resolve()
    yolo = yolo_class()(opts.model)
    yolo.train(
        data=str(data_yaml),
        epochs=opts.epochs,
        imgsz=opts.imgsz,
        batch=opts.batch,
        device="cpu",
        workers=opts.workers,
        project=str(out.parent),
        name=out.name,
        exist_ok=True,
        pretrained=False,
        amp=False,
        plots=False,
        seed=opts.seed,
        deterministic=True,
        verbose=False,
        fraction=opts.fraction,
    )
    best = out / "weights" / "best.pt"
    last = out / "weights" / "last.pt"
    return best if best.is_file() else last


def train_and_evaluate_yolo(
    data: str | Path, out_dir: str | Path, *, holdout_fraction: float = 0.2, **settings: Any
) -> dict[str, Any]:
    """The same protocol as :func:`fetalscope.train.detector.protocol.train_and_evaluate`, with an Ultralytics model:
    train on part of the training groups, validate (epoch choice, threshold) on the rest, test on
    ``valid``/``test``. Writes ``report.json`` + ``report.md`` into ``out_dir``.

    ``settings`` (keyword-only): the :class:`YoloTrainSettings` fields given to :func:`train_yolo`; ``seed``
    also draws the hold-out groups."""
    opts = YoloTrainSettings(**settings)
    model, imgsz, seed = opts.model, opts.imgsz, opts.seed
    out = Path(out_dir)
    dataset = read_yolo_dataset(data)
    train_items, holdout = group_split(dataset.items("train"), holdout_fraction, seed=seed)
    test_name = next((s for s in ("test", "valid") if s in dataset.splits), None)
    test_items = dataset.items(test_name) if test_name else []
    assert_groups_disjoint(train_items, holdout, test_items)
    data_yaml = write_ultralytics_dataset(dataset.names, {"train": train_items, "val": holdout}, out / "data")
    weights = train_yolo(data_yaml, out / "run", **dataclasses.asdict(opts))
    detector = UltralyticsDetector.load(weights, dataset.names, imgsz)
    choice = decide_threshold_and_filter(detector, holdout)
    threshold, drop = choice["threshold"], choice["drop_outside_skull"]
    report: dict[str, Any] = {
        "name": f"yolo-{Path(model).stem}",
        "task": "detection",
        "backend": f"Ultralytics {model} ({LICENCE}), trained from scratch (no pretrained .pt offline)",
        "base_weights": "none (random init)",
        "dataset": {
            "yaml": str(dataset.yaml_path),
            "classes": list(dataset.names),
            "splits": {s: split_summary(dataset.splits[s], dataset.names) for s in dataset.splits},
        },
        "protocol": {
            "description": f"train on {len(train_items)} images, Ultralytics' best epoch and the threshold chosen "
            f"on the {len(holdout)}-image group hold-out, report on '{test_name}'",
            "train_images": len(train_items),
            "holdout_images": len(holdout),
            "test_images": len(test_items),
        },
        "weights": str(weights),
        "threshold": {"value": threshold, "chosen_on": "the hold-out split", "f1": choice["f1"],
                      "curve": choice["curve"]},
        "plausibility_filter": {"drop_outside_skull": drop, "reason": choice["reason"]},
        "holdout": evaluate_split(detector, holdout, threshold, drop, "hold-out of train"),
        "test": evaluate_split(detector, test_items, threshold, drop, test_name or "", bootstrap=200)
        if test_items
        else None,
        "speed": measure_speed(detector, (test_items or holdout)[:16]),
        "notes": [f"Ultralytics is {LICENCE}; this model is not shipped with fetalscope."],
    }
    report["speed"]["model_mb"] = round(Path(weights).stat().st_size / 1e6, 2)
    write_report(report, out)
    return report
