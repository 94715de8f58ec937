"""Load test and latency of the fetalscope server, on this machine only (loopback).

Starts ``python -m fetalscope.serve`` on a free 127.0.0.1 port (or uses ``--url`` of a running local
server), then measures:

1. ``/v1/predict`` latency, one request at a time (p50/p95 over ``--repeats``);
2. ``/v1/explain`` latency for every method, one at a time (p50/p95, and the server's own time);
3. a burst of ``--n`` concurrent ``/v1/predict`` requests (default 50 at once): errors, p50/p95.

Bounded: every request has a timeout and the whole run stops after ``--budget`` seconds.

    .venv/bin/python benchmarks/bench_serve.py                     # bundled model, real image if present
    .venv/bin/python benchmarks/bench_serve.py --model runs/x --n 50 --output serve-bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from fetalscope import config
from fetalscope.serve.service import UI_METHODS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: benchmarks.loadtest

from benchmarks.loadtest import run_load  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default_image() -> Path:
    real = sorted((config.shared_data_dir() / "hc18" / "training_set").glob("0*_HC.png"))
    if real:
        return real[0]
    return Path(__file__).resolve().parent.parent / "src/fetalscope/serve/examples/phantom_fetal_brain.png"


def _start(model: str | None, threads: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "fetalscope.serve", "--port", str(port), "--no-ui", "--detector", "none"]
    if model:
        cmd += ["--model", model]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start in 240 s")


def _timed(client: httpx.Client, route: str, file: tuple[str, bytes], form: dict[str, str], k: int) -> dict:
    times, server_s = [], []
    for _ in range(k):
        t = time.perf_counter()
        r = client.post(route, files={"file": file}, data=form)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        if "x-explain-seconds" in r.headers:
            server_s.append(float(r.headers["x-explain-seconds"]) * 1000)
    out = {"n": k, "p50_ms": round(float(np.percentile(times, 50)), 1),
           "p95_ms": round(float(np.percentile(times, 95)), 1)}
    if server_s:
        out["method_p50_ms"] = round(float(np.percentile(server_s, 50)), 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server on this machine (default: start one)")
    p.add_argument("--model", help="plane model bundle (default: the bundled model)")
    p.add_argument("--image", type=Path, default=None, help="image to send (default: a real HC18 head if present)")
    p.add_argument("--n", type=int, default=50, help="concurrent predict requests in the burst")
    p.add_argument("--repeats", type=int, default=20, help="sequential predict requests")
    p.add_argument("--explain-repeats", type=int, default=5)
    p.add_argument("--methods", default=",".join(UI_METHODS))
    p.add_argument("--threads", type=int, default=1, help="OMP threads of a started server")
    p.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    image = a.image or _default_image()
    file = (image.name, image.read_bytes())
    proc = None
    url = a.url
    if url is None:
        proc, url = _start(a.model, a.threads)
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            health = client.get("/healthz").json()
            for _ in range(3):  # warm-up
                client.post("/v1/predict", files={"file": file}).raise_for_status()
            results = {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version()},
                "model": health.get("model"), "image": str(image), "server_threads": a.threads,
                "predict_sequential": _timed(client, "/v1/predict", file, {}, a.repeats),
                "explain_sequential": {},
            }
            for method in [m.strip() for m in a.methods.split(",") if m.strip()]:
                results["explain_sequential"][method] = _timed(client, "/v1/explain", file, {"method": method},
                                                               a.explain_repeats)
        results["predict_burst"] = run_load(url, file, n=a.n, concurrency=a.n).to_dict()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    text = json.dumps(results, indent=2)
    print(text)
    if a.output:
        a.output.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
