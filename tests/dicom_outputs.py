"""DICOM inputs made from real images; DICOM outputs checked by dciodvfy and read back in tests (plain pydicom,
no highdicom): the content items of an SR, their numbers and references. Imported as ``dicom_outputs``
(``tests`` is on the pytest path)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid


def content_items(ds: Dataset) -> Iterator[Dataset]:
    """Every content item of an SR, depth first."""
    for item in getattr(ds, "ContentSequence", []):
        yield item
        yield from content_items(item)


def concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return code.CodeValue, code.CodingSchemeDesignator


def numbers(sr: Dataset) -> dict[str, list[tuple[float, str]]]:
    """LOINC/DCM code value -> [(value, UCUM unit)] of every NUM item."""
    out: dict[str, list[tuple[float, str]]] = {}
    for item in content_items(sr):
        if item.ValueType == "NUM":
            mv = item.MeasuredValueSequence[0]
            out.setdefault(concept(item)[0], []).append(
                (float(mv.NumericValue), mv.MeasurementUnitsCodeSequence[0].CodeValue))
    return out


def find(sr: Dataset, value_type: str) -> list[Dataset]:
    return [item for item in content_items(sr) if item.ValueType == value_type]


def write_us_dicom(path: Path, png: Path, spacing_mm: float = 0.15) -> Path:
    """``png`` as an RGB single-frame Ultrasound Image Storage file with PixelSpacing and identifiers."""
    pixels = np.asarray(Image.open(png).convert("RGB"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Mother", "PAT-17", "19900101", "F"
    ds.AccessionNumber, ds.StudyID, ds.StudyDate, ds.StudyTime = "ACC-17", "S17", "20260101", "101500"
    ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "US", 1, 1
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelSpacing = [f"{spacing_mm}", f"{spacing_mm}"]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def dciodvfy(path: Path) -> str:
    """Runs dciodvfy (Debian dicom3tools) on ``path`` and fails on any error line (skips when it is not
    installed); returns its output."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert not errors, f"dciodvfy {path.name}:\n{output}"
    return output


REAL_HEAD = ("training_set/010_HC.png", 0.0799351646787)  # an HC18 head (71.9 mm) and its pixel size in mm


def real_head_png() -> tuple[Path, float]:
    """A real HC18 head image and its pixel size. The bundled brain example is a drawing that the measurement
    routing rightly does not take for a head (its heart/thorax segmentation is as convincing and the plane model
    calls it Other), so the head SR/FHIR tests use a real head and skip without ``../shared``."""
    from fetalscope import config

    path = config.shared_data_dir() / "hc18" / REAL_HEAD[0]
    if not path.is_file():
        pytest.skip(f"a real HC18 head is needed and is not present at {path}")
    return path, REAL_HEAD[1]
