"""How a training run reports its progress: one event per batch and per epoch, to a hook the caller
passes (the CLI draws a Rich bar from them; training itself never prints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainProgress:
    """Where a run stands. ``stage`` is ``features`` (backbone features for phase 1), ``head`` (phase 1)
    or ``fine-tune`` (phase 2); ``epoch`` counts from 1 (0 while extracting features). ``batch`` of
    ``batches`` is the position in the current epoch (``batch == batches`` when it ends);
    ``train_loss`` is the running mean so far, ``val_accuracy`` is set once the epoch's validation ran."""

    stage: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    train_loss: float | None = None
    val_accuracy: float | None = None

    @property
    def epoch_done(self) -> bool:
        return self.val_accuracy is not None


ProgressHook = Callable[[TrainProgress], None]


def report(hook: ProgressHook | None, *args: object, **kwargs: object) -> None:
    """Send a :class:`TrainProgress` to ``hook`` when there is one."""
    if hook is not None:
        hook(TrainProgress(*args, **kwargs))  # type: ignore[arg-type]
