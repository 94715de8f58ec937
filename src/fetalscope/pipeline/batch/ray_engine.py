"""The Ray engine: the items as a Ray Data dataset, analysed by ``map_batches`` on a pool of actors, each of which
builds one :class:`~fetalscope.pipeline.batch.rows.RowRunner` (one session, models loaded once). An actor that
dies is restarted and its unfinished batches retried: Ray Data's own actor defaults (``max_restarts=-1``,
``max_task_retries=-1``), kept as they are because Ray deprecates setting them per ``map_batches`` call.

Without an address it starts a local cluster sized to this machine, with a small object store (only paths and
rows travel through it; on a small ``/dev/shm`` it lives in the temp folder); with one (``auto``, ``HOST:PORT``
or ``ray://HOST:PORT``) it joins that cluster, whose nodes need fetalscope installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from fetalscope.errors import UnsupportedError
from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig

OBJECT_STORE_BYTES = 256 * 1024**2
CRASH_ONCE_ENV = "FETALSCOPE_BATCH_CRASH_ONCE"  # fault injection for the tests: a flag file path


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

        _crash_once_if_asked()
        rows = []
        for text in batch["item"]:
            given = json.loads(text)
            rows.append(self.runner.row(Item(given["path"], given["pixel_size_mm"]), given["sha256"]))
        return {"row": np.array([json.dumps(r, default=str) for r in rows], dtype=object)}


def _crash_once_if_asked() -> None:
    flag = os.environ.get(CRASH_ONCE_ENV)
    if not flag:
        return
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)  # the first actor to get here dies once, mid-run, like a killed worker


def ray_rows(items: Sequence[Item], config: RunConfig, hashes: dict[str, str], *, workers: int | None,
             batch_size: int = 4) -> Iterator[dict[str, Any]]:
    """One row per item, in the order they finish, from ``workers`` actors (default: one per cluster CPU)."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws the one progress bar
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    size = max(1, min(workers or cluster_cpus(), len(items)))
    payload = [{"item": json.dumps({"path": i.path, "pixel_size_mm": i.pixel_size_mm,
                                    "sha256": hashes.get(i.path)})} for i in items]
    dataset = ray.data.from_items(payload, override_num_blocks=max(1, len(items) // batch_size)).map_batches(
        _Analyse, fn_constructor_kwargs={"config": asdict(config)}, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        for text in batch["row"]:
            yield json.loads(text)


def shutdown() -> None:
    import_ray().shutdown()
