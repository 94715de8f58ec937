"""One file in, one row out: the file's hash, then :meth:`Session.analyse` with the tasks' arguments and
:meth:`Analysis.to_row`. A file that cannot be analysed gives an error row (``status="error"`` and the
message), never an exception, so one corrupt file never stops an archive run."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fetalscope.pipeline.batch.manifest import Item, sha256_of
from fetalscope.pipeline.batch.tasks import analyse_kwargs, parse_tasks

OK, ERROR = "ok", "error"
KEY_COLUMNS = ("path", "sha256", "status", "error")  # first in the output
TRAILING_COLUMNS = ("pixel_size_mm", "worker", "time_row_ms")  # last


@dataclass(frozen=True)
class RunConfig:
    """What every worker needs to build its own session and analyse a file: the plane model, the runtime and the
    task names (plain values, so it travels to Ray workers)."""

    model: str = "sononet-planes"
    runtime: str = "auto"
    tasks: Sequence[str] = ("predict",)
    session_options: dict[str, Any] = field(default_factory=dict)


class RowRunner:
    """A session, built once, that turns items into rows (one per item, in order)."""

    def __init__(self, config: RunConfig) -> None:
        from fetalscope.pipeline.session import Session

        self.tasks = parse_tasks(list(config.tasks))
        self.kwargs = analyse_kwargs(self.tasks)
        detector = "brain-structures" if "detect" in self.kwargs else None
        self.session = Session(config.model, runtime=config.runtime, detector=detector, **config.session_options)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def row(self, item: Item, sha256: str | None = None) -> dict[str, Any]:
        """The row of one item: ``path``, ``sha256``, ``status``, ``error``, then the analysis row and the
        tasks' extra columns, ``pixel_size_mm`` given, the worker and the time it took (hash included)."""
        t0 = time.perf_counter()
        row: dict[str, Any] = {"path": item.path, "sha256": sha256, "status": OK, "error": None}
        try:
            row["sha256"] = sha256 or sha256_of(item.path)
            analysis = self.session.analyse(item.path, name=item.path, pixel_size_mm=item.pixel_size_mm,
                                            **self.kwargs)
            row.update(analysis.to_row())
            row.pop("image", None)  # the path says it
            for task in self.tasks:
                if task.columns is not None:
                    row.update(task.columns(self.session, analysis.loaded, analysis))
        except Exception as exc:  # noqa: BLE001 - any failure on one file is that file's error row
            row["status"], row["error"] = ERROR, _message(exc)
        row["pixel_size_mm"] = item.pixel_size_mm
        row["worker"] = self.worker
        row["time_row_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        return {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (rows travel as JSON and become Parquet columns)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _message(exc: BaseException) -> str:
    from fetalscope.errors import FetalscopeError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, FetalscopeError) else f"{type(exc).__name__}: {text}"
