"""The registry of batch tasks: what ``fetalscope batch --tasks`` may name and what each adds to a row.

A task adds keyword arguments to :meth:`Session.analyse` (``detect="auto"``, ``measure="auto"``) and/or a
function giving extra row columns from the session, the decoded image and its analysis. A new task is one
:class:`Task` line in :data:`TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fetalscope.errors import BadInputError

ExtraColumns = Callable[[Any, Any, Any], dict[str, Any]]  # (session, image, analysis) -> columns


@dataclass(frozen=True)
class Task:
    """``name``: what ``--tasks`` calls it; ``analyse``: keyword arguments it adds to ``Session.analyse``;
    ``columns``: extra columns it adds to the row (``None``: the analysis row says it all)."""

    name: str
    help: str
    analyse: dict[str, Any] = field(default_factory=dict)
    columns: ExtraColumns | None = None


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("predict", "plane, every class probability, brain sub-plane and findings (always run)"),
    Task("detect", "brain structures on ultrasound brain images", {"detect": "auto"}),
    Task("measure", "head biometry on brain images, cardiothoracic ratio on thorax images", {"measure": "auto"}),
    Task("quality", "acquisition checklist (score 0-100, grade, failed criteria) on head and four-chamber images",
         {"quality": True}),
)}
DEFAULT_TASKS = ("predict",)


def parse_tasks(text: str | Sequence[str] | None) -> list[Task]:
    """The tasks named in ``text`` (comma-separated or a list; ``predict`` is always first); an unknown name is a
    :class:`BadInputError` that lists the known ones."""
    names = text.split(",") if isinstance(text, str) else list(text or DEFAULT_TASKS)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise BadInputError(f"unknown batch task(s) {', '.join(repr(n) for n in unknown)}; "
                            f"choose from {', '.join(TASKS)}")
    return [TASKS[n] for n in dict.fromkeys(["predict", *names])]


def analyse_kwargs(tasks: Sequence[Task]) -> dict[str, Any]:
    """The keyword arguments of ``Session.analyse`` that ``tasks`` ask for together."""
    kwargs: dict[str, Any] = {}
    for t in tasks:
        kwargs.update(t.analyse)
    return kwargs
