"""The two training phases, with early stopping on validation weighted F1 and resumable state.

Phase 1 trains only the head on cached backbone features (fast: no image decoding, no backbone
forward). Phase 2 unfreezes the backbone (all of it or its last N blocks) and fine-tunes end to end
with augmentation, a lower learning rate and warm-up + cosine decay.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.train.classifier.progress import ProgressHook, report
from fetalscope.train.classifier.schedule import warmup_cosine
from fetalscope.train.runtime_opts import autocast_context

Logger = Callable[[str, float, int], None]


@dataclass
class EpochRecord:
    phase: int
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_weighted_f1: float
    lr: float
    seconds: float
    images_per_second: float


@dataclass
class PhaseState:
    """What early stopping tracks; enough to resume a phase after an interruption."""

    best_score: float = -1.0
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    epochs_without_improvement: int = 0
    history: list[EpochRecord] = field(default_factory=list)


def _val_scores(logits: torch.Tensor, labels: torch.Tensor, criterion: nn.Module) -> tuple[float, float, float]:
    loss = float(criterion(logits.float(), labels))
    pred = logits.argmax(1).numpy()
    y = labels.numpy()
    return loss, float(accuracy_score(y, pred)), float(f1_score(y, pred, average="weighted", zero_division=0))


def _update_best(state: PhaseState, score: float, epoch: int, module: nn.Module) -> bool:
    if score > state.best_score + 1e-6:
        state.best_score = score
        state.best_epoch = epoch
        state.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in module.state_dict().items()})
        state.epochs_without_improvement = 0
        return True
    state.epochs_without_improvement += 1
    return False


def fit_head(model: FetalscopeClassifier, train_feats: torch.Tensor, train_labels: torch.Tensor,
             val_feats: torch.Tensor, val_labels: torch.Tensor, *, epochs: int, lr: float, weight_decay: float,
             batch_size: int, criterion: nn.Module, patience: int, log: Logger | None = None,
             sample_weights: torch.Tensor | None = None, seed: int = 0,
             progress: ProgressHook | None = None) -> PhaseState:
    """Phase 1: train ``model.head`` on cached features; restores the best head at the end."""
    head = model.head
    state = PhaseState()
    if epochs == 0:
        return state
    gen = torch.Generator().manual_seed(seed)
    ds = TensorDataset(train_feats, train_labels)
    if sample_weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(sample_weights, len(ds), replacement=True, generator=gen)
        loader = DataLoader(ds, batch_size=batch_size, sampler=sampler)
    else:
        loader = DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen)
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, len(loader))
    sched = warmup_cosine(opt, steps, warmup_steps=max(1, len(loader) // 2))
    step = 0
    for epoch in range(epochs):
        head.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for i, (f, y) in enumerate(loader, 1):
            opt.zero_grad(set_to_none=True)
            loss = criterion(head(f.float()), y)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach()) * len(y)
            n += len(y)
            report(progress, "head", epoch + 1, epochs, i, len(loader), total / n)
        head.eval()
        with torch.inference_mode():
            val_logits = torch.cat([head(chunk.float()) for chunk in val_feats.split(256)])
        vl, va, vf1 = _val_scores(val_logits, val_labels, criterion)
        secs = time.perf_counter() - t0
        rec = EpochRecord(1, epoch, total / max(1, n), vl, va, vf1, opt.param_groups[0]["lr"], secs,
                          n / max(secs, 1e-9))
        state.history.append(rec)
        report(progress, "head", epoch + 1, epochs, len(loader), len(loader), rec.train_loss, va)
        if log:
            for key in ("train_loss", "val_loss", "val_accuracy", "val_weighted_f1"):
                log(f"phase1/{key}", getattr(rec, key), epoch)
        _update_best(state, vf1, epoch, head)
        if state.epochs_without_improvement >= patience:
            break
    if state.best_state is not None:
        head.load_state_dict(state.best_state)
    return state


def _save_resume(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def finetune(model: FetalscopeClassifier, train_loader: DataLoader, val_loader: DataLoader, *, epochs: int,
             lr: float, weight_decay: float, warmup_epochs: float, criterion: nn.Module, patience: int,
             unfreeze_blocks: int, device: torch.device, amp: str = "off", channels_last: bool = True,
             log: Logger | None = None, resume_path: Path | None = None, resume: bool = False,
             baseline_score: float | None = None, progress: ProgressHook | None = None) -> PhaseState:
    """Phase 2: unfreeze and fine-tune end to end; restores the best weights at the end.

    With ``resume_path`` the full state (weights, optimiser, scheduler, early-stopping state) is saved
    after every epoch; ``resume=True`` continues from it.
    """
    state = PhaseState()
    if epochs == 0:
        return state
    model.freeze_backbone(trainable_last_blocks=unfreeze_blocks)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(train_loader))
    sched = warmup_cosine(opt, epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch))
    start_epoch = 0
    if baseline_score is not None:
        # phase 2 must beat what phase 1 reached, or the phase-1 weights are kept
        state.best_score = baseline_score
        state.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    if resume and resume_path is not None and resume_path.is_file():
        blob = torch.load(resume_path, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        state = blob["phase_state"]
        start_epoch = blob["epoch"] + 1
    if channels_last and device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    for epoch in range(start_epoch, epochs):
        if state.epochs_without_improvement >= patience:
            break
        model.train()
        # Backbone BatchNorm layers keep their pretrained running statistics (their affine parameters
        # still learn). Batch statistics of small fine-tuning batches would wreck them, and converted
        # checkpoints with BatchNorm folded into the convolutions have no real statistics at all.
        for module in model.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for i, (x, y) in enumerate(train_loader, 1):
            x, y = x.to(device), y.to(device)
            if channels_last and device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with autocast_context(device, amp):
                logits = model(x)
            loss = criterion(logits.float(), y)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
            report(progress, "fine-tune", epoch + 1, epochs, i, len(train_loader), total / n)
        train_secs = time.perf_counter() - t0
        val_logits, val_labels = predict_logits(model, val_loader, device, amp, channels_last)
        vl, va, vf1 = _val_scores(val_logits, val_labels, criterion)
        secs = time.perf_counter() - t0
        rec = EpochRecord(2, epoch, total / max(1, n), vl, va, vf1, opt.param_groups[0]["lr"], secs,
                          n / max(train_secs, 1e-9))
        state.history.append(rec)
        report(progress, "fine-tune", epoch + 1, epochs, len(train_loader), len(train_loader), rec.train_loss, va)
        if log:
            for key in ("train_loss", "val_loss", "val_accuracy", "val_weighted_f1", "images_per_second"):
                log(f"phase2/{key}", getattr(rec, key), epoch)
        _update_best(state, vf1, epoch, model)
        _save_resume(resume_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), "phase_state": state, "epoch": epoch})
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.to(memory_format=torch.contiguous_format)
    return state


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device, amp: str = "off",
                   channels_last: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        x = x.to(device)
        if channels_last and device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            outs.append(model(x).float().cpu())
        labels.append(y.cpu())
    return torch.cat(outs), torch.cat(labels)


def class_weight_tensor(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights normalised to mean 1 (absent classes get weight 0)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(weights, dtype=torch.float32)
