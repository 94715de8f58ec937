"""The Ray engine: the items as a Ray Data dataset, analysed by ``map_batches`` on a pool of actors, each of which
builds one :class:`~fetalscope.pipeline.batch.rows.RowRunner` (one session, models loaded once).

Crash budget, with Ray Data's defaults and no deprecated remote arguments: an actor that dies is restarted by Ray
and its batch retried (``max_restarts=-1``, ``max_task_retries=-1``: Ray Data's own fault tolerance). Retrying for
ever would loop on a file that kills its worker every time (a decoder segfault, an out-of-memory kill), so each
actor tells a small ledger actor (:class:`CrashLedger`, one per run) when it starts and ends each file: a file
started again without having ended has killed its worker once more, and one that did so ``max_crashes`` times is
given its error row (:func:`~.rows.crash_row`) instead of another try, so the retried batch completes. (Ray 2.60
deprecates passing ``max_task_retries`` through ``map_batches`` and names no replacement; this design needs
none.) Each block is one batch and each actor runs one at a time, so the blocks spread over the actors of every
node (Ray Data's locality alone gave the driver node's actor every batch of a two-node cluster, bench_batch) and
a dying actor takes no queued batch down with it.

Without an address it starts a local cluster sized to this machine, with a small object store (only paths and
rows travel through it; on a small ``/dev/shm`` it lives in the temp folder) and Ray's token authentication
(its notice that it chose it is not printed); with an address (``auto`` or ``HOST:PORT``) it joins that
cluster, whose nodes need fetalscope installed (``ray://`` is refused by the plan: Ray Data does not run through
Ray Client).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from fetalscope.errors import UnsupportedError
from fetalscope.pipeline.batch.faults import crash_once_if_asked
from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig, crash_row

OBJECT_STORE_BYTES = 256 * 1024**2
_AUTH_SETUP = "ray._private.authentication.authentication_token_setup"
_PROGRESS = "ray.data._internal.progress"


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
    auth_notice = logging.getLogger(_AUTH_SETUP)  # says, as a warning, that the new cluster uses token auth
    level = auth_notice.level
    auth_notice.setLevel(logging.ERROR)
    try:
        ray.init(address="local", **options, **quiet)  # a new cluster, whatever an earlier one left behind
    finally:
        auth_notice.setLevel(level)
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


class CrashLedger:
    """The run's record of which file each actor is analysing (a Ray actor, no CPU): ``begin`` says how many times
    the file was started before without ending, i.e. how many workers it has killed."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}
        self.deaths = 0

    def begin(self, path: str) -> int:
        died = self.open.get(path, 0)
        self.open[path] = died + 1
        self.deaths += bool(died)
        return died

    def end(self, path: str) -> None:
        self.open.pop(path, None)

    def worker_deaths(self) -> int:
        return self.deaths


class _Analyse:
    """The ``map_batches`` callable: one row runner per actor; each file is begun and ended in the ledger."""

    def __init__(self, config: dict[str, Any], ledger: Any, max_crashes: int) -> None:
        self.runner = RowRunner(RunConfig(**config))
        self.ledger = ledger
        self.max_crashes = max_crashes

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import ray

        crash_once_if_asked()
        rows = []
        for text in batch["item"]:
            given = json.loads(text)
            item = Item(given["path"], given["pixel_size_mm"])
            died = ray.get(self.ledger.begin.remote(item.path))
            if died >= self.max_crashes:
                rows.append(crash_row(item, died, _sha256_or_none(item.path)))
            else:
                rows.append(self.runner.row(item, given["sha256"]))
            ray.get(self.ledger.end.remote(item.path))
        return {"row": np.array([json.dumps(r, default=str) for r in rows], dtype=object)}


def _sha256_or_none(path: str) -> str | None:
    from fetalscope.pipeline.batch.manifest import sha256_of

    try:
        return sha256_of(path)
    except OSError:
        return None


def ray_rows(items: Sequence[Item], config: RunConfig, hashes: dict[str, str], *, workers: int | None,
             batch_size: int = 4, max_crashes: int = 2,
             note: Callable[[str], None] = lambda text: None) -> Iterator[dict[str, Any]]:
    """One row per item, in the order they finish, from ``workers`` actors (default: one per cluster CPU) taking
    batches of about ``batch_size`` files; a batch whose worker died is retried by Ray, and a file that killed its
    worker ``max_crashes`` times is an error row."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws the one progress bar
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger(_PROGRESS).setLevel(logging.ERROR)  # warns that the bars are off: the CLI draws its own
    blocks = max(1, math.ceil(len(items) / batch_size))
    size = max(1, min(workers or cluster_cpus(), len(items)))
    blocks = max(blocks, size)  # an input for every actor
    ledger = ray.remote(num_cpus=0)(CrashLedger).remote()
    payload = [{"item": json.dumps({"path": i.path, "pixel_size_mm": i.pixel_size_mm,
                                    "sha256": hashes.get(i.path)})} for i in items]
    dataset = ray.data.from_items(payload, override_num_blocks=blocks).map_batches(
        _Analyse, fn_constructor_kwargs={"config": asdict(config), "ledger": ledger, "max_crashes": max_crashes},
        batch_size=None, batch_format="numpy", num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1))
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        for text in batch["row"]:
            yield json.loads(text)
    deaths = ray.get(ledger.worker_deaths.remote())
    if deaths:
        note(f"Ray: {deaths} worker(s) died while analysing a file; Ray restarted them and ran their batches again")


def shutdown() -> None:
    import_ray().shutdown()
