"""Progress bars for the long training and evaluation verbs (``train``, ``ablate``, ``evaluate``).

The lower layers never print: they call a hook (``train``'s :class:`TrainProgress` events, ``evaluate``'s
``on_images_done(n, total)``) and these bars turn the calls into Rich bars with count, rate and time left on
stderr. On anything but a terminal the context managers yield ``None`` (no hook: logs stay clean).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fetalscope.cli import common

if TYPE_CHECKING:
    from fetalscope.train.classifier.progress import TrainProgress

STAGE_NAMES = {"features": "features", "head": "head (frozen backbone)", "fine-tune": "fine-tune"}


class _Rate(ProgressColumn):
    """Items per second of a task, in the task's own unit."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "items")
        return Text(f"{speed:.1f} {unit}/s" if speed else f"-- {unit}/s", style="progress.data.speed")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), _Rate(),
                    TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=common.console,
                    transient=False)


def _on_terminal() -> bool:
    return common.console.is_terminal


class TrainBars:
    """A :data:`~fetalscope.train.classifier.progress.ProgressHook` drawing three bars: variants (ablations
    only), the epochs of the current phase (with the last validation accuracy) and the batches of the current
    pass (with the running training loss)."""

    def __init__(self, bar: Progress, variants: int = 0) -> None:
        self.bar = bar
        self.variants: TaskID | None = (bar.add_task("variants", total=variants, unit="variants")
                                        if variants else None)
        self.epochs = bar.add_task("epochs", total=None, unit="epochs")
        self.batches = bar.add_task("batches", total=None, unit="batches")
        self._stage: str | None = None

    def __call__(self, p: TrainProgress) -> None:
        stage = STAGE_NAMES.get(p.stage, p.stage)
        if p.stage != self._stage and p.epochs:
            self.bar.reset(self.epochs, total=p.epochs, description=f"{stage} epochs")
        self._stage = p.stage
        if p.epoch_done:
            self.bar.update(self.epochs, completed=p.epoch,
                            description=f"{stage} epochs (train loss {p.train_loss:.3f}, "
                                        f"val accuracy {100 * (p.val_accuracy or 0.0):.1f}%)")
            self.bar.refresh()  # draw every finished epoch now: the next phase resets this bar
            return
        if p.batch == 1:  # a new pass over the data
            self.bar.reset(self.batches, total=p.batches)
        where = f"epoch {p.epoch}/{p.epochs}" if p.epochs else "extracting"
        loss = "" if p.train_loss is None else f", loss {p.train_loss:.3f}"
        self.bar.update(self.batches, completed=p.batch, description=f"{stage} {where}{loss}")

    def variant_done(self, name: str) -> None:
        if self.variants is not None:
            self.bar.update(self.variants, advance=1, description=f"variants (last: {name})")
        self._stage = None


@contextlib.contextmanager
def training_bars(variants: int = 0) -> Iterator[TrainBars | None]:
    """Bars for a training run (``variants`` > 0: an ablation of that many variants); ``None`` off a terminal."""
    if not _on_terminal():
        yield None
        return
    with _progress() as bar:
        yield TrainBars(bar, variants)


class ImageBar:
    """``on_images_done(n, total)`` for a run whose image count the lower layer finds out."""

    def __init__(self, bar: Progress, description: str) -> None:
        self.bar = bar
        self.task = bar.add_task(description, total=None, unit="images")

    def __call__(self, n: int, total: int) -> None:
        self.bar.update(self.task, total=total, advance=n)


@contextlib.contextmanager
def image_bar(description: str) -> Iterator[ImageBar | None]:
    """An image-count bar whose total is set by the first call; ``None`` off a terminal."""
    if not _on_terminal():
        yield None
        return
    with _progress() as bar:
        yield ImageBar(bar, description)
