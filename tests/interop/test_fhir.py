"""FHIR DiagnosticReport + Observations from real analyses: fhir.resources (R4B) reads the written file back,
values, LOINC codes and UCUM units equal the JSON record, the image study is referenced by its Study UID."""

from __future__ import annotations

import json

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle

from dicom_outputs import real_head_png
from fetalscope.errors import BadInputError
from fetalscope.interop.fhir import report_bundle, write_fhir


def _by_code(bundle: Bundle) -> dict[str, object]:
    return {e.resource.code.coding[0].code: e.resource for e in bundle.entry
            if e.resource.get_resource_type() == "Observation"}


def test_cardiothoracic_report_round_trip(session, thorax_dcm, tmp_path):
    analysis = session.analyse(session.load(thorax_dcm), measure="auto", quality=True)
    path = write_fhir(analysis, tmp_path, source=thorax_dcm)
    assert path.name == "thorax.fhir.json"
    bundle = Bundle.model_validate_json(path.read_text())
    report = bundle.entry[0].resource
    assert report.get_resource_type() == "DiagnosticReport" and report.code.coding[0].code == "11525-3"
    study = pydicom.dcmread(thorax_dcm, stop_before_pixels=True)
    assert report.imagingStudy[0].identifier.value == f"urn:oid:{study.StudyInstanceUID}"
    assert report.subject.identifier.value == study.PatientID
    observations = _by_code(bundle)
    assert [r.reference for r in report.result] == [e.fullUrl for e in bundle.entry[1:]]
    ctr = analysis.measurement["ctr"]
    for code, key in (("59074-5", "circumference"), ("59076-0", "area")):
        q = observations[code].valueQuantity
        assert (float(q.value), q.system, q.code) == (pytest.approx(ctr[key]), "http://unitsofmeasure.org", "{ratio}")
        assert observations[code].code.coding[0].system == "http://loinc.org"
    view = observations["111031"]
    assert view.valueCodeableConcept.text == analysis.plane
    assert float(view.component[0].valueQuantity.value) == pytest.approx(analysis.plane_probability)
    assert observations["111029"].valueCodeableConcept.text == analysis.quality["grade"]
    assert all(o.derivedFrom[0].identifier.value == f"urn:oid:{study.StudyInstanceUID}" for o in observations.values())


def test_head_report_of_a_png_has_no_study_and_names_the_ga_formula(session, tmp_path):
    png, spacing = real_head_png()
    record = session.measure(session.load(png), "head", pixel_size_mm=spacing)
    assert record["quality"] == "ok"
    bundle = Bundle.model_validate(report_bundle(record))
    report = bundle.entry[0].resource
    assert report.imagingStudy is None and report.subject is None
    observations = _by_code(bundle)
    for code, key in (("11984-2", "hc_mm"), ("11820-8", "bpd_mm"), ("11851-3", "ofd_mm")):
        q = observations[code].valueQuantity
        assert float(q.value) == pytest.approx(record[key]) and q.code == "mm"
    ga = observations["18185-9"]
    assert float(ga.valueQuantity.value) == pytest.approx(record["ga_weeks"]) and ga.valueQuantity.code == "wk"
    assert ga.method.coding[0].code == "11932-1" and ga.method.text == "HC, Hadlock 1984"
    # the conclusion names the model bundle and the revision of its weights that measured the head
    model = record["model"]
    assert f"(models: {model['id']} {model['version']} revision {model['revision']})" in report.conclusion
    json.dumps(report_bundle(record))


def test_a_rejected_measurement_alone_is_refused(session, tmp_path):
    from fetalscope.serve.examples import BUNDLED_DIR

    record = session.measure(session.load(BUNDLED_DIR / "phantom_other.png"), "cardiothoracic")
    assert record["quality"] == "rejected"
    with pytest.raises(BadInputError, match="nothing to report"):
        write_fhir(record, tmp_path)
    assert not list(tmp_path.iterdir())


def test_what_fhir_does_not_allow_is_refused_by_the_validator(monkeypatch):
    """The bundle is validated before it is returned: a quantity that is not a decimal fails there."""
    from pydantic import ValidationError

    from fetalscope.interop import fhir

    real = fhir.observations
    def broken(record):
        found = real(record)
        found[0]["component"][0]["valueQuantity"]["value"] = "about 0.9"
        return found

    monkeypatch.setattr(fhir, "observations", broken)
    with pytest.raises(ValidationError, match="valueQuantity.value"):
        report_bundle({"plane": "Fetal brain", "plane_probability": 0.9, "model": {"id": "m", "version": "1"}})


def test_missing_extra_is_named(monkeypatch):
    import importlib.util

    from fetalscope.errors import UnsupportedError
    from fetalscope.interop import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("fhir") else real(name))
    with pytest.raises(UnsupportedError, match=r"fhir\.resources.*fetalscope\[dicom-out\]"):
        require("fhir.resources")
    require("highdicom")
