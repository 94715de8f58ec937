"""A DICOM node: a Storage SCP that analyses every image it receives and sends the result back as DICOM.

``DicomNode`` accepts C-ECHO and C-STORE of ultrasound and secondary-capture images (pynetdicom). Each
received instance is checked while the association waits (it must decode as DICOM, carry the UIDs a result
needs and pixels the one loader reads; otherwise a failure status: 0xA900 for a data set that does not
match its SOP class, 0xC210/0xC211 for one that cannot be understood) and queued; a worker thread
analyses it through the one door (a :class:`~fetalscope.pipeline.session.Session`, given by the caller: the
plane, the measurement and the acquisition checklist), builds the Structured Report (and with ``overlay``
the presentation state) with :mod:`fetalscope.interop.dicom_sr`, and sends them by C-STORE to the forward
destination (or back to the calling AE's configured peer) and/or by STOW-RS. The association is answered as
soon as the instance is queued; a full queue answers 0xA700 (out of resources). One log line per received
instance and per result.
"""

from __future__ import annotations

import errno
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydicom import Dataset, dcmread

from fetalscope.errors import BadInputError, FetalscopeError
from fetalscope.interop.dicom_send import Destination, SendError, c_store, check_ae_title, stow_rs

LOG = logging.getLogger("fetalscope.dicom_node")

# The image storage SOP classes the node accepts (names from pynetdicom.sop_class)
STORAGE_CLASSES = (
    "UltrasoundImageStorage",
    "UltrasoundMultiFrameImageStorage",
    "EnhancedUSVolumeStorage",
    "SecondaryCaptureImageStorage",
    "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
    "MultiFrameTrueColorSecondaryCaptureImageStorage",
)
# C-STORE statuses (PS3.4 B.2.3)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC210  # the data set does not decode as DICOM
CANNOT_READ_PIXELS = 0xC211  # it decodes, but the one loader cannot read its image
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class Analysing(Protocol):
    """What the node needs of a :class:`~fetalscope.pipeline.session.Session` (the faces wire one in; this
    package sits below the pipeline and never imports it)."""

    def load(self, src: bytes, *, name: str | None = None) -> Any: ...

    def analyse(self, image: Any, *, name: str | None = None, detect: bool | str = False,
                measure: str | None = None, quality: bool = False) -> Any: ...


@dataclass(frozen=True)
class NodeSettings:
    """How the node listens, whom it accepts and where its results go."""

    ae_title: str = "FETALSCOPE"
    bind: str = "127.0.0.1"
    port: int = 11112
    forward: Destination | None = None  # every result goes here
    peers: tuple[Destination, ...] = ()  # known nodes: a result goes back to its caller's entry (no forward)
    stow_url: str | None = None  # DICOMweb studies resource, the other transport
    allow: tuple[str, ...] = ()  # calling AE titles accepted (empty: any)
    measure: str = "auto"  # auto | head | cardiothoracic: the session's rule (the CLI checks it up front)
    overlay: bool = False  # also send a colour softcopy presentation state
    max_associations: int = 8
    max_pdu: int = 16382
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 60.0
    queue_size: int = 32

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "--ae-title")
        for title in self.allow:
            check_ae_title(title, "--allow")
        if not 0 <= self.port <= 65535:
            raise BadInputError(f"--port must be in 0-65535 (0: any free port), got {self.port}")
        if self.forward is None and not self.peers and not self.stow_url:
            raise BadInputError("the node has nowhere to send its results: give --forward AE@HOST:PORT, "
                                "--peer AE@HOST:PORT (results go back to that caller) or --stow URL")
        if self.max_associations < 1 or self.queue_size < 1:
            raise BadInputError("--max-associations and the queue size must be at least 1")
        if not 0 <= self.max_pdu <= 2**32 - 1:
            raise BadInputError(f"--max-pdu must be 0 (unlimited) or a byte count, got {self.max_pdu}")

    def destination_for(self, calling_ae: str) -> Destination | None:
        """Where the results of an image from ``calling_ae`` go by C-STORE: the forward destination, else
        the caller's peer entry, else nowhere."""
        if self.forward is not None:
            return self.forward
        return next((p for p in self.peers if p.ae_title == calling_ae), None)


@dataclass
class Received:
    """One instance accepted by C-STORE, waiting for analysis."""

    calling_ae: str
    address: str
    dataset: Dataset
    image: Any  # the decoded image (UltrasoundImage)
    received: float = field(default_factory=time.monotonic)


@dataclass
class NodeCounts:
    """What the node did so far."""

    received: int = 0
    refused: int = 0
    analysed: int = 0
    sent: int = 0
    failed: int = 0


def result_objects(analysis: Any, source: Dataset, overlay: bool,
                   colours: Mapping[str, tuple[int, int, int]] | None = None) -> list[Dataset]:
    """The DICOM objects of one analysis: the measurement report, and with ``overlay`` the colour presentation
    state drawing its ellipses and boxes in ``colours`` (left out when there is nothing to draw)."""
    from fetalscope.interop import dicom_pr, dicom_sr

    objects = [dicom_sr.measurement_report(analysis, source)]
    if overlay:
        try:
            objects.append(dicom_pr.presentation_state(analysis, source, colours=colours))
        except BadInputError as exc:  # no accepted measurement and no box: the SR alone says so
            LOG.info("no presentation state for %s: %s", source.SOPInstanceUID, " ".join(str(exc).split()))
    return objects


class DicomNode:
    """The Storage SCP and its analysis worker. ``start()`` listens (non-blocking), ``stop()`` ends both;
    ``build`` (the objects of one analysis) is :func:`result_objects` unless a caller gives another."""

    def __init__(self, session: Analysing, settings: NodeSettings,
                 build: Callable[[Any, Dataset, bool], list[Dataset]] = result_objects) -> None:
        self.session = session
        self.settings = settings
        self.build = build
        self.counts = NodeCounts()
        self._counts_lock = threading.Lock()
        self._queue: queue.Queue[Received | None] = queue.Queue(maxsize=settings.queue_size)
        self._server: Any = None
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        """The port the node listens on (the real one when the settings asked for 0)."""
        return int(self._server.server_address[1]) if self._server is not None else self.settings.port

    def start(self) -> None:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt, sop_class

        s = self.settings
        ae = AE(ae_title=s.ae_title)
        ae.maximum_associations = s.max_associations
        ae.maximum_pdu_size = s.max_pdu
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = s.acse_timeout_s, s.dimse_timeout_s, \
            s.network_timeout_s
        ae.require_calling_aet = list(s.allow)
        ae.add_supported_context(sop_class.Verification)
        for name in STORAGE_CLASSES:
            ae.add_supported_context(getattr(sop_class, name), ALL_TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_ECHO, self._on_echo), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_REJECTED, self._on_rejected)]
        self._worker = threading.Thread(target=self._work, name="fetalscope-dicom-worker", daemon=True)
        self._worker.start()
        try:
            self._server = ae.start_server((s.bind, s.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            self._queue.put(None)  # the worker ends
            self._worker = None
            if exc.errno == errno.EADDRINUSE:
                raise BadInputError(f"port {s.port} on {s.bind} is already in use: stop what listens there or "
                                    "choose another --port") from None
            raise BadInputError(f"cannot listen on {s.bind}:{s.port}: {exc.strerror or exc}") from None
        LOG.info("listening as %s on %s:%d (max %d associations, max PDU %d, allow %s); results to %s",
                 s.ae_title, s.bind, self.port, s.max_associations, s.max_pdu, ",".join(s.allow) or "any AE",
                 self._targets())

    def stop(self, drain_s: float = 30.0) -> None:
        """Stop listening, let the worker finish what is queued (at most ``drain_s``), then end it."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=drain_s)
            self._worker = None
        LOG.info("stopped: %d received, %d refused, %d analysed, %d result object(s) sent, %d failed",
                 self.counts.received, self.counts.refused, self.counts.analysed, self.counts.sent,
                 self.counts.failed)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Whether every queued instance was handled within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    def _targets(self) -> str:
        s = self.settings
        parts = [f"C-STORE {s.forward}"] if s.forward else [f"C-STORE back to {p}" for p in s.peers]
        return ", ".join(parts + ([f"STOW-RS {s.stow_url}"] if s.stow_url else []))

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            setattr(self.counts, name, getattr(self.counts, name) + n)

    # -------------------------------------------------------------------------------------- handlers
    def _on_echo(self, event: Any) -> int:
        return SUCCESS

    def _on_rejected(self, event: Any) -> None:
        requestor = event.assoc.requestor
        caller = str(requestor.ae_title).strip()
        allow = self.settings.allow
        reason = "calling AE title not allowed" if allow and caller not in allow else "too many associations"
        LOG.warning("refused an association from %s@%s:%s: %s", caller, requestor.address, requestor.port, reason)

    def _on_store(self, event: Any) -> int | Dataset:
        requestor = event.assoc.requestor
        caller, address = str(requestor.ae_title).strip(), f"{requestor.address}:{requestor.port}"
        status, reason, ds, image = self._check(event)
        uid = str(ds.get("SOPInstanceUID", "?")) if ds is not None else "?"
        if status == SUCCESS and ds is not None and image is not None:
            try:
                self._queue.put_nowait(Received(caller, address, ds, image))
            except queue.Full:
                status, reason = OUT_OF_RESOURCES, f"the analysis queue is full ({self.settings.queue_size})"
        if status == SUCCESS:
            self._count("received")
            LOG.info("received %s from %s (%s), study %s: queued", uid, caller, address,
                     ds.get("StudyInstanceUID", "?") if ds is not None else "?")
            return SUCCESS
        self._count("refused")
        LOG.warning("refused %s from %s (%s): 0x%04X %s", uid, caller, address, status, reason)
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = reason[:64]
        return answer

    def _check(self, event: Any) -> tuple[int, str, Dataset | None, Any]:
        """(status, reason, data set, image) for one C-STORE request (each association runs its handlers in
        its own thread: nothing here is shared)."""
        raw = event.encoded_dataset(include_meta=True)
        try:
            ds = dcmread(io.BytesIO(raw))
            missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "")).strip()]
        except Exception as exc:  # any decoder error: the data set cannot be understood
            return CANNOT_UNDERSTAND, f"not a readable DICOM data set: {type(exc).__name__}", None, None
        if missing:
            return DATASET_DOES_NOT_MATCH, f"missing {', '.join(missing)}", ds, None
        if ds.SOPClassUID != event.context.abstract_syntax:
            return DATASET_DOES_NOT_MATCH, "SOPClassUID differs from the presentation context", ds, None
        try:
            image = self.session.load(raw, name=str(ds.SOPInstanceUID))
        except FetalscopeError as exc:
            return CANNOT_READ_PIXELS, " ".join(str(exc).split()), ds, None
        return SUCCESS, "", ds, image

    # ----------------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._handle(job)
            finally:
                self._queue.task_done()

    def _handle(self, job: Received) -> None:
        s, uid = self.settings, str(job.dataset.SOPInstanceUID)
        try:
            analysis = self.session.analyse(job.image, name=uid, measure=s.measure, quality=True,
                                            detect="auto" if s.overlay else False)
            self._count("analysed")
            objects = self.build(analysis, job.dataset, s.overlay)
        except Exception as exc:  # one bad image never stops the node
            self._count("failed")
            LOG.error("analysis of %s from %s (%s) failed: %s", uid, job.calling_ae, job.address,
                      " ".join(str(exc).split()))
            return
        sent = self._deliver(objects, job)
        LOG.info("analysed %s (%s, %s) in %.1f s; %s", uid, analysis.plane, _summary(analysis),
                 time.monotonic() - job.received, "; ".join(sent) or "sent nowhere")

    def _deliver(self, objects: Sequence[Dataset], job: Received) -> list[str]:
        s, done = self.settings, []
        destination = s.destination_for(job.calling_ae)
        if destination is not None:
            try:
                c_store(objects, destination, calling_ae=s.ae_title, timeout_s=s.dimse_timeout_s)
                done.append(f"{len(objects)} object(s) to {destination}")
                self._count("sent", len(objects))
            except (SendError, OSError, RuntimeError, ValueError) as exc:  # ValueError: SOP class not accepted
                self._count("failed")
                done.append(f"C-STORE to {destination} FAILED: {exc}")
        if s.stow_url:
            try:
                stow_rs(objects, s.stow_url, timeout_s=s.dimse_timeout_s)
                done.append(f"{len(objects)} object(s) by STOW-RS to {s.stow_url}")
                self._count("sent", len(objects))
            except SendError as exc:
                self._count("failed")
                done.append(f"STOW-RS FAILED: {exc}")
        return done


def _summary(analysis: Any) -> str:
    m = analysis.measurement or {}
    if m.get("hc_mm") is not None:
        return f"HC {m['hc_mm']} mm"
    if (m.get("ctr") or {}).get("circumference") is not None:
        return f"CTR {m['ctr']['circumference']}"
    return analysis.measurement_skipped or "no measurement"


def serve_until_stopped(node: DicomNode, stop: threading.Event | None = None,
                        warm: Callable[[], object] | None = None) -> None:
    """Run ``node`` until ``stop`` is set or Ctrl-C, then stop it cleanly. ``warm`` runs once the node listens
    (loading the models: a port already taken is said at once, and images sent meanwhile wait in the queue)."""
    stop = stop or threading.Event()
    node.start()
    try:
        if warm is not None:
            warm()
            LOG.info("models loaded")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        LOG.info("interrupted: stopping")
    finally:
        node.stop()
