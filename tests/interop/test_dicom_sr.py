"""DICOM SR TID 1500 from real measurements on real DICOM files: values read back with pydicom equal the JSON
record, the SR files with the source study, references the source instance (and frame), passes dciodvfy."""

from __future__ import annotations

import math

import pydicom
import pytest
from pydicom.sr._concepts_dict import concepts

from dicom_outputs import concept, content_items, find, numbers
from fetalscope.errors import BadInputError
from fetalscope.interop import vocabulary as v
from fetalscope.interop.dicom_sr import measurement_report, write_sr


def test_codes_are_the_loinc_ucum_and_snomed_ones_named_in_the_issue():
    """Each code comes from pydicom's code dictionary by keyword; these are the values the SR must carry."""
    expected = {"HEAD_CIRCUMFERENCE": ("11984-2", "LN"), "BIPARIETAL_DIAMETER": ("11820-8", "LN"),
                "OCCIPITOFRONTAL_DIAMETER": ("11851-3", "LN"), "GESTATIONAL_AGE": ("18185-9", "LN"),
                "GA_BY_HC_HADLOCK_1984": ("11932-1", "LN"), "CTR_CIRCUMFERENCE": ("59074-5", "LN"),
                "CTR_AREA": ("59076-0", "LN"), "MILLIMETRE": ("mm", "UCUM"), "WEEK": ("wk", "UCUM"),
                "RATIO": ("{ratio}", "UCUM"), "HEART": ("80891009", "SCT"), "THORAX": ("816094009", "SCT")}
    for name, (value, scheme) in expected.items():
        code = getattr(v, name)
        assert (code.value, code.scheme_designator) == (value, scheme), name
        assert any(value in by_code for by_code in concepts[scheme].values()), name
    assert v.private_code("Fetal brain").value == "fetal-brain"


@pytest.fixture(scope="module")
def head(session, head_dcm):
    image = session.load(head_dcm)
    return session.measure(image, "head")


def test_head_sr_round_trip(head, head_dcm, tmp_path, dciodvfy):
    assert head["quality"] == "ok" and head["pixel_size_source"] == "dicom"
    path = write_sr(head, head_dcm, tmp_path)
    dciodvfy(path)
    sr, src = pydicom.dcmread(path), pydicom.dcmread(head_dcm)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.Modality == "SR"  # Comprehensive SR
    for key in ("StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "StudyID", "PatientBirthDate"):
        assert sr[key].value == src[key].value, key
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID and sr.SOPInstanceUID != src.SOPInstanceUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    got = numbers(sr)
    for key, code in (("hc_mm", "11984-2"), ("bpd_mm", "11820-8"), ("ofd_mm", "11851-3")):
        (value, unit), = got[code]
        assert unit == "mm" and value == pytest.approx(head[key], abs=0.05), key
    (ga, unit), = got["18185-9"]
    assert unit == "wk" and ga == pytest.approx(head["ga_weeks"], abs=0.01)
    ga_item = next(i for i in content_items(sr) if i.ValueType == "NUM" and concept(i)[0] == "18185-9")
    methods = [c.ConceptCodeSequence[0].CodeValue for c in ga_item.ContentSequence if concept(c)[0] == "370129005"]
    assert methods == ["11932-1"]  # GA equation: HC, Hadlock 1984
    # the ellipse: SCOORD ELLIPSE on the source instance, its major axis the record's 2a
    (scoord,) = find(sr, "SCOORD")
    assert scoord.GraphicType == "ELLIPSE"
    x0, y0, x1, y1, *_ = scoord.GraphicData
    assert math.dist((x0, y0), (x1, y1)) == pytest.approx(2 * max(head["ellipse"]["a"], head["ellipse"]["b"]), abs=0.01)
    assert (x0 + x1) / 2 == pytest.approx(head["ellipse"]["cx"] + 0.5, abs=0.01)
    (ref,) = find(scoord, "IMAGE")
    assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ref.ReferencedSOPSequence[0].ReferencedSOPClassUID == src.SOPClassUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    # algorithm identification: fetalscope, its version, the model bundle
    texts = {concept(i)[0]: i.TextValue for i in find(sr, "TEXT")}
    from fetalscope import __version__

    assert texts["111001"] == "fetalscope" and texts["111003"] == __version__
    import json

    from fetalscope import config

    card = json.loads((config.bundled_models_dir() / head["model"]["id"] / "card.json").read_text())
    assert head["model"]["revision"] == card["revision"]  # which retrained weights of the version measured it
    assert texts["111002"] == f"model {head['model']['id']} {head['model']['version']} revision {card['revision']}"


def test_cardiothoracic_sr_with_plane_and_grade(session, thorax_dcm, tmp_path, dciodvfy):
    image = session.load(thorax_dcm)
    analysis = session.analyse(image, measure="auto", quality=True)
    ctr = analysis.measurement["ctr"]
    assert analysis.plane == "Fetal thorax" and ctr is not None
    path = write_sr(analysis, thorax_dcm, tmp_path)
    dciodvfy(path)
    sr = pydicom.dcmread(path)
    got = numbers(sr)
    assert got["59074-5"] == [(pytest.approx(ctr["circumference"], abs=1e-4), "{ratio}")]
    assert got["59076-0"] == [(pytest.approx(ctr["area"], abs=1e-4), "{ratio}")]
    assert got["122157"] == [(pytest.approx(analysis.plane_probability, abs=1e-6), "1")]
    assert [s.GraphicType for s in find(sr, "SCOORD")] == ["ELLIPSE", "ELLIPSE"]  # heart, thorax
    coded = {concept(i)[0]: i.ConceptCodeSequence[0] for i in find(sr, "CODE")}
    assert coded["111031"].CodeMeaning == "Fetal thorax"  # Image View: the plane
    assert coded["111029"].CodeMeaning == analysis.quality["grade"]  # Image Quality Rating: the grade


def test_classification_only_sr_of_a_cine_loop_references_the_frame(session, cine_dcm, tmp_path, dciodvfy):
    image = session.load(cine_dcm)
    analysis = session.analyse(image)
    sr = measurement_report(analysis, cine_dcm)
    assert sr.SeriesDescription == "fetalscope classification"
    assert "11984-2" not in numbers(sr) and not find(sr, "SCOORD")
    refs = [r.ReferencedSOPSequence[0] for r in find(sr, "IMAGE")]
    assert refs and all(int(r.ReferencedFrameNumber) == image.frame + 1 == 16 for r in refs)
    path = tmp_path / "cine_sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    dciodvfy(path)
    assert pydicom.dcmread(path).StudyInstanceUID == pydicom.dcmread(cine_dcm, stop_before_pixels=True).StudyInstanceUID


def test_non_dicom_input_is_refused_with_a_clear_message(head, tmp_path):
    from fetalscope.serve.examples import BUNDLED_DIR

    with pytest.raises(BadInputError, match="not a DICOM file.*need a DICOM input"):
        write_sr(head, BUNDLED_DIR / "phantom_fetal_brain.png", tmp_path)
    assert not list(tmp_path.iterdir())
