"""The app's DICOM SR download: when an analysed upload was DICOM, "Build report" adds the analysis as a DICOM
SR (TID 1500) of that file beside the JSON, HTML and PDF reports. The upload's header (no pixels) is kept for
as long as its analysis lives; other uploads get no SR."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from fetalscope.errors import FetalscopeError

_HEADERS: dict[int, Dataset] = {}


def remember_source(analysis: Any, data: bytes, name: str) -> None:
    """Keep the DICOM header of ``data`` for ``analysis`` (nothing for a non-DICOM file, or without the
    ``dicom-out`` extra)."""
    try:
        from fetalscope.interop import require
        from fetalscope.interop.source import read_source

        require("highdicom")
        header = read_source(data, name=name).header
    except FetalscopeError:
        return
    key = id(analysis)
    _HEADERS[key] = header
    weakref.finalize(analysis, _HEADERS.pop, key, None)


def sr_file(analysis: Any, folder: Path, stem: str) -> str | None:
    """``folder/fetalscope-report-<stem>_sr.dcm``, the SR of ``analysis`` when its upload was DICOM, else None."""
    header = _HEADERS.get(id(analysis))
    if header is None:
        return None
    from fetalscope.interop.dicom_sr import write_sr

    try:
        return str(write_sr(analysis, header, folder, name=f"fetalscope-report-{stem}"))
    except FetalscopeError:  # nothing to report (no plane, no accepted measurement)
        return None
