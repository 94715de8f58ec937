"""Speed of `fetalscope batch` on the same real images: `predict`'s loop (one process, one session), the local
engine, and the Ray engine with 1 and 2 workers on one node and with 2 workers on a two-node cluster started on
this machine (a head and a second node, 1 CPU each, joined with ``--address``, against a one-node cluster
with 2 CPUs joined the same way); Ray's start-up cost; what
reading each file once saves (hash + decode from one read, against hashing the file then decoding it again); and
a scaling estimate for a 100,000-image archive on 8 and 64 cores from the measured per-worker throughput and the
plane model's fp32 / int8 costs.

    PYTHONPATH=src python benchmarks/bench_batch.py --images 32 --out benchmarks/results/bench_batch_t2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fetalscope import config
from fetalscope.imaging.loader import load_image, read_input
from fetalscope.models.latency import bundle_latency, machine_info
from fetalscope.pipeline.batch import ray_engine
from fetalscope.pipeline.batch.manifest import sha256_of
from fetalscope.pipeline.batch.run import execute, plan_batch
from fetalscope.pipeline.session import Session

ARCHIVE = 100_000
SOURCES = ("hc18/training_set", "focus_fetal_thorax/images", "fetal_planes_db_tv_alzubaidi")


def real_images(n: int) -> list[Path]:
    """``n`` real images taken in turn from the shared sets (HC18 heads, FOCUS thoraxes, FETAL_PLANES_DB brains)."""
    pools = [sorted(p for p in (config.shared_data_dir() / s).rglob("*") if p.suffix.lower() in (".png", ".jpg")
                    and "mask" not in p.name.lower() and "annotation" not in str(p).lower()) for s in SOURCES]
    pools = [p for p in pools if p]
    if not pools:
        raise SystemExit(f"no real images under {config.shared_data_dir()}")
    return [pools[i % len(pools)][i // len(pools)] for i in range(n)]


def timed_batch(images: list[Path], out: Path, **options) -> dict:
    t0 = time.perf_counter()
    summary = execute(plan_batch(images, out, overwrite=True, **options))
    seconds = time.perf_counter() - t0
    import pandas as pd

    rows = pd.read_parquet(out)
    assert len(rows) == len(images) and (rows["status"] == "ok").all()
    return {"seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 3),
            "row_ms_median": round(float(statistics.median(rows["time_row_ms"])), 1),
            "plane_ms_median": round(float(statistics.median(rows["time_plane_ms"])), 1),
            "workers_seen": int(rows["worker"].nunique()), "ok": summary.by_status.get("ok", 0),
            "planes": dict(rows["plane"].value_counts())}


def _bytes_read() -> int:
    """Bytes this process has read through read() calls so far (``rchar`` of /proc/self/io; page cache or not)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def read_once_saving(images: list[Path], repeats: int = 3) -> dict:
    """The read, hash and decode step of a row, done the old way (hash the file, then the loader reads it again)
    and the new way (one read: hash the bytes, decode them), median ms per file and bytes read per file."""
    def old(f: Path) -> None:
        sha256_of(f)
        load_image(f)

    def new(f: Path) -> None:
        data = read_input(f)
        hashlib.sha256(data).hexdigest()
        load_image(data, name=str(f))

    result = {}
    for name, step in (("hash_then_load", old), ("read_once", new)):
        times, before = [], _bytes_read()
        for _ in range(repeats):
            for f in images:
                t0 = time.perf_counter()
                step(f)
                times.append((time.perf_counter() - t0) * 1000)
        result[name] = {"ms_median": round(statistics.median(times), 3),
                        "bytes_read_per_file": round((_bytes_read() - before) / (repeats * len(images)))}
    old_ms, new_ms = result["hash_then_load"]["ms_median"], result["read_once"]["ms_median"]
    result["saving_ms_per_file"] = round(old_ms - new_ms, 3)
    result["file_bytes_mean"] = round(statistics.mean(f.stat().st_size for f in images))
    result["bytes_read_ratio"] = round(result["read_once"]["bytes_read_per_file"]
                                       / max(1, result["hash_then_load"]["bytes_read_per_file"]), 3)
    return result


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def ray_cluster(work: Path, cpus: list[int]) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster started with ``ray start`` on free ports of this machine, as on separate machines: a head
    with ``cpus[0]`` CPUs and one more node per further entry, token auth; yields the address to join
    (``HOST:PORT``) and the environment a driver needs (the token); stops the nodes at the end."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    token = work / f"ray_token_{len(cpus)}"
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env = {**os.environ, **auth}
    gcs, client, *ports = _free_ports(2 + 2 * len(cpus))
    common = ["--block", "--node-ip-address", "127.0.0.1", "--object-store-memory", "100000000",
              "--disable-usage-stats"]
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    nodes = [subprocess.Popen([ray_cli, "start", "--head", "--port", str(gcs), "--ray-client-server-port",
                               str(client), "--include-dashboard", "false", "--node-manager-port", str(ports[0]),
                               "--object-manager-port", str(ports[1]), "--num-cpus", str(cpus[0]), *common],
                              **quiet)]
    try:
        deadline = time.monotonic() + 90
        while socket.socket().connect_ex(("127.0.0.1", gcs)) != 0:
            if time.monotonic() > deadline or nodes[0].poll() is not None:
                raise SystemExit("the Ray head did not start")
            time.sleep(0.5)
        for i, n in enumerate(cpus[1:], start=1):
            nodes.append(subprocess.Popen([ray_cli, "start", "--address", f"127.0.0.1:{gcs}", "--node-manager-port",
                                           str(ports[2 * i]), "--object-manager-port", str(ports[2 * i + 1]),
                                           "--num-cpus", str(n), *common], **quiet))
        yield f"127.0.0.1:{gcs}", auth
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def cluster_run(images: list[Path], work: Path, cpus: list[int]) -> dict:
    """``fetalscope batch --engine ray --address HEAD --workers sum(cpus)`` (a process of its own, as a user runs
    it) on a cluster of ``len(cpus)`` node(s) of this machine; the files/s its summary reports (actor start and
    model loads included, CLI start not) and the wall time of the command."""
    expect = f"{len(cpus)} node(s), {sum(cpus)} CPU(s)"
    out = work / f"cluster_{len(cpus)}n.parquet"
    with ray_cluster(work, cpus) as (address, auth):
        deadline = time.monotonic() + 90
        while True:  # nodes take a few seconds to join: the run says what it joined
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "fetalscope", "batch", *map(str, images), "-o", str(out),
                                   "--engine", "ray", "--address", address, "--workers", str(sum(cpus)),
                                   "--overwrite"], capture_output=True, text=True, timeout=1200,
                                  env={**os.environ, **auth})
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or expect in proc.stderr or time.monotonic() > deadline:
                break
    if proc.returncode != 0 or expect not in proc.stderr:
        raise SystemExit(f"the {expect} run failed:\n{proc.stderr[-2000:]}")
    import pandas as pd

    rows = pd.read_parquet(out)
    said = re.search(r"analysed in ([\d.]+) s \(([\d.]+) files/s\)", proc.stderr)
    assert said and len(rows) == len(images) and (rows["status"] == "ok").all()
    return {"seconds": float(said.group(1)), "images_per_s": float(said.group(2)), "command_s": round(wall, 2),
            "row_ms_median": round(float(statistics.median(rows["time_row_ms"])), 1),
            "workers_seen": int(rows["worker"].nunique()), "cluster": expect}


def clusters_only(images: list[Path], work: Path, result: dict, out: Path) -> None:
    one = result["runs"]["address_1_node_2w"] = cluster_run(images, work, [2])
    two = result["runs"]["address_2_nodes_2w"] = cluster_run(images, work, [1, 1])
    result["two_nodes_vs_one_node_2w"] = round(two["images_per_s"] / one["images_per_s"], 2)
    result["read_once"] = once = read_once_saving(images)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = [f"# bench_batch --clusters-only: {len(images)} real images", "",
             "| run | cluster | seconds | images/s | command s | median row ms | workers seen |",
             "|---|---|---|---|---|---|---|"]
    for k, v in result["runs"].items():
        lines.append(f"| {k} | {v['cluster']} | {v['seconds']} | {v['images_per_s']} | {v['command_s']} | "
                     f"{v['row_ms_median']} | {v['workers_seen']} |")
    lines += ["", f"two nodes / one node: x{result['two_nodes_vs_one_node_2w']} images/s (measured in this run)",
              f"read once: {once['read_once']['ms_median']} ms vs {once['hash_then_load']['ms_median']} ms per file "
              f"(read + hash + decode), bytes read x{once['bytes_read_ratio']}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_batch"))
    parser.add_argument("--no-two-nodes", action="store_true", help="skip the two-node cluster run")
    parser.add_argument("--clusters-only", action="store_true",
                        help="only the one-node / two-node --address comparison and the read-once saving")
    args = parser.parse_args()
    images = real_images(args.images)
    n = len(images)
    result: dict = {"machine": machine_info(), "images": n, "sources": list(SOURCES), "runs": {}}
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    if args.clusters_only:
        clusters_only(images, work, result, args.out)
        return

    t0 = time.perf_counter()  # `fetalscope predict`: one session, Session.analyse per file
    session = Session()
    session.analyse(images[0])
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    for f in images:
        session.analyse(f, name=str(f))
    loop = time.perf_counter() - t1
    result["runs"]["predict_one_process"] = {"seconds": round(load + loop, 2), "model_load_s": round(load, 2),
                                             "images_per_s": round(n / (load + loop), 3),
                                             "steady_images_per_s": round(n / loop, 3)}
    del session
    result["runs"]["batch_local"] = timed_batch(images, work / "local.parquet")

    t0 = time.perf_counter()
    ray_engine.connect(None)
    result["ray_start_s"] = round(time.perf_counter() - t0, 2)
    result["ray_cluster"] = ray_engine.describe_cluster()
    try:
        for workers in (1, 2):
            result["runs"][f"batch_ray_{workers}w"] = timed_batch(images, work / f"ray{workers}.parquet",
                                                                  engine="ray", workers=workers)
    finally:
        ray_engine.shutdown()
    if not args.no_two_nodes:  # the same command against a one-node and a two-node cluster, one after the other
        one = result["runs"]["address_1_node_2w"] = cluster_run(images, work, [2])
        two = result["runs"]["address_2_nodes_2w"] = cluster_run(images, work, [1, 1])
        result["two_nodes_vs_one_node_2w"] = round(two["images_per_s"] / one["images_per_s"], 2)
    result["read_once"] = read_once_saving(images)

    worker_run = result["runs"]["batch_ray_1w"]  # one Ray worker on one core: the per-worker throughput measured
    lat = bundle_latency("sononet-planes", images[:8], threads=1, runs=20, int8=True)["results"]
    fp32_ms = lat["onnxruntime"]["batch1_p50_ms"]
    int8_ms = lat["onnxruntime_int8"]["batch1_p50_ms"]
    worker_row_ms = worker_run["row_ms_median"]
    per_worker = 1000.0 / worker_row_ms  # one worker, one core, steady state
    int8_row_ms = worker_row_ms - fp32_ms + int8_ms
    result["plane_model_ms"] = {"onnx_fp32_p50": fp32_ms, "onnx_int8_p50": int8_ms}
    estimate = {}
    for cores in (8, 64):
        for name, row_ms in (("fp32", worker_row_ms), ("int8", int8_row_ms)):
            hours = ARCHIVE * row_ms / 1000 / cores / 3600
            estimate[f"{cores}_cores_{name}"] = {"row_ms": round(row_ms, 1), "hours": round(hours, 2)}
    result["estimate_100k"] = {"per_worker_images_per_s": round(per_worker, 2), "by_setup": estimate,
                               "assumes": "one worker per core, the median row time of one Ray worker (measured), "
                                          "no I/O limit; plus the Ray start and one model load per worker"}
    base = result["runs"]["predict_one_process"]["images_per_s"]
    result["ratios_vs_predict"] = {k: round(v["images_per_s"] / base, 2) for k, v in result["runs"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    machine = ", ".join(f"{k} {v}" for k, v in result["machine"].items()) if isinstance(result["machine"], dict) \
        else str(result["machine"])
    lines = [f"# bench_batch: {n} real images ({machine})", "",
             "| run | seconds | images/s | x predict | median row ms | workers seen |", "|---|---|---|---|---|---|"]
    for k, v in result["runs"].items():
        lines.append(f"| {k} | {v['seconds']} | {v['images_per_s']} | {result['ratios_vs_predict'][k]} | "
                     f"{v.get('row_ms_median', '')} | {v.get('workers_seen', 1)} |")
    lines += ["", f"Ray start (local cluster, {result['ray_cluster']}): {result['ray_start_s']} s; the Ray runs "
              "also include each actor's model load.",
              f"Plane model alone (ONNX, batch 1, 1 thread): fp32 {fp32_ms:.1f} ms, int8 {int8_ms:.1f} ms.", ""]
    if "two_nodes_vs_one_node_2w" in result:
        one, two = result["runs"]["address_1_node_2w"], result["runs"]["address_2_nodes_2w"]
        lines += [f"`batch --address` (its own process) on clusters started with `ray start` on this machine: one "
                  f"node with 2 CPUs {one['images_per_s']} images/s (command {one['command_s']} s), two nodes with "
                  f"1 CPU each {two['images_per_s']} images/s (command {two['command_s']} s): two nodes / one node "
                  f"x{result['two_nodes_vs_one_node_2w']} (measured in this run).", ""]
    once = result["read_once"]
    lines += [f"Read once (read + hash + decode, median per file, {once['file_bytes_mean']} bytes on average): "
              f"hash then load {once['hash_then_load']['ms_median']} ms and "
              f"{once['hash_then_load']['bytes_read_per_file']} bytes read; one read "
              f"{once['read_once']['ms_median']} ms and {once['read_once']['bytes_read_per_file']} bytes read "
              f"(saves {once['saving_ms_per_file']} ms per file; bytes read x{once['bytes_read_ratio']}).", "",
              f"100,000 images (per worker {per_worker:.2f} images/s, one worker per core):"]
    for k, v in estimate.items():
        lines.append(f"- {k}: {v['hours']} h (row {v['row_ms']} ms)")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
