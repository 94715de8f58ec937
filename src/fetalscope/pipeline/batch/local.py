"""The local engine: one session in this process, the items one after another. ``started`` hears each path
before its analysis starts (the store's journal: a file that kills the process is known to ``--resume``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig


def local_rows(items: Sequence[Item], config: RunConfig, hashes: dict[str, str], *,
               started: Callable[[str], None] = lambda path: None) -> Iterator[dict[str, Any]]:
    """One row per item, in order (``hashes``: the SHA-256 already known for some paths)."""
    runner = RowRunner(config)
    for item in items:
        started(item.path)
        yield runner.row(item, hashes.get(item.path))
