"""Fixtures of the DICOM/FHIR output tests: real DICOM ultrasound files made from the bundled example images
(with PixelSpacing, patient, study and accession), one shared session, dciodvfy and an SR reader."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_outputs import dciodvfy as check_dciodvfy
from dicom_outputs import real_head_png, write_us_dicom


@pytest.fixture(scope="session")
def dicom_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dicom_in")


@pytest.fixture(scope="session")
def head_dcm(dicom_dir) -> Path:
    """A real HC18 head as a DICOM with its own pixel size (skips without ../shared)."""
    png, spacing = real_head_png()
    return write_us_dicom(dicom_dir / "head.dcm", png, spacing_mm=spacing)


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
    """dciodvfy on a file, failing the test on any error line (skipped when dicom3tools is absent)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    return check_dciodvfy
