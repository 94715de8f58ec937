"""The local engine: one session in this process, the items one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig


def local_rows(items: Sequence[Item], config: RunConfig, hashes: dict[str, str]) -> Iterator[dict[str, Any]]:
    """One row per item, in order (``hashes``: the SHA-256 already known for some paths)."""
    runner = RowRunner(config)
    for item in items:
        yield runner.row(item, hashes.get(item.path))
