"""One file in, one row out: the file's bytes read once (hashed, then decoded from memory), then
:meth:`Session.analyse` with the tasks' arguments and :meth:`Analysis.to_row` for a still, or
:func:`~fetalscope.pipeline.video.analyse_video` for a cine loop (``clips.py``). A file that cannot be analysed
gives an error row (``status="error"`` and the message), never an exception, so one corrupt file never stops an
archive run; a file whose worker died while analysing it gets :func:`crash_row` from the engine."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.imaging.loader import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_image, read_input
from fetalscope.pipeline.batch import clips
from fetalscope.pipeline.batch.faults import crash_if_marked
from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.provenance import detector_for
from fetalscope.pipeline.batch.tasks import analyse_kwargs, parse_tasks
from fetalscope.pipeline.batch.walk import link_problem

OK, ERROR = "ok", "error"
CRASHED = "worker crashed while analysing this file"
FRAMES_KEY = "_frames"  # a clip row's per-frame rows, on their way to the frames output (never a column)
KEY_COLUMNS = ("path", "sha256", "status", "error", "kind")  # first in the output
TRAILING_COLUMNS = ("pixel_size_mm", "worker", "time_row_ms")  # last


@dataclass(frozen=True)
class RunConfig:
    """What every worker needs to build its own session and analyse a file: the plane model, the runtime and the
    task names (plain values, so it travels to Ray workers)."""

    model: str = "sononet-planes"
    runtime: str = "auto"
    tasks: Sequence[str] = ("predict",)
    session_options: dict[str, Any] = field(default_factory=dict)
    frame_rows: bool = False  # clips also give one row per processed frame


class RowRunner:
    """Turns items into rows (one per item, in order) with a session built once, on the first file that decodes:
    a run (or a ``--resume``) whose files all fail to read or decode never loads the pipeline or its models."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.tasks = parse_tasks(list(config.tasks))
        self.kwargs = analyse_kwargs(self.tasks)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.frame_rows = config.frame_rows
        self.max_bytes = int(config.session_options.get("max_bytes", DEFAULT_MAX_BYTES))
        self.max_pixels = int(config.session_options.get("max_pixels", DEFAULT_MAX_PIXELS))
        self._session: Any = None

    @property
    def session(self) -> Any:
        """The pipeline session (:class:`~fetalscope.pipeline.session.Session`), built on first use."""
        if self._session is None:
            from fetalscope.pipeline.session import Session

            detector = detector_for(self.config.tasks)
            self._session = Session(self.config.model, runtime=self.config.runtime, detector=detector,
                                    **self.config.session_options)
        return self._session

    def row(self, item: Item, sha256: str | None = None) -> dict[str, Any]:
        """The row of one item: ``path``, ``sha256``, ``status``, ``error``, ``kind`` (``image`` / ``clip``), then
        the analysis row (or the clip's columns) and the tasks' extra columns, ``pixel_size_mm`` given, the worker
        and the time it took (reading and hashing included). The file is read once and the row carries the hash of
        the bytes analysed (``sha256``, a hash computed before, stays only when the file cannot be read)."""
        crash_if_marked(item.path)
        t0 = time.perf_counter()
        row: dict[str, Any] = {"path": item.path, "sha256": sha256, "status": OK, "error": None, "kind": None}
        try:
            if problem := link_problem(item.path):
                raise BadInputError(f"{item.path}: {problem}")
            data = read_input(item.path, max_bytes=self.max_bytes)
            row["sha256"] = hashlib.sha256(data).hexdigest()
            if clips.is_clip(data, item.path):
                row.update(self._clip(item, data))
            else:
                row.update(self._still(item, data))
        except Exception as exc:  # noqa: BLE001 - any failure on one file is that file's error row
            row["status"], row["error"] = ERROR, _message(exc)
        row["pixel_size_mm"] = item.pixel_size_mm
        row["worker"] = self.worker
        row["time_row_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        frames = row.pop(FRAMES_KEY, None)
        out = {k: _plain(v) for k, v in row.items()}
        if frames is not None:
            out[FRAMES_KEY] = [{k: _plain(v) for k, v in f.items()} for f in frames]
        return out

    def _still(self, item: Item, data: bytes) -> dict[str, Any]:
        t0 = time.perf_counter()
        image = load_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, name=item.path)
        load_ms = (time.perf_counter() - t0) * 1000  # the session's own load step gets the decoded image
        analysis = self.session.analyse(image, name=item.path, pixel_size_mm=item.pixel_size_mm, **self.kwargs)
        timings = analysis.timings_ms
        timings["total"] = round(timings.get("total", 0.0) - timings.get("load", 0.0) + load_ms, 2)
        timings["load"] = round(load_ms, 2)
        row = {"kind": clips.IMAGE, **analysis.to_row()}
        row.pop("image", None)  # the path says it
        for task in self.tasks:
            if task.columns is not None:
                row.update(task.columns(self.session, analysis.loaded, analysis))
        return row

    def _clip(self, item: Item, data: bytes) -> dict[str, Any]:
        from fetalscope.pipeline.video import analyse_video

        result = analyse_video(self.session, data, name=item.path, pixel_size_mm=item.pixel_size_mm,
                               measure="measure" in self.kwargs)
        row = {"kind": clips.CLIP, **clips.clip_columns(result)}
        if "detect" in self.kwargs:
            row.update(clips.detection_columns(self.session, result))
        if self.frame_rows:
            row[FRAMES_KEY] = clips.frame_rows(item.path, result)
        return row


def crash_row(item: Item, crashes: int, sha256: str | None = None) -> dict[str, Any]:
    """The error row of a file whose worker died ``crashes`` time(s) while analysing it (given up on)."""
    return {"path": item.path, "sha256": sha256, "status": ERROR,
            "error": f"{item.path}: {CRASHED} ({crashes} time(s)); it was given up on", "kind": None,
            "pixel_size_mm": item.pixel_size_mm}


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (rows travel as JSON and become Parquet columns)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _message(exc: BaseException) -> str:
    from fetalscope.errors import FetalscopeError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, FetalscopeError) else f"{type(exc).__name__}: {text}"
