"""The acquisition checklist through the one door (`Session.quality`): plane gating, the criteria on degraded
copies of a real image file with a known answer, scores and grades, bad input, and the Analysis field."""

from __future__ import annotations

from html import escape as html_escape

import pytest

from fetalscope.errors import BadInputError
from fetalscope.explain.overlay import png_bytes
from fetalscope.imaging import degrade, load_image
from fetalscope.pipeline.html_report import quality_rows
from fetalscope.pipeline.quality import Criterion, compliance_of, grade_of, score_of, thresholds, weights
from fetalscope.pipeline.session import Session
from fetalscope.serve.examples import BUNDLED_DIR

HEAD_IDS = ["plane_confidence", "head_size", "head_in_view", "midline_falx", "cavum_septi_pellucidi",
            "choroid_plexus", "cerebellum_not_visible", "ellipse_fit", "gain", "sharpness"]
FOUR_CHAMBER_IDS = ["four_chamber_view", "thorax_size", "thorax_in_view", "heart_found", "heart_thorax_area",
                    "ellipse_fit", "gain", "sharpness"]


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(brain_plane_model=None, brain_findings_model=None)


def test_thorax_image_gets_the_four_chamber_checklist(session):
    record = session.quality(BUNDLED_DIR / "phantom_fetal_thorax.png")
    assert record.plane == "Fetal thorax" and record.what == "cardiothoracic"
    assert [c.id for c in record.criteria] == FOUR_CHAMBER_IDS
    assert set(record.ellipses) == {"heart", "thorax"}
    judged = [c for c in record.criteria if c.passed is not None]
    w = weights("cardiothoracic")
    mean = sum(w.get(c.id, 1.0) * c.compliance for c in judged) / sum(w.get(c.id, 1.0) for c in judged)
    assert record.score == round(100 * mean)  # the weighted mean compliance of the judged criteria
    assert record.grade == grade_of(record.score)
    for c in record.criteria:  # every failed criterion says what to change; compliance 1 exactly when passed
        assert (c.advice is None) == bool(c.passed), c
        assert 0 <= c.compliance <= 1 and (c.compliance == 1) == c.passed, c
    d = record.to_dict()
    assert {"image", "plane", "score", "grade", "criteria", "model"} <= set(d)
    assert set(d["criteria"][0]) >= {"id", "passed", "value", "expected", "advice", "compliance"}
    assert d["model"]["segmentation"]["id"] == "focus-ctr" and d["model"]["plane"]["id"]


def test_other_plane_is_not_assessed_rather_than_scored(session):
    record = session.quality(BUNDLED_DIR / "phantom_other.png")
    assert record.what is None and record.score is None and record.grade is None and not record.criteria
    assert record.reason.startswith(f"not assessed: plane '{record.plane}'")
    assert record.line().endswith(record.reason)


def test_head_checklist_on_degraded_copies(session):
    image = load_image(BUNDLED_DIR / "phantom_fetal_brain.png")
    original = session.quality(image, "head")
    assert [c.id for c in original.criteria] == HEAD_IDS
    assert original.criterion("head_in_view").passed
    assert original.boxes is not None and "detector" in original.model
    threshold = session.detector_card["score_threshold"]
    assert all(b["score"] >= threshold for b in original.boxes)  # the record shows the operating point's boxes
    for cid in ("midline_falx", "cavum_septi_pellucidi", "choroid_plexus"):  # a box score against the threshold
        c = original.criterion(cid)
        assert c.compliance == (1.0 if c.passed else pytest.approx((c.value or 0.0) / threshold)), c
    cerebellum = original.criterion("cerebellum_not_visible")  # recorded, not judged, and says why
    assert cerebellum.passed is None and cerebellum.compliance is None and "no model here can tell" in cerebellum.label
    rows = {name: verdict for name, verdict, _, _ in quality_rows(original.to_dict())}
    assert rows[cerebellum.label] == "not judged"  # the reports do not call it a FAIL
    e = original.ellipses["head"]

    def judged(rgb):
        return session.quality(load_image(png_bytes(rgb)), "head")

    shrunk = judged(degrade.zoom_out(image.pixels, 0.3))
    assert shrunk.criterion("head_size").passed is False
    assert shrunk.criterion("head_size").value < 0.2 * original.criterion("head_size").value  # 0.3 x 0.3 area
    assert "Zoom in" in shrunk.criterion("head_size").advice
    shifted = judged(degrade.shift_out_of_view(image.pixels, e["cx"], e["cy"]))
    assert shifted.criterion("head_in_view").passed is False
    assert shifted.criterion("head_in_view").value < original.criterion("head_in_view").value
    assert shifted.score < original.score
    dark = judged(degrade.darken(image.pixels, 0.12))
    assert dark.criterion("gain").passed is False and "Raise the gain" in dark.criterion("gain").advice
    blurred = judged(degrade.blur(image.pixels, 0.02))
    assert blurred.criterion("sharpness").value < original.criterion("sharpness").value
    assert blurred.criterion("sharpness").passed is False
    # graded: a worse copy of an already failing image scores lower still (a pass count could not see it)
    darker = judged(degrade.darken(image.pixels, 0.06))
    assert darker.criterion("gain").passed is False
    assert darker.criterion("gain").compliance < dark.criterion("gain").compliance < 1
    blurrier = judged(degrade.blur(image.pixels, 0.04))
    assert blurrier.criterion("sharpness").compliance < blurred.criterion("sharpness").compliance


def test_scores_and_grades():
    def crit(passed, compliance=None, cid="x"):
        return Criterion(cid, passed, 1.0, "", None, compliance=compliance)

    assert score_of([crit(True, 1.0)] * 4 + [crit(False, 0.0)]) == 80 and grade_of(80) == "standard"
    assert score_of([crit(True, 1.0)] * 3 + [crit(False, 0.0)] * 2) == 60 and grade_of(60) == "acceptable"
    assert score_of([crit(True, 1.0), crit(False, 0.5)]) == 75  # a near miss costs less than a far one
    assert score_of([crit(True, 1.0, "a"), crit(False, 0.0, "b")], {"a": 3.0, "b": 1.0}) == 75  # weighted
    assert grade_of(59) == "not standard" and grade_of(None) is None
    assert score_of([crit(True, 1.0), crit(None)]) == 100  # not judged does not count
    assert score_of([crit(None)]) is None


def test_compliance_falls_with_the_distance_outside_the_range():
    assert compliance_of(0.3, {"low": 0.2, "high": None, "scale": 0.2}) == 1.0
    assert compliance_of(0.15, {"low": 0.2, "high": None, "scale": 0.2}) == pytest.approx(0.75)
    assert compliance_of(0.0, {"low": 0.2, "high": None, "scale": 0.1}) == 0.0  # clipped at one scale out
    assert compliance_of(80.0, {"low": 30.0, "high": 70.0}) == pytest.approx(0.75)  # default: the range's width
    assert compliance_of(0.1, {"low": 0.3}) == pytest.approx(1 / 3)  # one-sided default: the threshold itself
    # gain falls in log units (the knob multiplies): each halving costs the same, and darker always complies less
    gain = {"low": 30.0, "high": 120.0, "fall": "log"}  # default scale ln(4)
    assert compliance_of(15.0, gain) == pytest.approx(0.5)  # a log ratio below the range
    assert compliance_of(165.0, gain) == pytest.approx(0.5)  # linear above it (grey levels saturate): width 90
    assert compliance_of(165.0, {**gain, "scale_high": 180.0}) == pytest.approx(0.75)
    darker = [compliance_of(v, gain) for v in (29.0, 20.0, 12.0, 8.0)]
    assert darker == sorted(darker, reverse=True) and darker[-1] > 0 and compliance_of(7.0, gain) == 0.0
    card = thresholds()
    for what in ("head", "cardiothoracic"):
        assert all(t["scale"] > 0 and t["weight"] > 0 and t["scale_source"] for t in card[what].values())


def test_threshold_card_names_a_source_for_every_threshold():
    card = thresholds()
    for what in ("head", "cardiothoracic"):
        for cid, limits in card[what].items():
            assert limits["source"] and (limits["low"] is not None or limits["high"] is not None), cid


def test_bad_input_is_refused_clearly(session):
    with pytest.raises(BadInputError):
        session.quality(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(BadInputError, match="what must be one of"):
        session.quality(BUNDLED_DIR / "phantom_fetal_thorax.png", "abdomen")
    with pytest.raises(BadInputError, match="pixel_size_mm"):
        session.quality(BUNDLED_DIR / "phantom_fetal_thorax.png", "auto", pixel_size_mm=50)


def test_analysis_carries_the_checklist(session):
    analysis = session.analyse(BUNDLED_DIR / "phantom_fetal_thorax.png", quality=True)
    assert analysis.quality["what"] == "cardiothoracic"
    assert analysis.to_dict()["quality"]["score"] == analysis.quality["score"]
    row = analysis.to_row()
    assert row["quality_score"] == analysis.quality["score"] and row["quality_grade"] == analysis.quality["grade"]
    assert "quality_score" not in session.analyse(BUNDLED_DIR / "phantom_fetal_thorax.png").to_row()


def test_real_head_and_thorax_images(session, shared_data):
    head = session.quality(shared_data / "hc18" / "training_set" / "002_HC.png", "head")
    assert head.criterion("head_in_view").passed and head.criterion("midline_falx").passed
    assert head.criterion("head_size").value > 0.05
    focus = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    thorax = session.quality(focus)
    assert thorax.what == "cardiothoracic" and thorax.criterion("heart_found").passed
    assert thorax.grade in ("standard", "acceptable")


def test_html_and_pdf_reports_show_the_checklist(session):
    """The report files carry the checklist the record holds: every criterion with pass/FAIL, the measured value
    and the advice of each failed one (a darkened copy, so at least one criterion fails)."""
    pypdf = pytest.importorskip("pypdf")
    import io

    image = load_image(BUNDLED_DIR / "phantom_fetal_thorax.png")
    dark = png_bytes(degrade.darken(image.pixels))
    analysis = session.analyse(dark, name="dark-thorax.png", quality=True)
    record = analysis.quality
    assert record["assessed"] and any(not c["passed"] for c in record["criteria"])
    html = analysis.to_html()
    assert "Acquisition checklist" in html and f"score {record['score']} / 100, grade {record['grade']}" in html
    pdf = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(analysis.to_pdf())).pages).split())
    assert "Acquisition checklist" in pdf and f"grade {record['grade']}" in pdf
    for c in record["criteria"]:
        assert c["label"] in html
        if not c["passed"]:
            assert c["advice"] in html
            assert " ".join(c["advice"].split()[:4]) in pdf
    assert html.count("&#10007; FAIL") == sum(c["passed"] is False for c in record["criteria"])
    not_assessed = session.analyse(BUNDLED_DIR / "phantom_other.png", quality=True)
    assert html_escape(not_assessed.quality["reason"]) in not_assessed.to_html()  # why it has no score


def test_ellipse_fit_compares_the_mask_with_its_own_fit_not_the_measured_ellipse():
    """The measured ellipse may be averaged over views and crops; ellipse_fit judges the segmentation's own
    shape, so it uses the ellipse fitted to the mask alone when one is given (pure criterion maths)."""
    import cv2
    import numpy as np

    from fetalscope.biometry.ellipse import Ellipse
    from fetalscope.pipeline.quality import Judged, judge

    h, w = 200, 300
    rgb, sector = np.full((h, w, 3), 60, np.uint8), np.ones((h, w), bool)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (150, 100), (70, 50), 0, 0, 360, 1, -1)
    own = Ellipse(150.0, 100.0, 70.0, 50.0, 0.0)
    measured = Ellipse(156.0, 100.0, 66.0, 50.0, 0.0)  # e.g. the mean of views: a little off this mask

    def fit(**extra) -> Criterion:
        j = Judged(rgb, sector, {"Fetal brain": 0.9}, {"head": mask.astype(bool)}, {"head": measured}, **extra)
        return next(c for c in judge("head", j) if c.id == "ellipse_fit")

    assert fit(mask_fits={"head": own}).value > 0.97
    assert fit().value < fit(mask_fits={"head": own}).value - 0.05  # without: the measured ellipse


def test_in_view_fails_a_head_cut_by_the_frame_although_its_ellipse_fits_inside():
    """A skull segmented only up to the frame's edge, with an ellipse fitted to the visible part (inside the
    image): head_in_view fails; the same outline away from the frame passes (pure criterion maths)."""
    import cv2
    import numpy as np

    from fetalscope.biometry.ellipse import Ellipse
    from fetalscope.pipeline.quality import Judged, judge

    h, w = 200, 300
    rgb, sector = np.full((h, w, 3), 60, np.uint8), np.ones((h, w), bool)

    def in_view(cx: int) -> Criterion:
        mask = np.zeros((h, w), np.uint8)
        cv2.circle(mask, (cx, 100), 60, 1, -1)
        visible = Ellipse(max(cx, 30.0), 100.0, 30.0 if cx == 0 else 60.0, 60.0, 0.0)  # fitted to what is seen
        j = Judged(rgb, sector, {"Fetal brain": 0.9}, {"head": mask.astype(bool)}, {"head": visible})
        return next(c for c in judge("head", j) if c.id == "head_in_view")

    inside, cut = in_view(150), in_view(0)
    assert inside.passed and inside.value == 1.0
    assert cut.passed is False and cut.value < 0.8 and cut.advice and 0 <= cut.compliance < 1
