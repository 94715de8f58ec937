"""The knobs of a training run, as one serialisable dataclass (stored in the model card)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError


@dataclass
class TrainConfig:
    """A training run. ``data`` is a FETAL_PLANES_DB folder (CSV + Images/) or a class-folder tree."""

    data: str
    task: str = "planes"
    data_format: str = "auto"  # auto | fetal_planes_db | folders
    csv: str | None = None  # FETAL_PLANES_DB CSV when not at data/FETAL_PLANES_DB_data.csv
    model: str = "fetalnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = True
    out: str = "runs/train"
    image_size: int | None = None  # square input override (e.g. 128 for quick runs)
    batch_size: int = 32
    phase1_epochs: int = 15
    phase2_epochs: int = 10
    lr_head: float = 1e-3
    lr_finetune: float = 1e-4
    unfreeze_blocks: int = -1  # -1: whole backbone in phase 2; N: only the last N blocks
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    balance: str = "weights"  # weights | sampler | none
    augment: str = "default"  # default | light | none
    patience: int = 5  # early stopping on validation weighted F1 (epochs without improvement)
    val_fraction: float = 0.15
    split: str = "official"  # official (Train column / train-test folders) | kfold
    folds: int = 5
    fold: int = 0
    seed: int = 0
    workers: int = 0
    amp: str = "auto"  # auto | bf16 | off
    channels_last: bool = True
    resume: bool = False
    max_images: int | None = None  # cap per split, for smoke runs
    tensorboard: bool = True
    name: str | None = None  # bundle name written into the card

    def __post_init__(self) -> None:
        if self.balance not in ("weights", "sampler", "none"):
            raise BadInputError(f"balance must be weights, sampler or none, got '{self.balance}'")
        if self.augment not in ("default", "light", "none"):
            raise BadInputError(f"augment must be default, light or none, got '{self.augment}'")
        if self.amp not in ("auto", "bf16", "off"):
            raise BadInputError(f"amp must be auto, bf16 or off, got '{self.amp}'")
        if self.split not in ("official", "kfold"):
            raise BadInputError(f"split must be official or kfold, got '{self.split}'")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise BadInputError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.batch_size < 1 or self.phase1_epochs < 0 or self.phase2_epochs < 0:
            raise BadInputError("batch_size must be >= 1 and epoch counts >= 0")
        if not 0.0 < self.val_fraction < 0.9:
            raise BadInputError(f"val_fraction must be in (0, 0.9), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BadInputError(f"unknown training option(s): {', '.join(unknown)}")
        if "data" not in d:
            raise BadInputError("the training config needs 'data': a FETAL_PLANES_DB folder or class folders")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_config_file(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML or JSON file, as a plain mapping (validated by :meth:`TrainConfig.from_dict`)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: config file not found")
    text = p.read_text(encoding="utf-8")
    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise BadInputError(f"{p}: config must be a mapping of option: value")
    return data
