"""The source DICOM of a result: read it, check it can anchor derived objects, pick the frame, and the
record of the result whatever form it comes in."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from fetalscope.errors import BadInputError

# Type 2 attributes of the Patient and General Study modules that derived objects copy; a source without
# them gets them empty (DICOM's "unknown") so that the copy is complete.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns")


class HasRecord(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Source:
    """The source image: its header (no pixels), the 1-based frame the result was made on (``None``
    for a single-frame image) and its size."""

    header: Dataset
    frame: int | None

    @property
    def rows(self) -> int:
        return int(self.header.Rows)

    @property
    def columns(self) -> int:
        return int(self.header.Columns)

    @property
    def n_frames(self) -> int:
        return int(getattr(self.header, "NumberOfFrames", 1) or 1)

    @property
    def study_uid(self) -> str:
        return str(self.header.StudyInstanceUID)


def record_of(result: HasRecord | dict[str, Any]) -> dict[str, Any]:
    """The JSON record of ``result`` (an ``Analysis``, a measurement record, or a record already)."""
    if isinstance(result, dict):
        return result
    to_dict = getattr(result, "to_dict", None)
    if to_dict is None:
        raise BadInputError(f"cannot read a result record from {type(result).__name__}")
    return to_dict()


def frame_of(result: HasRecord | dict[str, Any]) -> int | None:
    """The 0-based frame of the image a result was made on, when the result carries its image."""
    loaded = getattr(result, "loaded", None)
    return None if loaded is None else int(getattr(loaded, "frame", 0))


def read_source(source: str | Path | Dataset, frame: int | None = None) -> Source:
    """The source DICOM as a :class:`Source`. ``frame`` is 0-based as in ``load_image``; ``None`` takes
    the frame the loader takes (the middle one of a cine loop). Raises ``BadInputError`` for a file that
    is not DICOM or lacks the identifiers a derived object must reference."""
    name = source if not isinstance(source, Dataset) else getattr(source, "filename", None) or "the source dataset"
    if isinstance(source, Dataset):
        ds = source
    else:
        try:
            ds = pydicom.dcmread(str(source), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, TypeError) as exc:
            raise BadInputError(f"{name}: not a DICOM file ({exc}); DICOM outputs (SR, presentation state, "
                                "segmentation, FHIR imaging study) need a DICOM input") from exc
    missing = [k for k in REQUIRED if k not in ds]
    if missing:
        raise BadInputError(f"{name}: the DICOM lacks {', '.join(missing)}; a derived object must reference the "
                            "source study, series and instance")
    header = Dataset()
    for element in ds:
        if element.tag.group != 0x7FE0 and element.keyword not in ("PixelData", "FloatPixelData"):
            header.add(copy.deepcopy(element))
    for keyword in TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, "")
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frame is None:
        frame = n_frames // 2 if n_frames > 1 else 0
    if not 0 <= frame < n_frames:
        raise BadInputError(f"{name}: frame {frame} requested, the DICOM has {n_frames} frame(s)")
    return Source(header=header, frame=frame + 1 if n_frames > 1 else None)
