"""Colour presentation state and Segmentation from real measurements on real DICOM files: the drawings and
regions read back equal the record's ellipses, both reference the source instance and pass dciodvfy."""

from __future__ import annotations

import math

import highdicom as hd
import numpy as np
import pydicom
import pytest

from fetalscope.errors import UnsupportedError
from fetalscope.interop.dicom_pr import write_presentation_state
from fetalscope.interop.dicom_seg import write_segmentation
from fetalscope.interop.geometry import ellipse_points


@pytest.fixture(scope="module")
def thorax(session, thorax_dcm):
    analysis = session.analyse(session.load(thorax_dcm), measure="auto")
    assert analysis.measurement["quality"] == "ok"
    return analysis


def test_presentation_state_draws_the_ellipses_and_boxes_on_the_source(thorax, thorax_dcm, tmp_path, dciodvfy):
    record = thorax.to_dict()
    # a detection record beside the measurement (the writer draws whatever boxes an analysis holds)
    record["detections"] = {"boxes": [{"label": "heart box", "score": 0.91, "xyxy": [100.0, 80.0, 180.0, 140.0]}]}
    path = write_presentation_state(record, thorax_dcm, tmp_path, colours={"heart": (255, 64, 64)})
    dciodvfy(path)
    state, src = pydicom.dcmread(path), pydicom.dcmread(thorax_dcm)
    assert state.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.2"  # Color Softcopy Presentation State
    assert state.StudyInstanceUID == src.StudyInstanceUID and state.PatientID == src.PatientID
    assert state.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    layers = {a.GraphicLayer: a for a in state.GraphicAnnotationSequence}
    assert set(layers) == {"HEART", "THORAX", "HEART BOX"}
    for name in ("heart", "thorax"):
        (drawn,) = layers[name.upper()].GraphicObjectSequence
        assert drawn.GraphicType == "ELLIPSE" and drawn.GraphicAnnotationUnits == "PIXEL"
        np.testing.assert_allclose(np.reshape(drawn.GraphicData, (-1, 2)),
                                   ellipse_points(record["measurement"][name]), atol=1e-3)
    (box,) = layers["HEART BOX"].GraphicObjectSequence
    assert box.GraphicType == "POLYLINE" and list(box.GraphicData[:4]) == [100.0, 80.0, 180.0, 80.0]
    assert layers["HEART BOX"].TextObjectSequence[0].UnformattedTextValue == "heart box 0.91"
    coloured = {g.GraphicLayer: g for g in state.GraphicLayerSequence}
    lab = hd.color.CIELabColor.from_dicom_value(coloured["HEART"].GraphicLayerRecommendedDisplayCIELabValue)
    assert lab.to_rgb() == pytest.approx((255, 64, 64), abs=2)
    assert "GraphicLayerRecommendedDisplayCIELabValue" not in coloured["THORAX"]


def test_segmentation_holds_the_measured_regions(thorax, thorax_dcm, tmp_path, dciodvfy):
    path = write_segmentation(thorax, thorax_dcm, tmp_path)
    dciodvfy(path)
    seg = pydicom.dcmread(path)  # (highdicom's reader wants a slice thickness, which ultrasound has not)
    src = pydicom.dcmread(thorax_dcm)
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["heart (fitted ellipse)", "thorax (fitted ellipse)"]
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "80891009"
    frames = seg.pixel_array.reshape(-1, src.Rows, src.Columns)
    masks = np.zeros((src.Rows, src.Columns, 2), dtype=np.uint8)
    for frame, groups in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        source = groups.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == src.SOPInstanceUID
        masks[..., number - 1] = frame
    for i, name in enumerate(("heart", "thorax")):
        e = thorax.measurement[name]
        assert masks[..., i].sum() == pytest.approx(math.pi * e["a"] * e["b"], rel=0.03), name
        assert masks[round(e["cy"]), round(e["cx"]), i] == 1
    assert masks[..., 0].astype(bool).sum() <= (masks[..., 0].astype(bool) & masks[..., 1].astype(bool)).sum() + 5


def test_segmentation_of_a_cine_frame_is_refused_and_nothing_written(session, cine_dcm, tmp_path):
    record = session.measure(session.load(cine_dcm), "head", pixel_size_mm=0.2)
    if record["quality"] == "rejected":
        pytest.skip("no head ellipse on pydicom's cine example")
    with pytest.raises(UnsupportedError, match="cine loop"):
        write_segmentation(record, cine_dcm, tmp_path)
    assert not list(tmp_path.iterdir())
