"""Sending DICOM objects out: C-STORE to a node (``AE@HOST:PORT``) with pynetdicom, or DICOMweb STOW-RS
(``multipart/related; type="application/dicom"``) to a ``.../studies`` URL with httpx."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fetalscope.errors import BadInputError, FetalscopeError

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # 1-16 printable characters, no backslash


class SendError(FetalscopeError):
    """A destination refused an object or could not be reached."""


def check_ae_title(title: str, option: str = "AE title") -> str:
    """``title`` stripped, when it is a valid DICOM AE title (1-16 printable characters, no backslash, not only
    spaces); a :class:`BadInputError` naming ``option`` otherwise."""
    stripped = title.strip()
    if not stripped or not _AE_TITLE.match(stripped):
        raise BadInputError(f"{option} must be 1-16 printable characters without a backslash, got {title!r}")
    return stripped


@dataclass(frozen=True)
class Destination:
    """A DICOM node that receives C-STORE requests."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, option: str = "--forward") -> Destination:
        """``AE@HOST:PORT`` (e.g. ``ORTHANC@127.0.0.1:4242``); a :class:`BadInputError` naming ``option``
        for anything else."""
        match = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>[^:@]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})", text.strip())
        if match is None:
            raise BadInputError(f"{option} must look like AE@HOST:PORT (e.g. ORTHANC@127.0.0.1:4242), got {text!r}")
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise BadInputError(f"{option}: port {port} is not in 1-65535")
        return cls(check_ae_title(match["ae"], option), match["host"].strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_stow_url(url: str, option: str = "--stow") -> str:
    """An http(s) URL of a DICOMweb ``studies`` resource (e.g. ``http://pacs:8042/dicom-web/studies``)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadInputError(f"{option} must be an http(s) URL such as http://127.0.0.1:8042/dicom-web/studies, "
                            f"got {url!r}")
    return url.rstrip("/")


def _with_file_meta(ds: Dataset) -> Dataset:
    """``ds`` with file meta information (explicit VR little endian unless it says otherwise)."""
    from pydicom.dataset import FileMetaDataset

    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def part10_bytes(ds: Dataset) -> bytes:
    """``ds`` as a DICOM Part 10 file (preamble, file meta, data set)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, _with_file_meta(ds), enforce_file_format=True)
    return buffer.getvalue()


def c_store(datasets: Sequence[Dataset], destination: Destination, *, calling_ae: str = "FETALSCOPE",
            timeout_s: float = 30.0, max_pdu: int = 16382) -> list[int]:
    """Send ``datasets`` to ``destination`` in one association; the C-STORE status of each. Raises
    :class:`SendError` when the association is refused or aborted, or an object gets a failure status."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout_s
    ae.maximum_pdu_size = max_pdu
    for sop_class in dict.fromkeys(ds.SOPClassUID for ds in datasets):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        raise SendError(f"{destination} refused or did not answer the association")
    statuses: list[int] = []
    try:
        for ds in datasets:
            reply = assoc.send_c_store(_with_file_meta(ds))
            status = int(getattr(reply, "Status", -1)) if reply else -1
            statuses.append(status)
            if status not in (0x0000, 0xB000, 0xB007, 0xB006):  # success or a warning
                raise SendError(f"{destination} answered C-STORE of {ds.SOPInstanceUID} with status "
                                + (f"0x{status:04X}" if status >= 0 else "none (timeout or abort)"))
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def stow_rs(datasets: Sequence[Dataset], url: str, *, timeout_s: float = 30.0,
            headers: dict[str, str] | None = None) -> dict:
    """POST ``datasets`` to the DICOMweb ``url`` (a ``studies`` resource) as one
    ``multipart/related; type="application/dicom"`` request; the server's JSON answer (``{}`` when it sent
    none). Raises :class:`SendError` for a failed request or failed instances (FailedSOPSequence)."""
    import httpx

    boundary = f"fetalscope-{uuid.uuid4().hex}"
    body = bytearray()
    for ds in datasets:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        body += part10_bytes(ds) + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request_headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                       "Accept": "application/dicom+json", **(headers or {})}
    try:
        response = httpx.post(url, content=bytes(body), headers=request_headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise SendError(f"STOW-RS to {url} failed: {exc}") from exc
    if response.status_code not in (200, 202):
        raise SendError(f"STOW-RS to {url} answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        answer = {}
    failed = (answer.get("00081198") or {}).get("Value") if isinstance(answer, dict) else None
    if failed:
        raise SendError(f"STOW-RS to {url}: {len(failed)} instance(s) failed: {failed}")
    return answer
