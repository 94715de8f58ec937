"""One real server per test session: ``python -m fetalscope.serve`` on a free loopback port with a tiny
model bundle (small_cnn with ONNX twin, evaluation report and an ablation table written by the
product's own code), its log in a file and its temporary folder private, so tests can check that
uploads leave no trace on disk or in logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

BUNDLED_EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"
MAX_UPLOAD_MB = 2  # also written in test_hostile_inputs.py
MAX_PIXELS = 4_000_000
STARTUP_TIMEOUT_S = 180


@dataclass
class ServerInfo:
    """A running test server: ``url``, its process, log file, private TMPDIR and bundle folder."""

    url: str
    process: subprocess.Popen
    log_path: Path
    tmpdir: Path
    bundle: Path
    ablation_dir: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def upload_dirs(self) -> list[Path]:
        """The server's private UI upload folder(s) (named after its pid)."""
        roots = [Path("/dev/shm"), self.tmpdir]
        return [p for r in roots if r.is_dir() for p in r.glob(f"fetalscope-ui-{self.process.pid}-*")]


def wait_until_healthy(proc: subprocess.Popen, url: str, log_text, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``url/healthz`` until it answers 200; fail the test with the server log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server did not start within {timeout_s} s:\n{log_text()[-3000:]}")
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def phantom_png() -> bytes:
    """A synthetic brain phantom (the bundled example image) as PNG bytes."""
    from fetalscope.serve.examples import BUNDLED_DIR

    return (BUNDLED_DIR / "phantom_fetal_brain.png").read_bytes()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-class small_cnn bundle (Maternal cervix not covered) with model.onnx, and an evaluation
    report in the bundle folder made by ``evaluate_predictions`` on phantom images."""
    import torch

    from fetalscope.data.labels import PLANE_CLASSES
    from fetalscope.data.phantoms import make_phantom
    from fetalscope.data.transforms import to_tensor
    from fetalscope.evaluate import classification_report as eval_report
    from fetalscope.models import create_model
    from fetalscope.models.bundle import load_bundle, save_bundle

    folder = tmp_path_factory.mktemp("bundle") / "tiny-planes"
    classes = [c for c in PLANE_CLASSES if c != "Maternal cervix"]
    torch.manual_seed(0)
    model = create_model("small_cnn", len(classes), input_size=64, widths=(8, 16, 16, 32))
    save_bundle(model, folder, {"name": "tiny-planes", "version": "0.0.1", "classes": classes,
                                "classes_not_covered": ["Maternal cervix"], "task": "planes",
                                "citations": ["a test fixture; not a real model"]}, onnx=True)
    bundle = load_bundle(folder)
    rng = np.random.default_rng(0)
    ys, images, meta = [], [], []
    for i in range(30):
        y = i % len(classes)
        images.append(to_tensor(np.repeat(make_phantom(classes[y], rng, (64, 64))[..., None], 3, 2),
                                bundle.preprocess))
        ys.append(y)
        meta.append({"US_Machine": ("Voluson E6", "Aloka")[i % 2], "Operator": "Op. 1"})
    with torch.no_grad():
        probs = torch.softmax(bundle.model(torch.stack(images)), dim=1).numpy()
    eval_report.evaluate_predictions(np.array(ys), probs, classes, groups=[str(i // 2) for i in range(30)],
                                     meta=meta, out_dir=folder, title="Tiny test model on phantoms", n_boot=50)
    return folder


@pytest.fixture(scope="session")
def ablation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ablation folder as ``fetalscope ablate`` writes it (table rendered by the product's renderer)."""
    import json

    from fetalscope.train.classifier.ablate import render_ablation_md

    folder = tmp_path_factory.mktemp("ablation")
    table = {"base_config": {"model": "small_cnn", "task": "planes", "data": "phantoms"},
             "test_split": "same split for every variant",
             "variants": [{"variant": "baseline", "description": "the configuration as given", "model": "small_cnn",
                           "accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "weighted_f1": 0.45,
                           "weighted_f1_ci": [0.35, 0.55], "macro_f1": 0.44, "ece": 0.1, "train_seconds": 1.0,
                           "bundle": "x"}]}
    (folder / "ablation.json").write_text(json.dumps(table))
    (folder / "ablation.md").write_text(render_ablation_md(table))
    return folder


@pytest.fixture(scope="session")
def server(tiny_bundle: Path, ablation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ServerInfo:
    port = _free_port()
    root = tmp_path_factory.mktemp("server")
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    log_path = root / "server.log"
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("FETALSCOPE_TOKEN", None)
    cmd = [sys.executable, "-m", "fetalscope.serve", "--port", str(port), "--model", str(tiny_bundle),
           "--detector", "none", "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-pixels", str(MAX_PIXELS),
           "--timeout", "60", "--max-concurrent", "2", "--ablation-dir", str(ablation_dir),
           # a tiny untrained-on-ultrasound model handles no default example: name the gallery's images
           "--examples", str(BUNDLED_EXAMPLES)]
    log = open(log_path, "wb")  # noqa: SIM115 - closed after the process ends
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    info = ServerInfo(url, proc, log_path, tmpdir, tiny_bundle, ablation_dir)
    try:
        wait_until_healthy(proc, url, info.log_text)
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def client(server: ServerInfo):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``fetalscope serve`` with its bundled models (SonoNet planes, brain sub-plane, brain findings; no
    detector), shared by the tests that need real routing (a real brain image -> brain findings)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("real-server") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("FETALSCOPE_TOKEN", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fetalscope", "serve", "--port", str(port),
                                 "--detector", "none"], stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(proc, url, log_path.read_text, timeout_s=120)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture(scope="session")
def real_brain_image(shared_data: Path) -> Path:
    """A real FETAL_PLANES_DB brain image (trans-ventricular), read in place."""
    return sorted((shared_data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png"))[0]
