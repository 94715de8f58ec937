"""`fetalscope measure/predict --sr DIR [--overlay] [--seg] [--fhir DIR]`: the contract's check on a DICOM head
(SR study UID and patient ID are the source's, it references the source instance, its HC equals the JSON's
hc_mm to 0.05 mm), and a non-DICOM input in the same run gets a note, not an error."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
from typer.testing import CliRunner

from dicom_outputs import find, numbers
from fetalscope.cli import app

runner = CliRunner()


def test_measure_head_writes_sr_overlay_seg_and_fhir(head_dcm, tmp_path, dciodvfy):
    from fetalscope.serve.examples import BUNDLED_DIR

    png = shutil.copy(BUNDLED_DIR / "phantom_fetal_brain.png", tmp_path / "plain.png")
    out, fhir, m = tmp_path / "sr", tmp_path / "fhir", tmp_path / "m.json"
    result = runner.invoke(app, ["measure", str(head_dcm), str(png), "--what", "head", "--sr", str(out),
                                 "--overlay", "--seg", "--fhir", str(fhir), "--output", str(m)])
    assert result.exit_code == 0, result.output
    assert "no DICOM outputs for plain.png" in " ".join(result.output.split())
    # the PNG has no pixel size: no millimetres, so nothing for FHIR either (a note, not an error)
    assert "no FHIR for plain.png" in " ".join(result.output.split())
    assert "1 SR, 1 presentation state, 1 segmentation, 1 FHIR" in " ".join(result.output.split())
    record = next(r for r in json.loads(m.read_text()) if r["image"].endswith("head.dcm"))
    assert sorted(p.name for p in out.iterdir()) == ["head_pr.dcm", "head_seg.dcm", "head_sr.dcm"]
    assert sorted(p.name for p in fhir.iterdir()) == ["head.fhir.json"]
    for path in out.iterdir():
        dciodvfy(path)
    sr, src = pydicom.dcmread(out / "head_sr.dcm"), pydicom.dcmread(head_dcm)
    assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.PatientID == src.PatientID
    assert any(r.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID for r in find(sr, "IMAGE"))
    ((hc, unit),) = numbers(sr)["11984-2"]
    assert unit == "mm" and hc == pytest.approx(record["hc_mm"], abs=0.05)


def test_predict_writes_a_classification_sr_and_fhir(thorax_dcm, tmp_path, dciodvfy):
    out, fhir = tmp_path / "sr", tmp_path / "fhir"
    result = runner.invoke(app, ["predict", str(thorax_dcm), "--sr", str(out), "--fhir", str(fhir)])
    assert result.exit_code == 0, result.output
    (path,) = out.iterdir()
    dciodvfy(path)
    sr = pydicom.dcmread(path)
    assert sr.SeriesDescription == "fetalscope classification"
    view = next(i for i in find(sr, "CODE") if i.ConceptNameCodeSequence[0].CodeValue == "111031")
    assert view.ConceptCodeSequence[0].CodeMeaning == result.output.split("\t")[1]  # the plane printed
    bundle = json.loads((fhir / "thorax.fhir.json").read_text())
    assert bundle["entry"][0]["resource"]["imagingStudy"][0]["identifier"]["value"].endswith(sr.StudyInstanceUID)


def test_overlay_without_sr_is_refused(head_dcm, tmp_path):
    result = runner.invoke(app, ["measure", str(head_dcm), "--overlay"])
    assert result.exit_code == 2 and "--sr" in result.output
