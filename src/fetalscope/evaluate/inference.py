"""Run a model over a data loader and collect its raw logits with the true labels."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fetalscope.errors import BadInputError


def collect_logits(model: nn.Module, dataloader: Iterable, device: str | torch.device = "cpu", *,
                   progress: bool | None = None,
                   on_images_done: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N x C float32) and labels (N int64) of every batch ``(inputs, labels, ...)`` of ``dataloader``.

    Moves the model to ``device`` and runs it under ``torch.inference_mode`` in eval mode (its
    train/eval mode is restored afterwards). ``progress``: show a progress bar; default only when
    stderr is a terminal and no ``on_images_done`` hook is given. ``on_images_done(n)`` is called after each
    batch of ``n`` images (a caller's own progress bar).
    """
    show = (sys.stderr.isatty() and on_images_done is None) if progress is None else progress
    was_training = model.training
    model.to(device)
    model.eval()
    logits: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    try:
        total = len(dataloader) if hasattr(dataloader, "__len__") else None  # type: ignore[arg-type]
        with torch.inference_mode():
            for i, batch in enumerate(tqdm(dataloader, total=total, desc="inference", unit="batch",
                                           disable=not show)):
                if not isinstance(batch, list | tuple) or len(batch) < 2:
                    raise BadInputError(
                        f"batch {i} of the data loader is a {type(batch).__name__}; collect_logits needs "
                        "(inputs, labels) batches, as ImageDataset gives"
                    )
                x, y = batch[0], batch[1]
                out = model(x.to(device, non_blocking=True))
                if out.ndim != 2:
                    raise BadInputError(f"the model returned shape {tuple(out.shape)} for batch {i}; "
                                        "expected (batch, classes) logits")
                logits.append(out.float().cpu().numpy())
                labels.append(torch.as_tensor(y).reshape(-1).long().cpu().numpy())
                if on_images_done is not None:
                    on_images_done(len(labels[-1]))
    finally:
        model.train(was_training)
    if not logits:
        raise BadInputError("the data loader yielded no batches; check the dataset is not empty")
    z, lab = np.concatenate(logits), np.concatenate(labels)
    if len(z) != len(lab):
        raise BadInputError(f"the data loader gave {len(lab)} labels for {len(z)} images; "
                            "it must give one label per image")
    return z, lab
