"""`format=dicom-sr` on `POST /v1/measure` and `/v1/predict`, through a running server: the answer is the SR
file (application/dicom) of the uploaded DICOM; a non-DICOM upload is a 400 that says why."""

from __future__ import annotations

import io

import pydicom
import pytest

from dicom_outputs import dciodvfy, find, numbers, real_head_png, write_us_dicom


@pytest.fixture(scope="module")
def head_dcm(tmp_path_factory):
    png, spacing = real_head_png()  # a real head: the brain drawing is not measured as one (skips without shared)
    return write_us_dicom(tmp_path_factory.mktemp("api_dicom") / "head.dcm", png, spacing_mm=spacing)


def test_measure_answers_the_sr_of_the_upload(client, head_dcm, tmp_path):
    data = head_dcm.read_bytes()
    record = client.post("/v1/measure", files={"file": ("head.dcm", data)}, data={"what": "head"}).json()
    answer = client.post("/v1/measure", files={"file": ("head.dcm", data)},
                         data={"what": "head", "format": "dicom-sr"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom"
    assert "head_sr.dcm" in answer.headers["content-disposition"]
    sr, src = pydicom.dcmread(io.BytesIO(answer.content)), pydicom.dcmread(head_dcm)
    assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.PatientID == src.PatientID
    ((hc, unit),) = numbers(sr)["11984-2"]
    assert unit == "mm" and hc == pytest.approx(record["hc_mm"], abs=0.05)
    path = tmp_path / "answer.dcm"
    path.write_bytes(answer.content)
    dciodvfy(path)


def test_predict_answers_a_classification_sr(client, head_dcm):
    data = head_dcm.read_bytes()
    record = client.post("/v1/predict", files={"file": ("head.dcm", data)}).json()
    answer = client.post("/v1/predict", files={"file": ("head.dcm", data)}, data={"format": "dicom-sr"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/dicom"
    sr = pydicom.dcmread(io.BytesIO(answer.content))
    view = next(i for i in find(sr, "CODE") if i.ConceptNameCodeSequence[0].CodeValue == "111031")
    assert view.ConceptCodeSequence[0].CodeMeaning == record["plane"]
    src = pydicom.dcmread(head_dcm)
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == src.SOPInstanceUID


def test_non_dicom_upload_and_unknown_format_are_refused(client, phantom_png):
    answer = client.post("/v1/measure", files={"file": ("scan.png", phantom_png)}, data={"format": "dicom-sr"})
    assert answer.status_code == 400 and "not a DICOM file" in answer.json()["detail"]
    answer = client.post("/v1/predict", files={"file": ("scan.png", phantom_png)}, data={"format": "dicom-seg"})
    assert answer.status_code == 400 and "format must be json or dicom-sr" in answer.json()["detail"]
