"""A bounded load test of a running server on this machine: N concurrent requests, latency and errors.

Benchmark tooling, not part of the server: used by ``benchmarks/bench_serve.py`` and by
``tests/serve/test_load.py``, both as ``benchmarks.loadtest`` with the repository root on the import path.
It refuses non-loopback URLs: it is for measuring your own server, not anyone else's.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from fetalscope.errors import BadInputError
from fetalscope.serve.security import is_loopback


@dataclass
class LoadResult:
    """Outcome of :func:`run_load`: counts, status codes, latency percentiles (ms) and wall time (s)."""

    path: str
    requests: int
    concurrency: int
    ok: int
    errors: int
    status_counts: dict[str, int]
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float
    wall_s: float
    throughput_rps: float
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not is_loopback(host):
        raise BadInputError(f"load tests run against this machine only (127.0.0.1/localhost), not {host!r}")


def run_load(base_url: str, file: tuple[str, bytes], *, path: str = "/v1/predict", n: int = 50,
             concurrency: int = 50, form: dict[str, str] | None = None, timeout_s: float = 120.0,
             token: str | None = None) -> LoadResult:
    """Send ``n`` POST requests with ``file`` (multipart field ``file``), ``concurrency`` at a time, all
    released together. A request counts as an error unless it answers 200."""
    import httpx

    _check_loopback(base_url)
    if n < 1 or concurrency < 1:
        raise BadInputError("n and concurrency must be at least 1")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(min(n, concurrency))

    with httpx.Client(base_url=base_url, timeout=timeout_s, limits=limits, headers=headers) as client:

        def one(i: int) -> None:
            if i < concurrency:
                with contextlib.suppress(threading.BrokenBarrierError):
                    gate.wait(timeout=timeout_s)
            start = time.perf_counter()
            try:
                r = client.post(path, files={"file": file}, data=form or {})
                status, detail = str(r.status_code), "" if r.status_code == 200 else r.text[:200]
            except httpx.HTTPError as exc:
                status, detail = type(exc).__name__, str(exc)[:200]
            ms = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(ms)
                statuses[status] += 1
                if detail and len(samples) < 5:
                    samples.append(f"{status}: {detail}")

        wall = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(n)))
        wall = time.perf_counter() - wall

    arr = np.asarray(latencies)
    ok = statuses.get("200", 0)
    return LoadResult(
        path=path, requests=n, concurrency=concurrency, ok=ok, errors=n - ok, status_counts=dict(statuses),
        p50_ms=round(float(np.percentile(arr, 50)), 1), p95_ms=round(float(np.percentile(arr, 95)), 1),
        max_ms=round(float(arr.max()), 1), mean_ms=round(statistics.fmean(latencies), 1), wall_s=round(wall, 2),
        throughput_rps=round(n / wall, 2) if wall > 0 else 0.0, error_samples=samples,
    )
