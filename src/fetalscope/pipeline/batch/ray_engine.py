"""The Ray engine: the items as a Ray Data dataset, analysed by ``map_batches`` on a pool of actors, each of which
builds one :class:`~fetalscope.pipeline.batch.rows.RowRunner` (one session, models loaded once).

Crash budget, with Ray's own mechanisms: an actor that dies is restarted by Ray (``max_restarts=-1``, Ray Data's
default), but Ray Data's default of retrying its tasks for ever (``max_task_retries=-1``) would loop for ever on
a file that kills its worker every time (a decoder segfault, an out-of-memory kill). So the first pass runs the
files in batches with ``max_task_retries=0`` and ``DataContext.max_errored_blocks=-1`` (a batch whose actor died
is dropped, the run goes on); the files of dropped batches then run again one per task, one task in flight per
actor, with ``max_task_retries=max_crashes-2``; a file still without a row killed its worker ``max_crashes``
times (once in its batch, then alone) and becomes an error row (:func:`~.rows.crash_row`). ``max_task_retries``
travels as a ``map_batches`` remote argument, which Ray 2.60 deprecates (removal announced for Ray 2.64) with no
named replacement yet; the warning is silenced here.

Without an address it starts a local cluster sized to this machine, with a small object store (only paths and
rows travel through it; on a small ``/dev/shm`` it lives in the temp folder); with one (``auto`` or ``HOST:PORT``)
it joins that cluster, whose nodes need fetalscope installed (``ray://`` is refused by the plan: Ray Data does not
run through Ray Client).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from fetalscope.errors import UnsupportedError
from fetalscope.pipeline.batch.faults import crash_once_if_asked
from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig, crash_row

OBJECT_STORE_BYTES = 256 * 1024**2
_RAY_BLOCK_ERRORS = "ray.data._internal.execution.streaming_executor_state"  # logs each dropped batch at length


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UnsupportedError("--engine ray needs Ray Data: pip install 'fetalscope[ray]'") from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local one; ``True`` when this call started Ray (so the caller
    shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
        except (ConnectionError, ray.exceptions.RayError) as exc:
            raise UnsupportedError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:300]} "
                                   "(is it running, and is its auth token in RAY_AUTH_TOKEN_PATH?)") from None
        return True
    options: dict[str, Any] = {"num_cpus": os.cpu_count() or 1, "object_store_memory": OBJECT_STORE_BYTES}
    shm = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else 0
    if shm < 2 * OBJECT_STORE_BYTES:
        options["_plasma_directory"] = tempfile.gettempdir()  # small /dev/shm (containers): spill to disk
    ray.init(address="local", **options, **quiet)  # a new cluster, whatever an earlier one left behind
    return True


def _check_reachable(address: str) -> None:
    """Fail fast (5 s) on a ``HOST:PORT`` nobody answers at: Ray itself retries for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UnsupportedError(f"cannot join the Ray cluster at {address}: nothing answers there ({exc}); start "
                               "it with `ray start --head --port PORT` or check the address") from None


def cluster_cpus() -> int:
    return max(1, int(import_ray().cluster_resources().get("CPU", 1)))


def describe_cluster() -> str:
    """``N node(s), M CPU(s)`` of the cluster this process is connected to."""
    ray = import_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return f"{len(nodes)} node(s), {cluster_cpus()} CPU(s)"


class _Analyse:
    """The ``map_batches`` callable: one row runner per actor."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.runner = RowRunner(RunConfig(**config))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        crash_once_if_asked()
        rows = []
        for text in batch["item"]:
            given = json.loads(text)
            rows.append(self.runner.row(Item(given["path"], given["pixel_size_mm"]), given["sha256"]))
        return {"row": np.array([json.dumps(r, default=str) for r in rows], dtype=object)}


def ray_rows(items: Sequence[Item], config: RunConfig, hashes: dict[str, str], *, workers: int | None,
             batch_size: int = 4, max_crashes: int = 2,
             note: Callable[[str], None] = lambda text: None) -> Iterator[dict[str, Any]]:
    """One row per item, in the order they finish, from ``workers`` actors (default: one per cluster CPU); the
    files of a batch whose worker died run again alone, and a file that killed its worker ``max_crashes`` times
    is an error row."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws the one progress bar
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False
    # the blocks hold paths (bytes), so where they live does not matter: without this the actor on the driver's
    # node took every batch of a two-node cluster while the other node's actor waited (measured, bench_batch)
    context.execution_options.actor_locality_enabled = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger(_RAY_BLOCK_ERRORS).setLevel(logging.CRITICAL)  # a dropped batch is said below, once
    size = max(1, min(workers or cluster_cpus(), len(items)))
    done: set[str] = set()
    with _errored_blocks_allowed(context):
        for row in _analysed(ray, items, config, hashes, size=size, batch_size=batch_size, retries=0):
            done.add(row["path"])
            yield row
        again = [i for i in items if i.path not in done]
        if again and max_crashes > 1:
            note(f"Ray: a worker died; {len(again)} file(s) of its batches run again one by one")
            for row in _analysed(ray, again, config, hashes, size=min(size, len(again)), batch_size=1,
                                 retries=max_crashes - 2):
                done.add(row["path"])
                yield row
    for item in items:
        if item.path not in done:
            sha = None
            with contextlib.suppress(OSError):
                from fetalscope.pipeline.batch.manifest import sha256_of

                sha = sha256_of(item.path)
            yield crash_row(item, max_crashes, sha)


@contextlib.contextmanager
def _errored_blocks_allowed(context: Any) -> Iterator[None]:
    before = context.max_errored_blocks
    context.max_errored_blocks = -1  # a batch whose actor died is dropped; its files are run again
    try:
        yield
    finally:
        context.max_errored_blocks = before


def _analysed(ray: Any, items: Sequence[Item], config: RunConfig, hashes: dict[str, str], *, size: int,
              batch_size: int, retries: int) -> Iterator[dict[str, Any]]:
    payload = [{"item": json.dumps({"path": i.path, "pixel_size_mm": i.pixel_size_mm,
                                    "sha256": hashes.get(i.path)})} for i in items]
    in_flight = {"max_tasks_in_flight_per_actor": 2 if batch_size > 1 else 1}  # alone: no bystander dies too
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        dataset = ray.data.from_items(payload, override_num_blocks=max(1, len(items) // batch_size)).map_batches(
            _Analyse, fn_constructor_kwargs={"config": asdict(config)}, batch_size=batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size, **in_flight), num_cpus=1,
            max_task_retries=retries)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        for text in batch["row"]:
            yield json.loads(text)


def shutdown() -> None:
    import_ray().shutdown()
