"""`fetalscope batch --engine ray`: a local Ray cluster (the machine's CPUs) with a worker killed once mid-run
gives the rows of the local engine, and a file that kills every worker it meets becomes an error row in bounded
time; a two-node cluster started on this machine is joined with --address."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fetalscope.cli import app

pytest.importorskip("ray", reason="Ray is not installed (pip install 'fetalscope[ray]' or '.[dev]')")
from fetalscope.pipeline.batch.faults import CRASH_ON_ENV, CRASH_ONCE_ENV  # noqa: E402

SAME = ["path", "sha256", "status", "error", "plane", "plane_probability", "p_Fetal brain", "p_Fetal thorax",
        "p_Other", "brain_plane"]
RAY = Path(sys.executable).with_name("ray")


def run_batch(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fetalscope", "batch", *map(str, args)], capture_output=True,
                          text=True, timeout=400, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def local_rows(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local") / "local.parquet"
    result = CliRunner().invoke(app, ["batch", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


def same_rows(rows: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert rows["path"].is_unique and len(rows) == len(expected)
    pd.testing.assert_frame_equal(rows[SAME].reset_index(drop=True), expected[SAME].reset_index(drop=True),
                                  check_exact=False, atol=1e-6)


@pytest.mark.slow  # about 40 s on 2 CPUs: a Ray start, actors restarted three times, each loading the models
def test_ray_survives_a_worker_killed_once_and_gives_up_on_a_file_that_kills_every_time(archive, local_rows,
                                                                                          example_pngs, tmp_path):
    flag = tmp_path / "crashed"
    boom = tmp_path / "boom.png"
    shutil.copy(example_pngs[0], boom)  # a good image: only the hook makes it deadly, on every worker, every time
    out = tmp_path / "ray.parquet"
    proc = run_batch(archive, boom, "-o", out, "--engine", "ray", "--workers", "2",
                     env={CRASH_ONCE_ENV: str(flag), CRASH_ON_ENV: "boom"})  # bounded: run_batch's timeout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert flag.exists(), "no worker was killed"  # an actor died mid-run (os._exit) ...
    assert "Ray: started a cluster of 1 node(s)" in proc.stderr
    assert "Ray: 2 worker(s) died while analysing a file; Ray restarted them" in proc.stderr  # boom.png, twice
    assert "Warning" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr  # none of ours, none of Ray's
    rows = pd.read_parquet(out)
    (dead,) = rows[rows["path"] == str(boom.resolve())].to_dict("records")
    assert dead["status"] == "error" and "worker crashed while analysing this file (2 time(s))" in dead["error"]
    assert dead["sha256"] == hashlib.sha256(boom.read_bytes()).hexdigest()
    same_rows(rows[rows["path"] != str(boom.resolve())], local_rows)  # ... its batch ran again, same answers


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _our_processes(marker: str) -> list[int]:
    """Processes that carry ``marker`` in their environment: the nodes started here and the workers they forked."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and a second node (1 CPU each) on free ports of this machine, with their own auth token; stopped
    (the processes they started, found by a marker in their environment) at the end."""
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    marker = f"fetalscope-test-{uuid.uuid4().hex}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "FETALSCOPE_TEST_RAY": marker}
    gcs, client, head_manager, head_objects, node_manager, node_objects = _free_ports(6)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "100000000",
              "--disable-usage-stats"]
    nodes = [subprocess.Popen([str(RAY), "start", "--head", "--port", str(gcs), "--ray-client-server-port",
                               str(client), "--include-dashboard", "false", "--node-manager-port", str(head_manager),
                               "--object-manager-port", str(head_objects), *common], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.monotonic() + 90
        while socket.socket().connect_ex(("127.0.0.1", gcs)) != 0:
            assert time.monotonic() < deadline and nodes[0].poll() is None, "the head did not start"
            time.sleep(0.5)
        nodes.append(subprocess.Popen([str(RAY), "start", "--address", f"127.0.0.1:{gcs}", "--node-manager-port",
                                       str(node_manager), "--object-manager-port", str(node_objects), *common],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        yield f"127.0.0.1:{gcs}", {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        for pid in _our_processes(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_address_joins_an_existing_two_node_cluster(archive, local_rows, two_node_cluster, tmp_path):
    address, auth = two_node_cluster
    out = tmp_path / "two.parquet"
    deadline = time.monotonic() + 60
    while True:  # the second node takes a few seconds to join
        proc = run_batch(archive, "-o", out, "--engine", "ray", "--address", address, "--workers", "2",
                         "--overwrite", env=auth)
        if proc.returncode != 0 or "2 node(s), 2 CPU(s)" in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray: joined a cluster of 2 node(s), 2 CPU(s)" in proc.stderr
    rows = pd.read_parquet(out)
    same_rows(rows, local_rows)
    assert rows["worker"].nunique() == 2  # the actors of both nodes took batches


def test_an_address_nobody_answers_at_is_a_clear_error(example_pngs, tmp_path):
    address = f"127.0.0.1:{_free_ports(1)[0]}"
    result = CliRunner().invoke(app, ["batch", str(example_pngs[0]), "-o", str(tmp_path / "x.parquet"),
                                      "--engine", "ray", "--address", address])
    assert result.exit_code == 2 and f"cannot join the Ray cluster at {address}: nothing answers" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_a_ray_client_address_is_refused_with_the_way_that_works(example_pngs, tmp_path):
    result = CliRunner().invoke(app, ["batch", str(example_pngs[0]), "-o", str(tmp_path / "x.parquet"),
                                      "--engine", "ray", "--address", "ray://127.0.0.1:10001"])
    assert result.exit_code == 2 and "Ray Data does not run through Ray Client" in result.output
    assert "ray job submit" in result.output and not (tmp_path / "x.parquet").exists()
