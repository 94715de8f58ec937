"""``format=dicom-sr`` of ``POST /v1/predict`` and ``/v1/measure``: the result as a DICOM SR (TID 1500) of the
uploaded DICOM, answered as ``application/dicom`` (see :mod:`fetalscope.interop.dicom_sr`)."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

from fastapi import Response

from fetalscope.errors import BadInputError

MEDIA_TYPE = "application/dicom"
FORMATS = ("json", "dicom-sr")


def with_sr(answers: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's documented answers with the SR as a second content type of its 200."""
    ok = dict(answers[200])
    ok["description"] += "; with `format=dicom-sr`, the DICOM SR (TID 1500) of a DICOM upload"
    ok["content"] = {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}
    return {**answers, 200: ok}


def check_format(value: str | None) -> str:
    key = str(value or "json").strip().lower()
    if key not in FORMATS:
        raise BadInputError(f"format must be json or dicom-sr, got '{value}'")
    return key


def check_dicom(data: bytes, name: str) -> None:
    """A 400 before any work when ``format=dicom-sr`` comes with an upload that is not DICOM."""
    from fetalscope.interop import require
    from fetalscope.interop.source import read_source

    require("highdicom")
    read_source(data, name=name)


def sr_response(result: Any, data: bytes, name: str, frame: int | None) -> Response:
    """The SR of ``result`` (an ``Analysis`` or a measurement record) made on the uploaded DICOM ``data``."""
    from fetalscope.interop.dicom_sr import measurement_report
    from fetalscope.interop.source import read_source

    source = read_source(data, frame, name=name)
    dataset = measurement_report(result, source.header, frame=frame)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    stem = name.rsplit(".", 1)[0] or "image"
    filename = quote(f"{stem}_sr.dcm", safe="")
    return Response(buffer.getvalue(), media_type=MEDIA_TYPE,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"})
