"""From a training config to samples, patient-disjoint splits and datasets ready for the loops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetalscope.data.augment import build_augment
from fetalscope.data.datasets import ImageDataset
from fetalscope.data.fetal_planes_db import load_fetal_planes_db
from fetalscope.data.folders import has_split_folders, load_class_folders, load_split_folders
from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.data.splits import (
    Split,
    assert_patient_disjoint,
    carve_validation,
    kfold_splits,
    official_split,
    patient_split,
)
from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import DataError
from fetalscope.models import get_spec
from fetalscope.train.classifier.config import TrainConfig

FPDB_CSV = "FETAL_PLANES_DB_data.csv"


@dataclass
class PreparedData:
    """Classes, the split, the preprocessing and a dataset factory that shares decoded images."""

    classes: tuple[str, ...]
    split: Split
    preprocess: PreprocessConfig
    source: str
    split_description: str
    augment_level: str
    seed: int
    hashes: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _plain: dict[int, ImageDataset] = field(default_factory=dict)

    def dataset(self, samples: list[Sample], augment: bool) -> ImageDataset:
        """A dataset over ``samples``; augmented and plain views share one cache of decoded images."""
        key = id(samples)
        if key not in self._plain:
            self._plain[key] = ImageDataset(samples, self.preprocess, augment=None, cache=True)
        plain = self._plain[key]
        if not augment:
            return plain
        view = ImageDataset(samples, self.preprocess, augment=build_augment(self.augment_level, seed=self.seed),
                            cache=True)
        view._cache = plain._cache  # share decoded, resized images between the two views
        return view


def detect_format(cfg: TrainConfig) -> str:
    root = Path(cfg.data)
    if cfg.data_format != "auto":
        return cfg.data_format
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    if cfg.csv or (root / FPDB_CSV).is_file():
        return "fetal_planes_db"
    if root.is_dir() and has_split_folders(root):
        return "split_folders"
    return "folders"


def _cap(samples: list[Sample], n: int | None, seed: int) -> list[Sample]:
    if n is None or len(samples) <= n:
        return samples
    rng = random.Random(seed)
    picked = samples[:]
    rng.shuffle(picked)
    return sorted(picked[:n], key=lambda s: str(s.path))


def _load(cfg: TrainConfig, fmt: str) -> tuple[LabelledSet, Split, str]:
    if fmt == "fetal_planes_db":
        full = load_fetal_planes_db(cfg.data, task=cfg.task, csv_path=cfg.csv)
        if cfg.split == "kfold":
            split = kfold_splits(full, cfg.folds, seed=cfg.seed, val_fraction=cfg.val_fraction)[cfg.fold]
            desc = f"patient-grouped {cfg.folds}-fold, fold {cfg.fold}; validation carved by patient"
        else:
            split = official_split(full, val_fraction=cfg.val_fraction, seed=cfg.seed)
            desc = "official Train column for train vs test; validation carved from train by patient"
        return full, split, desc
    if fmt == "split_folders":
        parts = load_split_folders(cfg.data)
        any_part = next(iter(parts.values()))
        train = list(parts["train"].samples) if "train" in parts else []
        if not train:
            raise DataError(f"{cfg.data}: a train/ folder with class folders is required")
        val = list(parts["val"].samples) if "val" in parts else []
        if not val:
            train, val = carve_validation(train, cfg.val_fraction, seed=cfg.seed)
        test = list(parts["test"].samples) if "test" in parts else []
        full = LabelledSet(train + val + test, any_part.classes, any_part.source)
        return full, Split(train, val, test), "train/val/test folders as given (val carved by patient if absent)"
    if fmt == "folders":
        full = load_class_folders(cfg.data)
        if cfg.split == "kfold":
            split = kfold_splits(full, cfg.folds, seed=cfg.seed, val_fraction=cfg.val_fraction)[cfg.fold]
            return full, split, f"patient-grouped {cfg.folds}-fold, fold {cfg.fold}"
        split = patient_split(full, val_fraction=cfg.val_fraction, test_fraction=0.2, seed=cfg.seed)
        return full, split, "random patient-grouped split: 20% test, validation carved by patient"
    raise DataError(f"unknown data format '{fmt}'; use auto, fetal_planes_db or folders")


def prepare_data(cfg: TrainConfig) -> PreparedData:
    fmt = detect_format(cfg)
    full, split, desc = _load(cfg, fmt)
    split = Split(_cap(split.train, cfg.max_images, cfg.seed), _cap(split.val, cfg.max_images, cfg.seed + 1),
                  _cap(split.test, cfg.max_images, cfg.seed + 2))
    assert_patient_disjoint(split.train, split.val, split.test, names=["train", "val", "test"])
    preprocess = get_spec(cfg.model).preprocess
    if cfg.image_size:
        preprocess = preprocess.replace(input_size=(cfg.image_size, cfg.image_size))
    counts: dict[str, dict[str, Any]] = {}
    for name, part in split.parts().items():
        c = {cls: 0 for cls in full.classes}
        for s in part:
            c[full.classes[s.label]] += 1
        counts[name] = c
    return PreparedData(classes=tuple(full.classes), split=split, preprocess=preprocess, source=full.source,
                        split_description=desc, augment_level=cfg.augment, seed=cfg.seed, hashes=split.hashes(),
                        counts=counts)
