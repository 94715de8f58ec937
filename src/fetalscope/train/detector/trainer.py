"""Training loop for the torchvision detector: SGD with warm-up and cosine decay, best epoch kept by
validation mAP@0.5:0.95. CPU-friendly (small inputs, frozen early backbone blocks)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from fetalscope.data.yolo import YoloItem
from fetalscope.detect.torchvision_backend import TorchvisionDetector
from fetalscope.errors import DataError
from fetalscope.evaluate.detection import mean_average_precision
from fetalscope.train.detector.dataset import DetectionDataset, collate
from fetalscope.train.detector.evaluation import predict_items, truth_boxes


@dataclass
class DetectTrainConfig:
    """Optimisation settings of one detector training run (stored in the bundle card)."""

    epochs: int = 24
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 50
    eval_every: int = 4  # epochs between validation mAP evaluations (and the last epoch)
    augment: bool = True
    seed: int = 0
    max_iters: int | None = None  # stop early (smoke tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """Per-epoch history (loss, time, validation mAP when evaluated) and the epoch whose weights were kept."""

    history: list[dict[str, Any]] = field(default_factory=list)
    iteration_losses: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_map: float | None = None
    seconds: float = 0.0


def fit_detector(
    detector: TorchvisionDetector,
    train_items: Sequence[YoloItem],
    cfg: DetectTrainConfig,
    *,
    val_items: Sequence[YoloItem] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``detector.model`` in place on ``train_items``; with ``val_items`` the weights of the epoch
    with the best validation mAP@0.5:0.95 are restored at the end."""
    if not train_items:
        raise DataError("no training images")
    torch.manual_seed(cfg.seed)
    model = detector.model
    dataset = DetectionDataset(train_items, augment=cfg.augment, seed=cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=generator,
        num_workers=0,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    if cfg.max_iters is not None:
        total = min(total, cfg.max_iters)

    def lr_at(it: int) -> float:
        if it < cfg.warmup_iters:
            return cfg.lr * (0.1 + 0.9 * it / max(1, cfg.warmup_iters))
        progress = (it - cfg.warmup_iters) / max(1, total - cfg.warmup_iters)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    result = TrainResult()
    best_state = None
    start = time.perf_counter()
    it = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        epoch_start, losses = time.perf_counter(), []
        for images, targets in loader:
            for group in optimiser.param_groups:
                group["lr"] = lr_at(it)
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite detector loss at iteration {it}: {loss_dict}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimiser.step()
            value = float(loss.detach())
            losses.append(value)
            result.iteration_losses.append(value)
            it += 1
            if it >= total:
                break
        row: dict[str, Any] = {
            "epoch": epoch,
            "loss": round(sum(losses) / max(1, len(losses)), 4),
            "seconds": round(time.perf_counter() - epoch_start, 1),
            "iterations": it,
        }
        last = it >= total or epoch == cfg.epochs
        if val_items and (epoch % cfg.eval_every == 0 or last):
            model.eval()
            preds = predict_items(detector, val_items)
            m = mean_average_precision(preds, truth_boxes(val_items, detector.classes), detector.classes)
            row["val_map_50_95"], row["val_map_50"] = m["map_50_95"], m["map_50"]
            if result.best_map is None or (m["map_50_95"] or 0.0) > result.best_map:
                result.best_map, result.best_epoch = m["map_50_95"] or 0.0, epoch
                best_state = copy.deepcopy(model.state_dict())
        result.history.append(row)
        log(" ".join(f"{k}={v}" for k, v in row.items()))
        if last:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif result.best_epoch is None:
        result.best_epoch = result.history[-1]["epoch"]
    model.eval()
    result.seconds = round(time.perf_counter() - start, 1)
    return result
