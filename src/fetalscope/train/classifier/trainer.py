"""`fetalscope train`: data -> splits -> model -> phase 1 (cached features) -> phase 2 -> bundle + report."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fetalscope import __version__
from fetalscope.errors import DataError
from fetalscope.models import create_model
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.train.classifier.config import TrainConfig
from fetalscope.train.classifier.data_setup import PreparedData, prepare_data
from fetalscope.train.classifier.features import cache_key, cached_features
from fetalscope.train.classifier.loop import class_weight_tensor, finetune, fit_head, predict_logits
from fetalscope.train.classifier.progress import ProgressHook
from fetalscope.train.runtime_opts import autocast_context, cpu_supports_bf16, pick_device, seed_everything


@dataclass
class TrainResult:
    bundle: Path
    report: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float


class _TBLogger:
    """TensorBoard scalars when available and asked for; silently nothing otherwise."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(folder))
            except Exception:  # tensorboard missing: training goes on without it
                self.writer = None

    def __call__(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def build_model(cfg: TrainConfig, n_classes: int) -> FetalscopeClassifier:
    model = create_model(cfg.model, num_classes=n_classes, pretrained=cfg.pretrained, **cfg.model_kwargs)
    return model


def _loader(dataset: Any, cfg: TrainConfig, shuffle: bool, sampler: Any = None) -> DataLoader:
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                      generator=torch.Generator().manual_seed(cfg.seed))


def _criterion(cfg: TrainConfig, labels: np.ndarray, n_classes: int) -> nn.Module:
    weight = class_weight_tensor(labels, n_classes) if cfg.balance == "weights" else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def train(cfg: TrainConfig, progress: ProgressHook | None = None) -> TrainResult:
    """Run a full training and write a bundle (weights + card + report) into ``cfg.out``; ``progress``
    receives a :class:`~fetalscope.train.classifier.progress.TrainProgress` per batch and per epoch."""
    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    data: PreparedData = prepare_data(cfg)
    n_classes = len(data.classes)
    model = build_model(cfg, n_classes).to(device)
    logger = _TBLogger(out / "tensorboard", cfg.tensorboard)

    train_labels = np.array([s.label for s in data.split.train])
    if len(train_labels) == 0 or len(data.split.val) == 0:
        raise DataError("training needs non-empty train and validation splits")
    criterion = _criterion(cfg, train_labels, n_classes)

    # phase 1: frozen backbone, head on cached features
    model.freeze_backbone(trainable_last_blocks=0)
    plain_train = data.dataset(data.split.train, augment=False)
    plain_val = data.dataset(data.split.val, augment=False)
    preprocess = data.preprocess.to_dict()
    t1 = time.perf_counter()
    tr_f, tr_y = cached_features(model, _loader(plain_train, cfg, False), device,
                                 key=cache_key(model, preprocess, data.hashes["train"]), amp=cfg.amp,
                                 progress=progress)
    va_f, va_y = cached_features(model, _loader(plain_val, cfg, False), device,
                                 key=cache_key(model, preprocess, data.hashes["val"]), amp=cfg.amp,
                                 progress=progress)
    feature_seconds = time.perf_counter() - t1
    sample_w = None
    if cfg.balance == "sampler":
        counts = np.bincount(train_labels, minlength=n_classes).astype(np.float64)
        sample_w = torch.tensor(1.0 / np.maximum(counts[train_labels], 1), dtype=torch.double)
    model.head.to("cpu")
    phase1 = fit_head(model, tr_f, tr_y, va_f, va_y, epochs=cfg.phase1_epochs, lr=cfg.lr_head,
                      weight_decay=cfg.weight_decay, batch_size=max(cfg.batch_size, 64), criterion=criterion,
                      patience=cfg.patience, log=logger, sample_weights=sample_w, seed=cfg.seed,
                      progress=progress)
    model.head.to(device)

    # phase 2: fine-tuning with augmentation
    sampler = None
    if cfg.balance == "sampler":
        sampler = torch.utils.data.WeightedRandomSampler(sample_w, len(train_labels), replacement=True,
                                                         generator=torch.Generator().manual_seed(cfg.seed))
    aug_train = data.dataset(data.split.train, augment=cfg.augment != "none")
    phase2 = finetune(model, _loader(aug_train, cfg, True, sampler), _loader(plain_val, cfg, False),
                      epochs=cfg.phase2_epochs, lr=cfg.lr_finetune, weight_decay=cfg.weight_decay,
                      warmup_epochs=cfg.warmup_epochs, criterion=criterion.to(device), patience=cfg.patience,
                      unfreeze_blocks=cfg.unfreeze_blocks, device=device, amp=cfg.amp,
                      channels_last=cfg.channels_last, log=logger, resume_path=out / "resume.pt",
                      resume=cfg.resume, baseline_score=phase1.best_score if phase1.history else None,
                      progress=progress)
    logger.close()
    model.eval().to("cpu")

    report = evaluate_trained(model, data, cfg, out)
    history = [asdict(r) for r in phase1.history + phase2.history]
    p2_ips = [r["images_per_second"] for r in history if r["phase"] == 2]
    card = {
        "name": cfg.name or f"{cfg.model}-{cfg.task}",
        "version": "1",
        "task": cfg.task,
        "classes": list(data.classes),
        "classes_not_covered": [],
        "temperature": report["summary"].get("temperature") or 1.0,
        "base_weights": {"name": model.spec.base_weights if cfg.pretrained else "none (random initialisation)",
                         "licence": model.spec.licence if cfg.pretrained else "n/a"},
        "data": {"source": data.source, "path": str(cfg.data), "split": data.split_description,
                 "image_list_sha256": data.hashes, "counts": data.counts},
        "metrics": report.get("summary", {}),
        "training": {"config": cfg.to_dict(), "history": history, "device": str(device),
                     "bf16": device.type == "cuda" or (cfg.amp != "off" and cpu_supports_bf16()),
                     "feature_extraction_seconds": round(feature_seconds, 2),
                     "phase2_images_per_second": round(float(np.mean(p2_ips)), 2) if p2_ips else None,
                     "best_epoch_phase1": phase1.best_epoch, "best_epoch_phase2": phase2.best_epoch},
        "software": {"fetalscope": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "intended_use": "Research and education only; not a medical device.",
        # the preprocessing the model was trained with (e.g. an --image-size override), served the same way
        "preprocess": data.preprocess.to_dict(),
    }
    from fetalscope.models.bundle import save_bundle

    bundle = save_bundle(model, out, card)
    (out / "history.json").write_text(json.dumps(history, indent=2))
    resume = out / "resume.pt"
    if resume.exists():
        resume.unlink()
    return TrainResult(bundle=Path(bundle), report=report, history=history, seconds=time.perf_counter() - t_start)


def evaluate_trained(model: FetalscopeClassifier, data: PreparedData, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Temperature on validation, then the full report on the held-out test split."""
    from fetalscope.evaluate.classification_report import evaluate_predictions

    device = torch.device("cpu")
    val_logits, val_labels = predict_logits(model, _loader(data.dataset(data.split.val, augment=False), cfg, False),
                                            device, "off", False)
    test_samples = data.split.test or data.split.val
    test_logits, test_labels = predict_logits(model, _loader(data.dataset(test_samples, augment=False), cfg, False),
                                              device, "off", False)
    probs = torch.softmax(test_logits.double(), 1).numpy()
    meta = [s.meta for s in test_samples]
    groups = [s.patient for s in test_samples]
    with autocast_context(device, "off"):
        report = evaluate_predictions(
            test_labels.numpy(), probs, list(data.classes), groups=groups, meta=meta,
            val_logits=val_logits.numpy(), val_labels=val_labels.numpy(), test_logits=test_logits.numpy(),
            out_dir=out, title=f"{cfg.model} on {data.source} ({cfg.task})",
        )
    if not data.split.test:
        report["note"] = "no separate test split: metrics are on the validation split"
    return report
