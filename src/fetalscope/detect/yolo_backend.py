"""Optional Ultralytics YOLO backend (``pip install fetalscope[yolo]``).

Licence: Ultralytics is **AGPL-3.0**. fetalscope's core never imports it; this module is loaded only
when the YOLO backend is asked for, and models trained with it are not bundled with fetalscope.
Using it in a network service brings AGPL obligations (or an Ultralytics enterprise licence).

Fully offline:

- ``YOLO_OFFLINE=1`` is set before import (Ultralytics then skips its online checks);
- ``YOLO_CONFIG_DIR`` points into fetalscope's cache (``cache_dir()/ultralytics``), so settings and
  fonts never land in the user's home;
- its plotting font (``Arial.ttf``) is satisfied with matplotlib's bundled DejaVu Sans, copied into
  that folder, so nothing is downloaded; training runs with ``plots=False`` anyway;
- models are built from a model yaml (``yolov8n.yaml``, ``yolo11n.yaml``), never from a ``.pt``
  download (``pretrained=False``).

The dataset is presented to Ultralytics as a folder of symbolic links inside the run folder (its
label caches are written beside the labels, and the source dataset must stay untouched).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fetalscope import config
from fetalscope.data.yolo import YoloItem, assert_groups_disjoint, group_split, read_yolo_dataset
from fetalscope.detect.types import Box
from fetalscope.errors import UnsupportedError
from fetalscope.imaging.loader import UltrasoundImage

LICENCE = "AGPL-3.0 (Ultralytics)"
INSTALL_HINT = "install the optional extra: pip install 'fetalscope[yolo]' (Ultralytics, AGPL-3.0)"


def ultralytics_config_dir() -> Path:
    """Where Ultralytics keeps settings and fonts: ``cache_dir()/ultralytics``."""
    path = config.cache_dir() / "ultralytics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _import_ultralytics() -> Any:
    """Import Ultralytics offline, with its config dir in the cache and a local font in place."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ultralytics_config_dir()))
    from PIL import Image

    pil_open = Image.open
    try:
        import ultralytics
        from ultralytics.utils import SETTINGS, USER_CONFIG_DIR
    except ModuleNotFoundError as exc:
        raise UnsupportedError(f"the YOLO backend needs Ultralytics, which is not installed: {INSTALL_HINT}") from exc
    finally:
        # Ultralytics replaces PIL.Image.open process-wide with a version that tries to install a HEIF
        # plugin on any unreadable file; fetalscope's one loader must keep PIL's own behaviour.
        Image.open = pil_open
    import matplotlib

    font_src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists() and font_src.is_file():
            shutil.copyfile(font_src, target)
    SETTINGS.update({"sync": False})
    return ultralytics


def _yolo_class() -> Any:
    """Ultralytics' ``YOLO`` model class, imported offline (see :func:`_import_ultralytics`)."""
    _import_ultralytics()
    from ultralytics import YOLO

    return YOLO


def is_available() -> bool:
    """Whether the optional Ultralytics package is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ultralytics") is not None


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


class UltralyticsDetector:
    """A trained Ultralytics model behind the :class:`~fetalscope.detect.types.Detector` face."""

    def __init__(self, model: Any, classes: Sequence[str], imgsz: int = 320, min_score: float = 0.01) -> None:
        self.model = model
        self.classes = tuple(classes)
        self.imgsz = imgsz
        self.min_score = min_score

    @classmethod
    def load(cls, weights: str | Path, classes: Sequence[str], imgsz: int = 320) -> UltralyticsDetector:
        return cls(_yolo_class()(str(weights)), classes, imgsz)

    def predict_batch(self, images: list[UltrasoundImage]) -> list[list[Box]]:
        if not images:
            return []
        # Ultralytics expects BGR numpy arrays for in-memory images
        arrays = [np.ascontiguousarray(im.pixels[..., ::-1]) for im in images]
        results = self.model.predict(arrays, imgsz=self.imgsz, conf=self.min_score, device="cpu", verbose=False)
        out = []
        for res in results:
            boxes = res.boxes
            xyxy = boxes.xyxy.cpu().numpy().tolist()
            conf = boxes.conf.cpu().numpy().tolist()
            cls = boxes.cls.cpu().numpy().astype(int).tolist()
            out.append(
                sorted(
                    (Box(self.classes[c], float(s), *map(float, b)) for b, s, c in zip(xyxy, conf, cls, strict=True)),
                    key=lambda b: -b.score,
                )
            )
        return out

    def predict(self, image: UltrasoundImage) -> list[Box]:
        return self.predict_batch([image])[0]


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
    yolo = _yolo_class()(opts.model)
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
    """The same protocol as :func:`fetalscope.detect.run.train_and_evaluate`, with an Ultralytics model:
    train on part of the training groups, validate (epoch choice, threshold) on the rest, test on
    ``valid``/``test``. Writes ``report.json`` + ``report.md`` into ``out_dir``.

    ``settings`` (keyword-only): the :class:`YoloTrainSettings` fields given to :func:`train_yolo`; ``seed``
    also draws the hold-out groups."""
    from fetalscope.detect.report import write_report
    from fetalscope.detect.run import (
        _split_summary,
        decide_threshold_and_filter,
        evaluate_split,
        measure_speed,
    )

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
            "splits": {s: _split_summary(dataset.splits[s], dataset.names) for s in dataset.splits},
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
