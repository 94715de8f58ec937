"""What the server adds around the pipeline session: upload limits, opt-in saving of uploads, safe names and the
model listing. Every operation on an image is the session's (:class:`fetalscope.pipeline.session.Session`):
the API and the UI call ``service.session`` for analysis, explanations, detection and measurement.

One :class:`Service` per server. Uploads arrive as bytes and stay in memory; they are written to disk only
into ``settings.save_uploads`` when the user turned that on.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
import time
from pathlib import Path, PurePath
from typing import Any

from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.pipeline.session import Session
from fetalscope.serve.limits import check_upload_size
from fetalscope.serve.settings import ServeSettings

LOG = logging.getLogger("fetalscope.serve")


def safe_name(name: str | None, default: str = "upload") -> str:
    """A client-supplied file name reduced to its last part, printable, at most 120 characters."""
    if not name:
        return default
    base = PurePath(str(name).replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ()+,]", "_", base).strip() or default
    return base[:120]


class Service:
    """The server's pipeline session, its upload limits and its model listing."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.session = Session(settings.plane_model, runtime=settings.runtime,
                               brain_findings_model=settings.brain_findings_model or None,
                               detector=settings.detector or None, max_bytes=settings.max_upload_bytes,
                               max_pixels=settings.max_pixels)
        self.started = time.time()
        # load the models now (a missing plane bundle stops the server at start-up), not on the first request
        self.session.analyser  # noqa: B018
        self.session.detector_available  # noqa: B018

    def load(self, data: bytes, name: str | None = None, frame: int | None = None, *,
             upload: bool = True) -> UltrasoundImage:
        """Decode bytes with the server's limits. An ``upload`` is saved only when the user opted in."""
        label = safe_name(name)
        check_upload_size(data, self.settings.max_upload_bytes, label)
        if upload and self.settings.save_uploads is not None:
            self._save_upload(data, label)
        return self.session.load(data, frame=frame, name=label)

    def _save_upload(self, data: bytes, label: str) -> Path:
        folder = Path(self.settings.save_uploads or ".")
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
        digest = hashlib.sha256(data).hexdigest()[:16]
        suffix = PurePath(label).suffix.lower()[:8] if PurePath(label).suffix else ".bin"
        path = folder / f"{stamp}-{digest}{suffix}"
        path.write_bytes(data)
        return path

    def models(self) -> dict[str, Any]:
        """The loaded models (by role) and every bundled model's card."""
        from fetalscope.models.bundle import available_bundles, read_card

        bundled = []
        for name in available_bundles():  # every bundle folder shipped with the package (any task)
            try:
                bundled.append({"name": name, "card": read_card(name)})
            except Exception as exc:  # list a broken bundle rather than fail the listing
                bundled.append({"name": name, "error": f"unreadable card ({type(exc).__name__})"})
        session = self.session
        return {
            "loaded": {"plane": {**session.model_info(), "card": session.bundle.card},
                       "detector": {**session.detector_info(), "card": session.detector_card},
                       "brain_findings": session.findings_info()},
            "bundled": bundled,
        }
