"""The normal/abnormal study in one call: data -> patient-grouped split -> two-phase transfer learning
with the project trainer -> shortcut checks -> ``report.json`` / ``report.md`` (and a bundle)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope import config
from fetalscope.data.samples import Sample
from fetalscope.errors import BadInputError, DataError
from fetalscope.train.recipes.brain_findings import checks
from fetalscope.train.recipes.brain_findings.data import (
    SPLIT_DESCRIPTION,
    check_binary,
    load_binary_set,
    make_split,
    materialise,
    official_split_leak,
    one_per_source,
    positive_class,
    source_by_class,
)
from fetalscope.train.recipes.brain_findings.study_report import (
    CARD_PRESETS,
    CardText,
    conclusions,
    write_bundle,
    write_report,
)

ROBOFLOW_SET = "brain_normal_abnormal_roboflow"
TASK = "brain-normal-abnormal"


def default_data() -> Path:
    """The real (confounded) set in the shared data folder."""
    return config.shared_data_dir() / ROBOFLOW_SET


@dataclass
class BrainStudyOptions:
    """A study run.

    - ``data``: YOLO export, split folders or class folders (see :mod:`~fetalscope.train.recipes.brain_findings.data`).
    - ``out``: report folder (also holds ``data/``, the symlinked split, and ``model/``, the trained bundle).
    - ``bundle``: also write a bundle there (an existing bundle is replaced only with ``overwrite``).
    - ``preset``: card words, ``roboflow-demo`` | ``own-data`` | ``auto`` (``roboflow-demo`` for the shared
      Roboflow set, else ``own-data``).
    - ``positive``: class treated as positive for AUCs (``None``: the class not called ``normal``).
    - ``pretrained``: ``None`` loads offline base weights when the architecture has them.
    - ``gradcam`` / ``lime``: test images explained for check 3.
    """

    data: Path
    out: Path = Path("runs/brain-findings")
    bundle: Path | None = None
    name: str = "brain-normal-abnormal"
    model: str = "efficientnet_lite0"
    image_size: int | None = None
    phase1_epochs: int = 15
    phase2_epochs: int = 4
    batch_size: int = 16
    positive: str | None = None
    pretrained: bool | None = None
    lime: int = 6
    gradcam: int = 60
    seed: int = 0
    preset: str = "auto"
    overwrite: bool = False

    def card_text(self) -> CardText:
        if self.preset == "auto":
            roboflow = default_data().resolve()
            data = Path(self.data).resolve()
            return CARD_PRESETS["roboflow-demo" if data == roboflow or roboflow in data.parents else "own-data"]
        if self.preset not in CARD_PRESETS:
            raise BadInputError(f"unknown card preset '{self.preset}'; use auto or one of {', '.join(CARD_PRESETS)}")
        return CARD_PRESETS[self.preset]

    def use_pretrained(self) -> bool:
        if self.pretrained is not None:
            return self.pretrained
        from fetalscope.models import get_spec

        return not get_spec(self.model).base_weights.lower().startswith("none")


def _check_destination(opts: BrainStudyOptions) -> None:
    if opts.bundle is not None and (Path(opts.bundle) / "card.json").is_file() and not opts.overwrite:
        raise BadInputError(f"{opts.bundle} already holds a model bundle; choose another --bundle folder "
                            "(or pass --overwrite to replace it)")


def run_brain_study(opts: BrainStudyOptions) -> dict[str, Any]:
    """Run the study; returns the report (also written to ``opts.out``)."""
    from fetalscope.models.bundle import load_bundle
    from fetalscope.train.classifier.config import TrainConfig
    from fetalscope.train.classifier.trainer import train

    text = opts.card_text()
    _check_destination(opts)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)

    full = load_binary_set(opts.data)
    check_binary(full, opts.data)
    pos = positive_class(full.classes, opts.positive)
    split = make_split(full, opts.seed)
    if len({s.label for s in split.test}) != 2:
        raise DataError(f"{opts.data}: the test split holds one class only; the set is too small (add images)")

    # transfer learning with the project trainer
    tree = materialise(split, full.classes, out / "data")
    model_dir = out / "model"
    cfg = TrainConfig(data=str(tree), data_format="split_folders", model=opts.model,
                      pretrained=opts.use_pretrained(), out=str(model_dir), image_size=opts.image_size,
                      batch_size=opts.batch_size, phase1_epochs=opts.phase1_epochs,
                      phase2_epochs=opts.phase2_epochs, seed=opts.seed, tensorboard=False, name=opts.name,
                      task=TASK, amp="off")
    start = time.perf_counter()
    result = train(cfg)
    train_seconds = round(time.perf_counter() - start, 1)
    bundle = load_bundle(model_dir)
    model, pre = bundle.model.eval(), bundle.preprocess
    # class order of the bundle (split-folder names, sorted) may differ from the dataset's
    remap = {i: bundle.classes.index(c) for i, c in enumerate(full.classes)}
    test = [Sample(s.path, remap[s.label], s.patient, s.meta) for s in split.test]
    pos_b = bundle.classes.index(full.classes[pos])
    y = np.array([int(s.label == pos_b) for s in test])

    # shortcut checks
    uniq = one_per_source(list(full.samples))
    nuisance = checks.nuisance_aucs(uniq, pos, opts.seed)
    masking, plain_prob = checks.masking_aucs(model, test, pre, pos_b, bundle.temperature)
    attribution, rows = checks.attribution_study(model, test, pre, tuple(bundle.classes), opts.gradcam, opts.lime,
                                                 opts.seed)

    report: dict[str, Any] = {
        "name": opts.name,
        "status": text.status,
        "warning": text.warning,
        "positive_class": full.classes[pos],
        "data": {"path": str(opts.data), "source": full.source, "classes": list(full.classes),
                 "counts": {k: len(v) for k, v in split.parts().items()},
                 "groups": {k: len({s.patient for s in v}) for k, v in split.parts().items()},
                 "split": SPLIT_DESCRIPTION, "official_split_leak": official_split_leak(full),
                 "source_by_class": source_by_class(full)},
        "model": {"architecture": opts.model, "base_weights": bundle.card.get("base_weights", {}).get("name"),
                  "input_size": list(pre.input_size), "train_seconds": train_seconds,
                  "test_auc": masking["plain_auc"],
                  "test_accuracy": round(float(((plain_prob >= 0.5) == y).mean()), 4),
                  "test_images": len(test), "trainer_summary": result.report.get("summary", {})},
        "shortcut": {"nuisance_auc": nuisance, "nuisance_images": len(uniq), "masking": masking,
                     "attribution": attribution},
        "per_image_attribution": rows,
    }
    report["conclusions"] = conclusions(report)
    write_report(report, out)
    if opts.bundle is not None:
        write_bundle(report, text, bundle.card, model_dir, Path(opts.bundle))
    return report
