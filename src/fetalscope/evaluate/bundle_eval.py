"""Evaluate a model bundle on a labelled dataset folder (the ``fetalscope evaluate`` verb).

Data formats, chosen by what the folder holds:

- FETAL_PLANES_DB download (``FETAL_PLANES_DB_data.csv`` + ``Images/``): ``test`` is the official
  test part (``Train`` = 0); ``val`` is the validation part carved from the official train part by
  patient (15 %, seed 0, as training does); ``all`` is every image of the task.
- ``train/ val/ test/`` class folders: that split folder (``all``: every folder).
- plain class folders: ``all``, or the ``test``/``val`` part of the patient-grouped split training
  uses for such folders (20 % test, 15 % validation, seed 0).

The report's label space is the dataset's classes, plus any bundle class the dataset lacks. A
dataset class the bundle has no output for gets probability 0 and is reported as not covered, as
are the card's ``classes_not_covered``; its images count as errors in accuracy. Probabilities use
the card's temperature, as the deployed model does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from fetalscope.data.datasets import ImageDataset
from fetalscope.data.fetal_planes_db import load_fetal_planes_db
from fetalscope.data.folders import has_split_folders, load_class_folders, load_split_folders
from fetalscope.data.samples import Sample
from fetalscope.data.splits import official_split, patient_split
from fetalscope.errors import BadInputError, DataError
from fetalscope.evaluate.bootstrap import N_BOOT
from fetalscope.evaluate.classification_report import evaluate_predictions
from fetalscope.evaluate.inference import collect_logits

FPDB_CSV = "FETAL_PLANES_DB_data.csv"
SPLITS = ("test", "val", "all")
VAL_FRACTION = 0.15
TEST_FRACTION = 0.2


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", str(name)).split()).casefold()


def load_eval_samples(data: str | Path, *, task: str = "planes", split: str = "test",
                      seed: int = 0) -> tuple[list[Sample], list[str], str, str]:
    """The samples of ``split`` in ``data``: ``(samples, classes, source, split description)``."""
    if split not in SPLITS:
        raise BadInputError(f"split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; pass a FETAL_PLANES_DB download or class folders")
    if root.is_file() and root.name == FPDB_CSV or (root / FPDB_CSV).is_file():
        csv = root if root.is_file() else root / FPDB_CSV
        full = load_fetal_planes_db(csv.parent, task=task, csv_path=csv)
        if split == "all":
            return list(full.samples), list(full.classes), full.source, "all images of the task"
        parts = official_split(full, val_fraction=VAL_FRACTION, seed=seed)
        if split == "test":
            return parts.test, list(full.classes), full.source, "official test part (Train = 0)"
        return parts.val, list(full.classes), full.source, \
            f"validation carved by patient from the official train part ({VAL_FRACTION:.0%}, seed {seed})"
    if has_split_folders(root):
        parts = load_split_folders(root)
        any_part = next(iter(parts.values()))
        classes, source = list(any_part.classes), any_part.source
        if split == "all":
            return [s for p in parts.values() for s in p.samples], classes, source, \
                f"all split folders ({', '.join(parts)})"
        if split not in parts:
            raise DataError(f"{root}: no {split}/ folder; present: {sorted(parts)}. "
                            "Pass --split all or one of those")
        return list(parts[split].samples), classes, source, f"the {split}/ folder"
    full = load_class_folders(root)
    if split == "all":
        return list(full.samples), list(full.classes), full.source, "every image in the class folders"
    parts = patient_split(full, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=seed)
    chosen = parts.test if split == "test" else parts.val
    described = (f"{split} part of the patient-grouped split ({TEST_FRACTION:.0%} test, "
                 f"{VAL_FRACTION:.0%} val, seed {seed})")
    return chosen, list(full.classes), full.source, described


def align_classes(data_classes: Sequence[str], model_classes: Sequence[str]) -> tuple[list[str], list[int]]:
    """Label space of the report and where each model output goes in it.

    Returns ``(classes, columns)``: the dataset's classes followed by model classes the dataset lacks
    (names matched ignoring case and ``_``/``-``), and for each model output its column in ``classes``.
    """
    classes = list(data_classes)
    index = {_norm(c): i for i, c in enumerate(classes)}
    columns = []
    for name in model_classes:
        key = _norm(name)
        if key not in index:
            index[key] = len(classes)
            classes.append(str(name))
        columns.append(index[key])
    if len(set(columns)) != len(columns):
        raise BadInputError(f"model classes {list(model_classes)} contain names that differ only by case "
                            "or '_'/'-'")
    return classes, columns


def _cap(samples: list[Sample], n: int | None, seed: int) -> list[Sample]:
    if n is None or len(samples) <= n:
        return samples
    if n < 1:
        raise BadInputError(f"max_images must be >= 1, got {n}")
    picked = samples[:]
    random.Random(seed).shuffle(picked)
    return sorted(picked[:n], key=lambda s: str(s.path))


def evaluate_bundle_on_data(model: str | Path, data: str | Path, *, task: str = "planes", split: str = "test",
                            out_dir: str | Path | None = None, max_images: int | None = None,
                            device: str = "cpu", batch_size: int = 32, seed: int = 0, n_boot: int = N_BOOT,
                            progress: bool | None = None,
                            on_images_done: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run bundle ``model`` (name or folder) on ``split`` of ``data`` and build the evaluation report.

    ``on_images_done(n, total)`` is called after each batch of ``n`` of the ``total`` images (a progress bar).

    Writes report.json, report.md and plots into ``out_dir`` when given. Returns the report dict
    (``summary`` holds the headline numbers).
    """
    import torch
    from torch.utils.data import DataLoader

    from fetalscope.models.bundle import load_bundle

    bundle = load_bundle(model, device=device)
    samples, data_classes, source, described = load_eval_samples(data, task=task, split=split, seed=seed)
    samples = _cap(samples, max_images, seed)
    if not samples:
        raise DataError(f"{data}: the {split} split holds no images; pick another --split")
    classes, columns = align_classes(data_classes, bundle.classes)
    loader = DataLoader(ImageDataset(samples, bundle.preprocess, cache=False), batch_size=batch_size,
                        shuffle=False, num_workers=0)
    with torch.inference_mode():
        done = None if on_images_done is None else (lambda n: on_images_done(n, len(samples)))
        logits, _ = collect_logits(bundle.model, loader, device=device, progress=progress, on_images_done=done)
    if logits.shape[1] != len(bundle.classes):
        raise DataError(f"bundle {bundle.path} outputs {logits.shape[1]} logits but its card lists "
                        f"{len(bundle.classes)} classes; re-save the bundle")
    probs = np.zeros((len(samples), len(classes)))
    probs[:, columns] = softmax(logits.astype(np.float64) / bundle.temperature, axis=1)

    not_covered: dict[str, str] = {}
    declared = {_norm(c) for c in bundle.card.get("classes_not_covered") or []}
    for i, name in enumerate(classes):
        if i not in columns:
            not_covered[name] = "the model has no output for this class"
        elif _norm(name) in declared:
            not_covered[name] = "listed in the model card's classes_not_covered"
    y = np.array([s.label for s in samples])  # dataset classes come first in ``classes``
    context = {
        "model": f"{bundle.name} ({bundle.card.get('architecture')}, {bundle.path})",
        "temperature": bundle.temperature,
        "data": source,
        "split": f"{split}: {described}",
        "task": task,
        "images": len(samples) if max_images is None
        else f"{len(samples)} (capped by max_images, seed {seed})",
    }
    return evaluate_predictions(
        y, probs, classes, groups=[s.patient for s in samples], meta=[s.meta for s in samples],
        classes_not_covered=not_covered, out_dir=out_dir, n_boot=n_boot, seed=seed, context=context,
        title=f"{bundle.name} on {Path(data).name} ({split} split)",
    )
