"""The result objects: an Analysis serialises (dict, JSON, CSV row) and draws (plot, HTML report) itself;
the one door (Session) fills it with what ran, and routes detection and measurement by plane."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.explain.types import Explanation
from fetalscope.imaging import load_image
from fetalscope.pipeline import Analysis, ClassScore, ExplanationResult, Session
from fetalscope.pipeline.html_report import report_json, report_record
from fetalscope.serve.examples import BUNDLED_DIR


def _analysis(**extra) -> Analysis:
    probs = [ClassScore("Fetal brain", 0.9), ClassScore("Maternal cervix", None), ClassScore("Other", 0.1)]
    return Analysis(image="<b>x</b>.png", width=10, height=8, model={"id": "m", "version": "1"}, plane="Fetal brain",
                    plane_probability=0.9, probabilities=probs, warnings=["careful"],
                    ood={"flag": False, "score": 0.0}, **extra)


def _explanation(label: str = "Fetal brain") -> ExplanationResult:
    m = np.zeros((4, 5), np.float32)
    m[1, 1] = 1.0
    e = Explanation(map=m, target=0, method="gradcam", params={"layer": "x"}, seconds=0.1, probability=0.9)
    region = np.zeros((8, 10, 3), np.uint8)
    return ExplanationResult(e, label, region, region + 7)


def test_record_fields_report_and_escaping():
    a = _analysis()
    a.add_explanation(_explanation())
    a.add_explanation(_explanation())  # the same method, model and class replaces the earlier one
    d = a.to_dict()
    assert "findings" not in d and "loaded" not in d  # nothing that nothing fills; no pixels in records
    assert d["detections"] is None and d["measurement"] is None and d["fetalscope_version"]
    assert [e["target_label"] for e in d["explanations"]] == ["Fetal brain"]
    assert d["explanations"][0]["target_class"] == "Fetal brain"  # the CLI's old name, as an alias
    assert json.loads(a.to_json()) == json.loads(json.dumps(d))
    assert json.loads(report_json(report_record(a)))["analysis"]["plane"] == "Fetal brain"
    html = a.to_html()
    assert "Predicted plane: Fetal brain (90.0%)" in html and "not covered by this model" in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html  # names are escaped
    assert html.count("data:image/png;base64,") == 1 and "Not a medical device" in html  # the overlay only
    with pytest.raises(BadInputError, match="holds no image"):
        a.plot()
    np.testing.assert_array_equal(a.plot(explanation="gradcam"), np.full((8, 10, 3), 7, np.uint8))
    with pytest.raises(BadInputError, match="no 'lime' explanation.*gradcam"):
        a.plot(explanation="lime")


def test_report_html_shows_brain_findings_under_the_card_warning():
    from fetalscope.models.bundle import read_card

    card = read_card("brain-normal-abnormal-demo")
    findings = {"label": "abnormal", "probability": 0.8,
                "probabilities": [{"label": "abnormal", "probability": 0.8},
                                  {"label": "<i>normal</i>", "probability": 0.2}],
                "model": {"id": card["name"], "version": card["version"]}, "status": card["status"],
                "warning": card["warning"] + " <script>x</script>"}
    html = _analysis(brain_findings=findings).to_html()
    assert "fs-findings-warning" in html and card["warning"] in html and f"Model status: {card['status']}." in html
    assert "abnormal 80.0%" in html and "&lt;i&gt;normal&lt;/i&gt; 20.0%" in html
    assert "<script>x</script>" not in html  # card text is escaped like any other value


def test_row_has_detection_and_measurement_columns_only_when_they_ran():
    plain = _analysis().to_row()
    assert "detections" not in plain and "hc_mm" not in plain
    boxes = [{"label": "CSP", "score": 0.9, "xyxy": [1, 1, 4, 4]}, {"label": "MIDLINE_FALX", "score": 0.8,
                                                                     "xyxy": [0, 0, 9, 2]}]
    row = _analysis(detections={"boxes": boxes}, measurement={"measurement": "head", "quality": "ok",
                                                              "hc_mm": 170.2, "ga_weeks": 19.6}).to_row()
    assert row["detections"] == 2 and row["detected"] == "CSP;MIDLINE_FALX"
    assert row["measurement"] == "head" and row["hc_mm"] == 170.2 and row["bpd_mm"] == "" and row["ga_weeks"] == 19.6
    assert row["hc_interval_low_mm"] == row["hc_interval_high_mm"] == ""  # no interval in the record
    ranged = _analysis(measurement={"measurement": "head", "quality": "ok", "hc_mm": 170.2,
                                    "hc_interval_mm": [166.9, 173.5], "hc_interval_coverage": 0.9}).to_row()
    assert (ranged["hc_interval_low_mm"], ranged["hc_interval_high_mm"]) == (166.9, 173.5)
    ctr = _analysis(measurement={"measurement": "cardiothoracic", "quality": "ok", "ctr": {"circumference": 0.51},
                                 "ctr_interval": [0.46, 0.56], "ctr_interval_coverage": 0.9}).to_row()
    assert ctr["ctr"] == 0.51 and (ctr["ctr_interval_low"], ctr["ctr_interval_high"]) == (0.46, 0.56)


def test_row_carries_the_timings_of_each_step():
    row = _analysis(timings_ms={"load": 1.5, "plane": 20.25, "total": 23.0}).to_row()
    assert (row["time_load_ms"], row["time_plane_ms"], row["time_total_ms"]) == (1.5, 20.25, 23.0)
    assert not any(k.startswith("time_") for k in _analysis(timings_ms={}).to_row())


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


def _check_routing(a: Analysis) -> None:
    """Detection ran exactly when the plane (and the OOD check) call for it; the measurement followed its recorded
    route: the plane's measurement when the route went by the plane, a route the segmentations chose otherwise
    (with its reason), nothing on non-ultrasound images, and a reason whenever nothing was measured."""
    brain = a.plane == "Fetal brain" and not a.ood.get("flag")
    assert (a.detections is not None) == brain and (a.detections_skipped is None) == brain
    wants = {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}.get(a.plane or "")
    if a.ood.get("flag"):
        assert a.measurement is None and a.measurement_skipped
    elif a.measurement is None:
        assert a.measurement_skipped
    else:
        route = a.measurement["route"]
        assert a.measurement["measurement"] == route["what"] and a.measurement_skipped is None
        assert route["plane"] == a.plane and route["reason"]
        if route["by"] == "plane":
            assert route["what"] == wants
        else:
            assert route["by"] == "segmentation"


def test_session_fills_the_analysis_and_it_draws_itself(session):
    path = BUNDLED_DIR / "phantom_fetal_brain.png"
    a = session.analyse(path, detect="auto", measure="auto", explain=["gradcam", "gradcam++"])
    _check_routing(a)
    assert [e.method for e in a.explanations] == ["gradcam", "gradcam++"]
    assert all(e.target_label == a.plane for e in a.explanations)
    for key in ("load", "plane", "explain", "total"):
        assert a.timings_ms[key] >= 0
    drawn = a.plot(labels=True, max_side=None)
    assert drawn.shape == load_image(path).pixels.shape and drawn.dtype == np.uint8
    assert (drawn != a.loaded.pixels).any()  # at least the plane label is drawn
    d = a.to_dict()
    assert d["explanations"][0]["model"]["id"] == "sononet-planes" and len(d["probabilities"]) == 6
    html = a.to_html()
    assert html.count("data:image/png;base64,") >= 3  # the image and two overlays (and findings, when any)


def test_session_routes_real_images_by_plane(session, shared_data):
    hc18 = sorted((shared_data / "hc18").rglob("*_HC.png"))[:1]
    thorax = sorted((shared_data / "focus_fetal_thorax").rglob("*.png"))[:1]
    if not hc18 or not thorax:
        pytest.skip("HC18 or FOCUS images not in the shared folder")
    for path in hc18 + thorax:
        a = session.analyse(path, detect="auto", measure="auto")
        _check_routing(a)
    brain = session.analyse(hc18[0], detect="auto", measure="auto", pixel_size_mm=0.1)
    if (brain.measurement or {}).get("measurement") == "head":
        assert brain.measurement["pixel_size_mm"] == 0.1 and brain.measurement["pixel_size_source"] == "argument"
        assert (brain.plot(show=("measurement",), labels=False) != brain.loaded.pixels).any()


def test_one_pixel_size_rule_and_measure_routes(session):
    path = BUNDLED_DIR / "phantom_other.png"
    for bad in (-1.0, 0.0, 12.0, float("nan")):
        with pytest.raises(BadInputError, match="pixel_size_mm"):
            session.measure(path, "head", bad)
        with pytest.raises(BadInputError, match="pixel_size_mm"):
            session.analyse(path, measure="auto", pixel_size_mm=bad)
    with pytest.raises(BadInputError, match="what must be one of auto, head, cardiothoracic, got 'knee'"):
        session.measure(path, "knee")
    record = session.measure(path, "auto")
    if record["measurement"] is None:  # a plane with nothing to measure says so instead of guessing
        assert record["quality"] == "not_measured" and record["route"]["reason"] in record["flags"][0]
        assert "no measurement for a" in record["flags"][1]
    forced = session.measure(path, "head", 0.2)
    assert forced["measurement"] == "head" and forced["pixel_size_mm"] == 0.2
