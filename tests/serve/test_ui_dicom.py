"""The app's SR download: a DICOM upload's header is kept for as long as its analysis lives and gives the SR of
the analysis; a PNG upload gives none."""

from __future__ import annotations

import gc

import pydicom
import pytest

from dicom_outputs import write_us_dicom
from fetalscope.serve import ui_dicom


@pytest.fixture(scope="module")
def session():
    from fetalscope.pipeline.session import Session

    return Session(brain_plane_model=None, brain_findings_model=None, detector=None)


def test_dicom_upload_gives_its_sr_and_png_none(session, tmp_path):
    from fetalscope.serve.examples import BUNDLED_DIR

    png = (BUNDLED_DIR / "phantom_fetal_thorax.png").read_bytes()
    dcm = write_us_dicom(tmp_path / "thorax.dcm", BUNDLED_DIR / "phantom_fetal_thorax.png").read_bytes()
    from_png = session.analyse(session.load(png, name="thorax.png"), name="thorax.png", measure="auto")
    ui_dicom.remember_source(from_png, png, "thorax.png")
    assert ui_dicom.sr_file(from_png, tmp_path, "thorax-png") is None
    analysis = session.analyse(session.load(dcm, name="thorax.dcm"), name="thorax.dcm", measure="auto")
    ui_dicom.remember_source(analysis, dcm, "thorax.dcm")
    path = ui_dicom.sr_file(analysis, tmp_path, "thorax")
    assert path is not None and path.endswith("fetalscope-report-thorax_sr.dcm")
    sr = pydicom.dcmread(path)
    assert sr.StudyInstanceUID == pydicom.dcmread(tmp_path / "thorax.dcm").StudyInstanceUID
    key = id(analysis)
    assert key in ui_dicom._HEADERS
    del analysis
    gc.collect()
    assert key not in ui_dicom._HEADERS  # the header goes with its analysis
