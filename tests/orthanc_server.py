"""A real Orthanc PACS for tests: Debian's ``orthanc`` (and ``orthanc-dicomweb``) started on free loopback
ports with a generated configuration, storage in a temporary folder. Imported as ``orthanc_server``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ORTHANC = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
                                           if Path(p).exists()), None)
DICOMWEB_PLUGIN = next((p for p in (Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
                                    *sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")))
                        if p.exists()), None)
AE_TITLE = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc: its REST root, DICOM port and AE title."""

    process: subprocess.Popen
    http_port: int
    dicom_port: int
    folder: Path
    dicomweb: bool
    ae_title: str = AE_TITLE

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def get(self, path: str, **kwargs) -> httpx.Response:
        response = httpx.get(self.url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def log(self) -> str:
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def start_orthanc(folder: Path, modalities: dict[str, tuple[str, str, int]], timeout_s: float = 30.0) -> Orthanc:
    """Start Orthanc with storage in ``folder`` and these DICOM modalities (name -> (AE, host, port)); return
    once its REST API answers. Raises RuntimeError (with its log) when it does not come up."""
    if ORTHANC is None:
        raise FileNotFoundError("Orthanc")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "fetalscope-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": AE_TITLE, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "HttpServerEnabled": True, "DicomServerEnabled": True,
        "DicomModalities": {name: list(entry) for name, entry in modalities.items()},
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StableAge": 1, "HttpTimeout": 10,
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = (folder / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(process, http_port, dicom_port, folder, dicomweb=DICOMWEB_PLUGIN is not None)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}: {server.log()}")
        try:
            if httpx.get(server.url + "/system", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_orthanc(server)
    raise RuntimeError(f"Orthanc did not answer within {timeout_s} s: {server.log()}")


def stop_orthanc(server: Orthanc) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
