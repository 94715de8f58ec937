"""`fetalscope dicom-node` against a real Orthanc PACS: images in by C-STORE, the Structured Report back into
Orthanc by C-STORE and by STOW-RS, filed under the source's study with the values the pipeline gives; unknown
AE titles refused; malformed data sets answered with a failure status while the node keeps serving."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pynetdicom = pytest.importorskip("pynetdicom", reason="needs fetalscope[dicom-node]")

from pydicom import dcmread  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402
    ColorSoftcopyPresentationStateStorage,
    UltrasoundImageStorage,
    Verification,
)

import orthanc_server  # noqa: E402  (tests/orthanc_server.py)
from dicom_outputs import numbers  # noqa: E402  (tests/dicom_outputs.py)
from fetalscope.errors import BadInputError  # noqa: E402
from fetalscope.interop.dicom_node import DicomNode, NodeSettings  # noqa: E402
from fetalscope.interop.dicom_send import Destination, check_stow_url, part10_bytes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SENDER = "STORESCU"
HC_LOINC = "11984-2"

needs_orthanc = pytest.mark.skipif(orthanc_server.ORTHANC is None,
                                   reason="Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb)")


# ----------------------------------------------------------------------------------------------- inputs
def fresh(path: Path, patient: str = "FS-0001") -> Dataset:
    """The DICOM at ``path`` as a new instance of a new study (new UIDs, same pixels and spacing)."""
    ds = dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient
    return ds


def scu(ae_title: str = SENDER) -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(UltrasoundImageStorage, ExplicitVRLittleEndian)
    return ae


def store(ds: Dataset, port: int, ae_title: str = SENDER) -> int:
    assoc = scu(ae_title).associate("127.0.0.1", port, ae_title="FETALSCOPE")
    assert assoc.is_established, f"the node refused {ae_title}"
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def echo(port: int) -> int | None:
    assoc = scu().associate("127.0.0.1", port, ae_title="FETALSCOPE")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if status else None
    finally:
        assoc.release()


# ------------------------------------------------------------------------------------------- the servers
class Node:
    """`fetalscope dicom-node` as a subprocess of the real CLI, logging to a file."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.port = orthanc_server.free_port()
        self.log_path = tmp / f"{name}.log"
        self.interrupted = False
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fetalscope", "dicom-node", "--port", str(self.port), "--measure", "head", *args],
            stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tmp)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the node exited: {self.log()}"
            if "listening as" in self.log() and echo(self.port) == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"the node did not answer C-ECHO within {timeout_s} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> None:
        if self.process.poll() is None and not self.interrupted:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C, once
            self.interrupted = True

    def stop(self) -> int:
        self.interrupt()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, session):
    """Orthanc with two nodes sending to it: ``c_store``, the real CLI in a subprocess, sends its results (SR
    and presentation state) by C-STORE; ``stow``, a :class:`DicomNode` in this process (one model load less),
    by STOW-RS."""
    if orthanc_server.ORTHANC is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb)")
    tmp = tmp_path_factory.mktemp("pacs")
    server = orthanc_server.start_orthanc(tmp, {})
    cli = Node(tmp, "node-cstore", "--forward", server.destination, "--allow", f"{SENDER},ORTHANC",
               "--max-associations", "2", "--overlay")
    nodes: dict = {"c_store": cli}
    if server.dicomweb:
        nodes["stow"] = DicomNode(session, NodeSettings(ae_title="FETALSTOW", port=0, measure="head",
                                                        stow_url=f"{server.url}/dicom-web/studies"))
        nodes["stow"].start()
    try:
        cli.wait_ready()
        yield server, nodes
    finally:
        cli.interrupt()  # the interpreter takes a few seconds to exit: let it while the rest stops
        if "stow" in nodes:
            nodes["stow"].stop()
        code = cli.stop()
        orthanc_server.stop_orthanc(server)
    assert code == 0 and "stopped:" in cli.log(), cli.log()  # Ctrl-C stops the node cleanly


def sr_instances(server, study_uid: str, timeout_s: float = 60.0) -> list[str]:
    """Orthanc's instance ids of the SRs in ``study_uid``, polled until one appears."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.post(server.url + "/tools/find", json={"Level": "Instance", "Query": {
            "StudyInstanceUID": study_uid, "Modality": "SR"}}, timeout=10)
        answer.raise_for_status()
        if answer.json():
            return answer.json()
        time.sleep(0.3)
    return []


def referenced_uids(ds: Dataset) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere in ``ds``."""
    uids: set[str] = set()
    for element in ds.iterall():
        if element.keyword == "ReferencedSOPInstanceUID":
            uids.add(str(element.value))
    return uids


def check_sr(server, instance: str, source: Dataset, hc_mm: float) -> Dataset:
    sr = dcmread(io.BytesIO(server.get(f"/instances/{instance}/file").content))
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == source.PatientID
    assert sr.AccessionNumber == source.AccessionNumber and sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert source.SOPInstanceUID in referenced_uids(sr)
    ((value, unit),) = numbers(sr)[HC_LOINC]
    assert unit == "mm" and value == pytest.approx(hc_mm, abs=0.05)
    return sr


@pytest.fixture(scope="module")
def pipeline_hc(head_dcm, session) -> float:
    """The head circumference the pipeline's JSON record gives for the test image."""
    analysis = session.analyse(head_dcm, measure="head")
    record = analysis.to_dict()["measurement"]
    assert record["pixel_size_source"] != "argument" and record["hc_mm"] > 0
    return float(record["hc_mm"])


# ------------------------------------------------------------------------------------------------ tests
@needs_orthanc
def test_c_store_in_sr_back_into_orthanc_under_the_study(pacs, pipeline_hc, head_dcm):
    server, nodes = pacs
    source = fresh(head_dcm)
    # the PACS holds the image (uploaded through its REST API), the modality also sends it to the node
    httpx.post(server.url + "/instances", content=part10_bytes(source), timeout=10).raise_for_status()
    assert store(source, nodes["c_store"].port) == 0x0000
    (instance,) = sr_instances(server, source.StudyInstanceUID)
    check_sr(server, instance, source, pipeline_hc)
    assert f"received {source.SOPInstanceUID} from {SENDER}" in nodes["c_store"].log()
    study = server.get(f"/instances/{instance}/study").json()
    deadline = time.monotonic() + 30  # the presentation state follows the SR in the same association
    while len(series := server.get(f"/studies/{study['ID']}/series").json()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    # one study: the image, the report and (--overlay) the colour presentation state drawing the head ellipse
    assert sorted(s["MainDicomTags"]["Modality"] for s in series) == ["PR", "SR", "US"]
    assert study["MainDicomTags"]["StudyInstanceUID"] == source.StudyInstanceUID
    (pr_series,) = [s for s in series if s["MainDicomTags"]["Modality"] == "PR"]
    state = dcmread(io.BytesIO(server.get(f"/instances/{pr_series['Instances'][0]}/file").content))
    assert state.SOPClassUID == ColorSoftcopyPresentationStateStorage
    assert source.SOPInstanceUID in referenced_uids(state)
    graphics = [g.GraphicType for a in state.GraphicAnnotationSequence for g in a.get("GraphicObjectSequence", [])]
    # the head ellipse, and the detected structures' boxes (closed polylines) when the detector found any
    assert graphics.count("ELLIPSE") == 1 and set(graphics) <= {"ELLIPSE", "POLYLINE"}


@needs_orthanc
def test_stow_rs_puts_the_sr_into_orthanc(pacs, pipeline_hc, head_dcm):
    server, nodes = pacs
    if "stow" not in nodes:
        pytest.skip("the Orthanc DICOMweb plugin is not installed (Debian: orthanc-dicomweb)")
    node = nodes["stow"]
    source = fresh(head_dcm, patient="FS-0002")
    assert store(source, node.port) == 0x0000
    (instance,) = sr_instances(server, source.StudyInstanceUID)
    check_sr(server, instance, source, pipeline_hc)
    assert node.wait_idle() and node.counts.sent == 1 and node.counts.failed == 0


@needs_orthanc
def test_unknown_calling_ae_is_refused(pacs):
    _, nodes = pacs
    assoc = scu("INTRUDER").associate("127.0.0.1", nodes["c_store"].port, ae_title="FETALSCOPE")
    assert assoc.is_rejected and not assoc.is_established
    assert echo(nodes["c_store"].port) == 0x0000


@needs_orthanc
def test_malformed_datasets_get_a_failure_status_and_the_node_keeps_serving(pacs, head_dcm):
    _, nodes = pacs
    port = nodes["c_store"].port
    no_study = fresh(head_dcm)
    del no_study.StudyInstanceUID
    assert store(no_study, port) == 0xA900
    truncated = fresh(head_dcm)
    truncated.PixelData = truncated.PixelData[:1000]
    assert 0xC000 <= store(truncated, port) <= 0xCFFF
    assert echo(port) == 0x0000
    assert "refused" in nodes["c_store"].log() and "missing StudyInstanceUID" in nodes["c_store"].log()


@needs_orthanc
def test_association_limit(pacs):
    _, nodes = pacs
    port = nodes["c_store"].port
    held = [scu().associate("127.0.0.1", port, ae_title="FETALSCOPE") for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        third = scu().associate("127.0.0.1", port, ae_title="FETALSCOPE")
        assert third.is_rejected
    finally:
        for a in held:
            a.release()
    assert echo(port) == 0x0000


def test_settings_and_destinations_are_checked():
    assert str(Destination.parse("ORTHANC@127.0.0.1:4242")) == "ORTHANC@127.0.0.1:4242"
    for bad in ("ORTHANC@127.0.0.1", "@host:1", "A@h:70000", "WAY_TOO_LONG_AE_TITLE@h:1"):
        with pytest.raises(BadInputError):
            Destination.parse(bad)
    with pytest.raises(BadInputError, match="nowhere to send"):
        NodeSettings()
    with pytest.raises(BadInputError, match="--stow"):
        check_stow_url("ftp://pacs/studies")
    pacs = Destination.parse("PACS@10.0.0.1:104")
    settings = NodeSettings(peers=(pacs,))
    assert settings.destination_for("PACS") == pacs and settings.destination_for("OTHER") is None
    forward = Destination.parse("ARCHIVE@10.0.0.2:104")
    assert NodeSettings(forward=forward, peers=(pacs,)).destination_for("PACS") == forward


@needs_orthanc
def test_the_pacs_pushes_an_image_and_gets_the_sr_back(pacs, pipeline_hc, head_dcm, session):
    """Orthanc routes an image to a node that knows it as a peer; the SR comes back to Orthanc by C-STORE."""
    server, _ = pacs
    orthanc = Destination.parse(server.destination)
    node = DicomNode(session, NodeSettings(ae_title="FETALPEER", port=0, peers=(orthanc,), allow=(orthanc.ae_title,),
                                           measure="head"))
    node.start()
    try:
        httpx.put(f"{server.url}/modalities/fetalpeer", json=["FETALPEER", "127.0.0.1", node.port],
                  timeout=10).raise_for_status()
        source = fresh(head_dcm, patient="FS-0003")
        uploaded = httpx.post(server.url + "/instances", content=part10_bytes(source), timeout=10).json()
        httpx.post(f"{server.url}/modalities/fetalpeer/store", json={"Resources": [uploaded["ID"]],
                   "Synchronous": True}, timeout=30).raise_for_status()
        (instance,) = sr_instances(server, source.StudyInstanceUID)
        check_sr(server, instance, source, pipeline_hc)
        assert node.wait_idle() and node.counts.received == 1 and node.counts.sent == 1
    finally:
        node.stop()


def test_the_cli_refuses_bad_options_before_listening():
    from typer.testing import CliRunner

    from fetalscope.cli import app

    runner = CliRunner()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = ((["--port", "0"], "nowhere to send"), (["--forward", "ORTHANC:4242"], "AE@HOST:PORT"),
             (["--forward", "A@h:1", "--measure", "femur"], "--measure"), (["--stow", "pacs/studies"], "--stow"),
             (["--forward", "A@h:1", "--allow", "A\\B"], "--allow"),
             (["--forward", "A@h:1", "--port", str(taken.getsockname()[1])], "is already in use"))
    with taken:
        for args, message in cases:
            result = runner.invoke(app, ["dicom-node", *args])
            assert result.exit_code == 2 and message in result.output, (args, result.output)
    text = runner.invoke(app, ["dicom-node", "--help"], env={"COLUMNS": "80"}).output
    assert "AE@HOST:PORT" in text and "<bool>" not in text and max(map(len, text.splitlines())) <= 80


def test_a_full_queue_answers_out_of_resources(session, head_dcm):
    """With the worker busy and the queue full, a C-STORE gets 0xA700 at once; queued instances are analysed
    once the worker is free."""
    import threading

    release = threading.Event()
    built: list[str] = []

    def slow_build(analysis, source, overlay):
        release.wait(30)
        built.append(source.SOPInstanceUID)
        return []

    settings = NodeSettings(port=0, queue_size=1, measure="head", peers=(Destination.parse("NOBODY@127.0.0.1:9"),))
    node = DicomNode(session, settings, build=slow_build)
    node.start()
    try:
        assert store(fresh(head_dcm), node.port) == 0x0000  # the worker takes it and waits in slow_build
        deadline = time.monotonic() + 30
        while node._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store(fresh(head_dcm), node.port) == 0x0000  # fills the queue
        assert store(fresh(head_dcm), node.port) == 0xA700
        release.set()
        assert node.wait_idle(60) and len(built) == 2
        assert node.counts.received == 2 and node.counts.refused == 1 and node.counts.analysed == 2
    finally:
        release.set()
        node.stop()


def test_an_unreachable_destination_is_a_logged_failure_and_the_node_keeps_serving(session, head_dcm, caplog):
    nobody = Destination("NOBODY", "127.0.0.1", orthanc_server.free_port())  # nothing listens there
    node = DicomNode(session, NodeSettings(port=0, forward=nobody, measure="head", dimse_timeout_s=5))
    node.start()
    try:
        with caplog.at_level("INFO", logger="fetalscope.dicom_node"):
            assert store(fresh(head_dcm), node.port) == 0x0000
            assert node.wait_idle(60)
        assert node.counts.analysed == 1 and node.counts.sent == 0 and node.counts.failed == 1
        assert any(f"C-STORE to {nobody} FAILED" in r.getMessage() for r in caplog.records)
        assert echo(node.port) == 0x0000
    finally:
        node.stop()
