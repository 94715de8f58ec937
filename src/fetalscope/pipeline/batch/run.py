"""A batch run from start to end: plan (which files, which are already done, which killed their worker too often
in earlier runs), execute (an engine's rows into part files as they come, merged into the output at the end, also
when interrupted; a clip's per-frame rows into the frames output) and summarise."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.pipeline.batch.manifest import Item, read_items, sha256_of
from fetalscope.pipeline.batch.provenance import check_resume, run_provenance
from fetalscope.pipeline.batch.rows import ERROR, FRAMES_KEY, OK, RunConfig, crash_row
from fetalscope.pipeline.batch.store import Store
from fetalscope.pipeline.batch.tasks import parse_tasks

ENGINES = ("local", "ray")
FLUSH_SECONDS = 30.0
MAX_CRASHES = 2  # a file that killed its worker this many times is an error row


def frames_output(output: str | Path) -> Path:
    """Where a run's per-frame rows of clips go: ``OUT.frames.parquet`` next to ``OUT.parquet``."""
    out = Path(output)
    return out.with_name(out.stem + ".frames.parquet")


@dataclass
class Plan:
    """What a run will do: the files still to analyse (``todo``), how many were skipped as already done, the
    SHA-256s computed while checking, and where the rows go."""

    store: Store
    config: RunConfig
    engine: str
    address: str | None
    workers: int | None
    todo: list[Item]
    skipped: int
    hashes: dict[str, str] = field(default_factory=dict)
    given_up: list[tuple[Item, int]] = field(default_factory=list)  # (item, crashes): error rows, not analysed
    frames: Store | None = None  # the per-frame rows of clips, when asked for
    max_crashes: int = MAX_CRASHES

    @property
    def models(self) -> dict[str, str]:
        """``{role: "name version [revision N]"}`` of the bundles the run uses (its output records them)."""
        return dict((self.store.provenance or {}).get("models") or {})


@dataclass
class Summary:
    """What a run did: rows this run by status and by plane, files skipped, seconds, and the output's rows."""

    output: Path
    by_status: Counter
    by_plane: Counter
    skipped: int
    seconds: float
    rows_in_output: int
    interrupted: bool = False
    models: dict[str, str] = field(default_factory=dict)  # role: bundle label, as the output records them

    @property
    def analysed(self) -> int:
        return sum(self.by_status.values())

    @property
    def files_per_second(self) -> float:
        return self.analysed / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        status = ", ".join(f"{self.by_status.get(s, 0)} {s}" for s in (OK, ERROR))
        out = [f"{self.analysed} file(s) analysed in {self.seconds:.1f} s ({self.files_per_second:.2f} files/s): "
               f"{status}" + (f"; {self.skipped} skipped (already done)" if self.skipped else "")]
        if self.by_plane:
            out.append("planes: " + ", ".join(f"{p} {n}" for p, n in self.by_plane.most_common()))
        if self.models:
            out.append("models: " + ", ".join(f"{role} {label}" for role, label in self.models.items()))
        out.append(f"{self.rows_in_output} row(s) in {self.output}")
        return out


def plan_batch(inputs: Sequence[str | Path], output: str | Path, *, tasks: str | Sequence[str] | None = None,
               engine: str = "local", address: str | None = None, workers: int | None = None,
               resume: bool = False, overwrite: bool = False, model: str = "sononet-planes",
               runtime: str = "auto", frame_rows: bool = False, max_crashes: int = MAX_CRASHES) -> Plan:
    """Check every option, list the input files and, with ``resume``, leave out those whose path and SHA-256
    already have an ``ok`` row, and give up on those that killed the process of ``max_crashes`` earlier runs
    (the local engine's journals). ``frame_rows``: clips also write one row per frame to
    :func:`frames_output`. Changes nothing on disk but the output's folder."""
    if engine not in ENGINES:
        raise BadInputError(f"--engine must be one of {', '.join(ENGINES)}, got '{engine}'")
    if address and engine != "ray":
        raise BadInputError("--address needs --engine ray")
    if address and address.startswith("ray://"):  # Ray Data's executor needs a driver inside the cluster
        raise BadInputError(f"--address {address}: Ray Data does not run through Ray Client (ray://); run the "
                            "command on a node of the cluster with --address auto or HEAD:6379, or as a Ray job: "
                            "ray job submit --address http://HEAD:8265 -- fetalscope batch ... --engine ray "
                            "--address auto")
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    if workers not in (None, 1) and engine == "local":
        raise BadInputError("--engine local runs one worker in this process; use --engine ray for --workers > 1")
    if max_crashes < 1:
        raise BadInputError(f"--max-crashes must be at least 1, got {max_crashes}")
    names = [t.name for t in parse_tasks(tasks)]
    provenance = run_provenance(model, runtime, names)
    store = Store(output, provenance=provenance)
    frames = Store(frames_output(output), key=("path", "frame"), provenance=provenance) if frame_rows else None
    items = read_items(inputs)
    if resume:  # before anything is written: rows of another setup are not added to this archive
        check_resume([*store.files(), *(frames.files() if frames is not None else [])], provenance)
    store.prepare(resume=resume, overwrite=overwrite)
    if frames is not None:
        frames.prepare(resume=resume, overwrite=overwrite)
    done = store.done() if resume else {}
    crashes = store.crashes() if resume else Counter()
    todo, hashes, skipped, given_up = [], {}, 0, []
    for item in items:
        if crashes[item.path] >= max_crashes:
            given_up.append((item, crashes[item.path]))
            continue
        if item.path in done:
            with contextlib.suppress(OSError):  # gone since: analyse it again and let its row say so
                hashes[item.path] = sha256_of(item.path)
            if hashes.get(item.path) == done[item.path]:
                skipped += 1
                continue
        todo.append(item)
    config = RunConfig(model=model, runtime=runtime, tasks=tuple(names), frame_rows=frame_rows)
    return Plan(store, config, engine, address, workers, todo, skipped, hashes, given_up, frames, max_crashes)


def execute(plan: Plan, *, advance: Callable[[int], None] = lambda n: None, flush_every: int = 64,
            note: Callable[[str], None] = lambda text: None) -> Summary:
    """Run the plan's engine over the files still to do, write rows as part files (every ``flush_every`` rows or
    30 s) and merge them into the output, also when the run is interrupted (then ``Summary.interrupted``: the
    output holds what finished and ``--resume`` does the rest). ``note`` hears what the engine says about itself."""
    t0 = time.perf_counter()
    by_status: Counter = Counter()
    by_plane: Counter = Counter()
    pending: list[dict[str, Any]] = []
    pending_frames: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    interrupted = False
    rows_of_engine = _rows(plan, note)
    try:
        for row in rows_of_engine:
            pending_frames.extend(row.pop(FRAMES_KEY, None) or [])
            pending.append(row)
            by_status[row["status"]] += 1
            if row["status"] == OK and row.get("plane"):
                by_plane[row["plane"]] += 1
            advance(1)
            if len(pending) >= flush_every or time.monotonic() - last_flush > FLUSH_SECONDS:
                _flush(plan, pending, pending_frames)
                pending, pending_frames, last_flush = [], [], time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        rows_of_engine.close()  # the engine's own clean-up (Ray shutdown) before the merge
        _flush(plan, pending, pending_frames)
        if plan.frames is not None:
            plan.frames.merge()
        rows = plan.store.merge()
    return Summary(plan.store.output, by_status, by_plane, plan.skipped, time.perf_counter() - t0, rows, interrupted,
                   plan.models)


def _flush(plan: Plan, rows: list[dict[str, Any]], frame_rows: list[dict[str, Any]]) -> None:
    if plan.frames is not None:  # the frames first: a row in the output means its frames are written
        plan.frames.write_part(frame_rows)
    plan.store.write_part(rows)


def _rows(plan: Plan, note: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    for item, crashes in plan.given_up:
        note(f"{item.path}: gave up on it, the run died {crashes} time(s) while analysing it")
        yield crash_row(item, crashes)
    if not plan.todo:
        return
    if plan.engine == "local":
        from fetalscope.pipeline.batch.local import local_rows

        yield from local_rows(plan.todo, plan.config, plan.hashes, started=plan.store.started)
        return
    from fetalscope.pipeline.batch import ray_engine

    started = ray_engine.connect(plan.address)
    note(f"Ray: {'joined' if plan.address else 'started'} a cluster of {ray_engine.describe_cluster()}")
    try:
        yield from ray_engine.ray_rows(plan.todo, plan.config, plan.hashes, workers=plan.workers,
                                       max_crashes=plan.max_crashes, note=note)
    finally:
        if started:
            ray_engine.shutdown()
