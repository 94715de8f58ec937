"""Fixtures of the DICOM/FHIR output tests: real DICOM ultrasound files made from the bundled example images
(with PixelSpacing, patient, study and accession), one shared session, dciodvfy and an SR reader."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

DCIODVFY = shutil.which("dciodvfy")


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


@pytest.fixture(scope="session")
def dicom_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dicom_in")


@pytest.fixture(scope="session")
def head_dcm(dicom_dir) -> Path:
    """The bundled brain example as a DICOM (0.15 mm pixels)."""
    from fetalscope.serve.examples import BUNDLED_DIR

    return write_us_dicom(dicom_dir / "head.dcm", BUNDLED_DIR / "phantom_fetal_brain.png")


@pytest.fixture(scope="session")
def thorax_dcm(dicom_dir) -> Path:
    """The bundled thorax example as a DICOM (the plane model calls it Fetal thorax; its CTR passes the gate)."""
    from fetalscope.serve.examples import BUNDLED_DIR

    return write_us_dicom(dicom_dir / "thorax.dcm", BUNDLED_DIR / "phantom_fetal_thorax.png")


@pytest.fixture(scope="session")
def cine_dcm() -> Path:
    """pydicom's multi-frame YBR colour example (30 frames, no pixel spacing)."""
    import pydicom.data

    path = pydicom.data.get_testdata_file("examples_ybr_color.dcm", download=False)
    if path is None:
        pytest.skip("examples_ybr_color.dcm is not in this pydicom wheel")
    return Path(path)


@pytest.fixture(scope="session")
def session():
    from fetalscope.pipeline.session import Session

    return Session()


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], str]:
    """Runs dciodvfy on a file and fails the test on any error line; returns its output."""
    if DCIODVFY is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")

    def check(path: Path) -> str:
        done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
        output = done.stdout + done.stderr
        errors = [line for line in output.splitlines() if line.startswith("Error")]
        assert not errors, f"dciodvfy {path.name}:\n{output}"
        return output

    return check
