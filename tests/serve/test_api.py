"""The HTTP API over real HTTP against the session's server (tiny model bundle with an ONNX twin)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from fetalscope.data.labels import PLANE_CLASSES


def _post(client, route: str, data: bytes, name: str = "image.png", **form):
    return client.post(route, files={"file": (name, data, "application/octet-stream")}, data=form)


def test_healthz_and_models(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["model"] == "tiny-planes"
    models = client.get("/v1/models").json()
    plane = models["loaded"]["plane"]
    assert plane["id"] == "tiny-planes" and plane["version"] == "0.0.1"
    assert plane["runtime"] == "onnx"  # the bundle has model.onnx, so ONNX Runtime serves it (the --runtime name)
    assert plane["card"]["classes_not_covered"] == ["Maternal cervix"]
    assert models["loaded"]["detector"]["available"] is False


def test_predict_returns_the_analysis_record(client, phantom_png, tiny_bundle):
    r = _post(client, "/v1/predict", phantom_png, "brain.png")
    assert r.status_code == 200, r.text
    a = r.json()
    # every class of the label space, in order, with None for the class the model does not cover
    assert [c["label"] for c in a["probabilities"]] == list(PLANE_CLASSES)
    probs = {c["label"]: c["probability"] for c in a["probabilities"]}
    assert probs["Maternal cervix"] is None
    covered = [p for p in probs.values() if p is not None]
    assert abs(sum(covered) - 1.0) < 1e-4
    assert a["plane"] == max((p, k) for k, p in probs.items() if p is not None)[1]
    assert a["plane_probability"] == pytest.approx(max(covered), abs=1e-6)
    assert a["model"]["id"] == "tiny-planes" and a["model"]["version"] == "0.0.1"
    assert a["image"] == "brain.png" and (a["width"], a["height"]) == (256, 208)
    assert a["ood"]["flag"] is False and set(a["ood"]) >= {"flag", "score", "reasons"}
    assert "brain_plane" in a and "uncertain" in a and "warnings" in a

    # the same answer as the pipeline gives in-process for the same bytes
    from fetalscope.pipeline.analyser import Analyser

    local = Analyser(tiny_bundle, runtime="onnx").analyse(phantom_png, name="brain.png").to_dict()
    assert local["plane"] == a["plane"]
    for mine, theirs in zip(local["probabilities"], a["probabilities"], strict=True):
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-5)


def test_predict_flags_a_photo_as_not_ultrasound(client):
    from skimage import data

    photo = np.ascontiguousarray(data.chelsea())
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=90)
    a = _post(client, "/v1/predict", buf.getvalue(), "cat.jpg").json()
    assert a["ood"]["flag"] is True
    assert any("does not look like B-mode ultrasound" in w for w in a["warnings"])


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop", "integrated_gradients", "occlusion", "lime"])
def test_explain_png_overlay(client, phantom_png, method):
    r = _post(client, "/v1/explain", phantom_png, method=method)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    overlay = np.asarray(Image.open(io.BytesIO(r.content)))
    # drawn on the region the model saw (the sector crop of the 256 x 208 image), not at the 64 px input
    assert overlay.ndim == 3 and overlay.shape[2] == 3 and 100 < max(overlay.shape[:2]) <= 256
    assert r.headers["x-explain-method"] == method
    assert float(r.headers["x-explain-seconds"]) > 0
    # a heat map changes the grey input: some pixels are now coloured
    assert (overlay.max(axis=2).astype(int) - overlay.min(axis=2)).max() > 30


def test_explain_json_map_and_target(client, phantom_png):
    r = _post(client, "/v1/explain", phantom_png, method="ig", target="Fetal femur", format="json")
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["method"] == "integrated_gradients" and e["target_label"] == "Fetal femur" and e["target"] == 2
    m = np.asarray(e["map"], dtype=np.float32)
    assert m.shape == (64, 64) and np.isfinite(m).all() and np.abs(m).max() > 0
    assert e["signed"] is True and "n_steps" in e["params"]


def test_explain_rejects_bad_method_and_targets(client, phantom_png):
    r = _post(client, "/v1/explain", phantom_png, method="gradcma")
    assert r.status_code == 400 and "gradcam" in r.json()["detail"]  # suggests the right name
    r = _post(client, "/v1/explain", phantom_png, target="Fetal heart")
    assert r.status_code == 400 and "Fetal brain" in r.json()["detail"]
    r = _post(client, "/v1/explain", phantom_png, target="Maternal cervix")
    assert r.status_code == 422 and "does not cover" in r.json()["detail"]
    r = _post(client, "/v1/explain", phantom_png, target="9")
    assert r.status_code == 400 and "out of range" in r.json()["detail"]


def test_explain_findings_model_validates_its_fields(client, phantom_png):
    from fetalscope.models.bundle import read_card

    card = read_card("brain-normal-abnormal-demo")
    r = _post(client, "/v1/explain", phantom_png, model="findings")
    assert r.status_code == 400 and "plane, brain_findings" in r.json()["detail"]
    r = _post(client, "/v1/explain", phantom_png, model="brain_findings", target="Fetal brain")  # a plane class
    assert r.status_code == 400 and "abnormal, normal" in r.json()["detail"]
    r = _post(client, "/v1/explain", phantom_png, model="brain_findings", target="2")
    assert r.status_code == 400 and "out of range" in r.json()["detail"]
    r = _post(client, "/v1/explain", phantom_png, model="brain_findings", target="abnormal", format="json")
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["explains"] == "brain_findings" and e["target_label"] == "abnormal" and e["target"] == 0
    assert e["model"]["id"] == card["name"] and e["warning"] == card["warning"] and e["status"] == card["status"]
    plane = _post(client, "/v1/predict", phantom_png).json()["plane"]  # the tiny model's call on the phantom
    assert (e["note"] is None) == (plane == "Fetal brain")
    assert e["note"] is None or f"'{plane}'" in e["note"]


def test_detect_without_detector_is_503(client, phantom_png):
    r = _post(client, "/v1/detect", phantom_png)
    assert r.status_code == 503
    assert "detector" in r.json()["detail"]


def test_measure_validates_and_answers(client, phantom_png):
    r = _post(client, "/v1/measure", phantom_png, what="abdomen")
    assert r.status_code == 422  # not one of head / cardiothoracic
    r = _post(client, "/v1/measure", phantom_png, what="head", pixel_size_mm="0.1")
    # 200 with a record when biometry is installed, 503 naming what is missing otherwise; never a crash
    assert r.status_code in (200, 400, 422, 503), r.text
    assert r.status_code != 200 or r.json().get("image") == "image.png"


def test_openapi_schema_and_offline_docs(client):
    schema = client.get("/openapi.json").json()
    for route in ("/v1/predict", "/v1/explain", "/v1/detect", "/v1/measure", "/v1/models", "/healthz"):
        assert route in schema["paths"], route
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    # the answers are documented as schemas (the record of each route, and the errors)
    answers = {route: schema["paths"][route]["post"]["responses"] for route in
               ("/v1/predict", "/v1/explain", "/v1/detect", "/v1/measure")}
    for route, name in (("/v1/predict", "AnalysisRecord"), ("/v1/explain", "ExplanationRecord"),
                        ("/v1/detect", "DetectionRecord"), ("/v1/measure", "MeasurementRecord")):
        assert answers[route]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(name), route
        for status in ("400", "413", "503"):
            assert answers[route][status]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorRecord")
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/_docs_static/{asset}" in docs.text
        assert client.get(f"/_docs_static/{asset}").status_code == 200


def test_ui_root_is_the_gradio_app(client):
    r = client.get("/")
    assert r.status_code == 200 and "<html" in r.text.lower()
    config = client.get("/config").json()
    text = json.dumps(config)
    assert "fetalscope" in text and "Model performance" in text
    assert "fonts.googleapis" not in r.text and "fonts.googleapis" not in text


def test_predict_has_the_brain_findings_field(client, phantom_png):
    from fetalscope.models.bundle import read_card

    a = _post(client, "/v1/predict", phantom_png, "brain.png").json()
    assert "brain_findings" in a and "brain_findings_skipped" in a
    if a["plane"] == "Fetal brain":  # routed like the brain sub-plane
        assert a["brain_findings"]["model"]["id"] == "brain-normal-abnormal-demo"
    else:
        assert a["brain_findings"] is None and f"'{a['plane']}'" in a["brain_findings_skipped"]
    loaded = client.get("/v1/models").json()["loaded"]["brain_findings"]
    card = read_card("brain-normal-abnormal-demo")
    assert loaded["available"] is True and loaded["id"] == card["name"]
    assert loaded["status"] == card["status"] and loaded["card"]["warning"] == card["warning"]


def test_real_brain_image_gets_findings_over_http(real_server, real_brain_image):
    import httpx

    from fetalscope.models.bundle import read_card

    card = read_card("brain-normal-abnormal-demo")
    r = httpx.post(real_server + "/v1/predict", files={"file": (real_brain_image.name, real_brain_image.read_bytes())},
                   timeout=120)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["plane"] == "Fetal brain" and a["brain_findings_skipped"] is None
    f = a["brain_findings"]
    probs = {p["label"]: p["probability"] for p in f["probabilities"]}
    assert list(probs) == card["classes"] and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert f["label"] == max(probs, key=probs.get) and f["probability"] == probs[f["label"]]
    assert f["status"] == card["status"] and f["warning"] == card["warning"]  # verbatim from the card
    assert f["model"]["id"] == "brain-normal-abnormal-demo" and f["model"]["version"] == str(card["version"])
    assert any(card["warning"] in w for w in a["warnings"])
    thorax = sorted((real_brain_image.parents[2] / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    b = httpx.post(real_server + "/v1/predict", files={"file": (thorax.name, thorax.read_bytes())}, timeout=120).json()
    assert b["plane"] == "Fetal thorax" and b["brain_findings"] is None
    assert "not 'Fetal brain'" in b["brain_findings_skipped"]


def test_predict_on_request_carries_detections_measurement_and_explanations(client, phantom_png):
    """One door: /v1/predict fills the Analysis's detections, measurement and explanations when asked,
    says why when they did not run, and applies the same input rules as /v1/measure."""
    r = _post(client, "/v1/predict", phantom_png, "brain.png", detect="auto", measure="auto",
              explain="gradcam,gradcam++")
    assert r.status_code == 200, r.text
    a = r.json()
    assert "findings" not in a and a["fetalscope_version"]
    assert a["detections"] is None  # this server loads no detector
    if a["plane"] == "Fetal brain" and not a["ood"]["flag"]:
        assert "detector" in a["detections_skipped"]
    else:
        assert a["detections_skipped"]  # not a brain, or not ultrasound
    if a["measurement"] is not None:  # routed by the plane call or, when it is unsure, by the segmentations
        route = a["measurement"]["route"]
        assert a["measurement"]["measurement"] == route["what"] and a["measurement_skipped"] is None
        assert route["plane"] == a["plane"] and not a["ood"]["flag"]
        if route["by"] == "plane":
            assert route["what"] == {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}[a["plane"]]
    else:
        assert a["measurement_skipped"]
    assert [e["method"] for e in a["explanations"]] == ["gradcam", "gradcam++"]
    for e in a["explanations"]:
        assert e["target_label"] == e["target_class"] == a["plane"] and e["model"]["id"] == "tiny-planes"
        assert "map" not in e  # records, not maps
    plain = _post(client, "/v1/predict", phantom_png, "brain.png").json()
    assert plain["detections"] is None and plain["measurement"] is None and plain["explanations"] == []
    assert plain["probabilities"] == a["probabilities"]  # asking for more does not change the plane
    # the same rules as the other routes
    assert _post(client, "/v1/predict", phantom_png, detect="yes").status_code == 503  # no detector loaded
    r = _post(client, "/v1/predict", phantom_png, detect="maybe")
    assert r.status_code == 400 and "detect must be" in r.json()["detail"]
    r = _post(client, "/v1/predict", phantom_png, measure="head", pixel_size_mm="50")
    assert r.status_code == 400 and "pixel_size_mm" in r.json()["detail"]
    r = _post(client, "/v1/measure", phantom_png, what="head", pixel_size_mm="50")
    assert r.status_code == 400 and "pixel_size_mm" in r.json()["detail"]  # one rule, both routes
    r = _post(client, "/v1/predict", phantom_png, explain="gradcam,limee")
    assert r.status_code == 400 and "limee" in r.json()["detail"]


def test_measure_auto_routes_by_plane(client, phantom_png):
    a = _post(client, "/v1/predict", phantom_png).json()
    r = _post(client, "/v1/measure", phantom_png, what="auto", pixel_size_mm="0.1")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["plane"] == a["plane"] and m["plane_probability"] == pytest.approx(a["plane_probability"], abs=1e-6)
    route = m["route"]  # which evidence chose: the plane call, or the segmentations when the call is unsure
    assert route["plane"] == a["plane"] and route["by"] in ("plane", "segmentation") and route["asked"] == "auto"
    assert m["measurement"] == route["what"]
    if route["by"] == "plane" and a["plane_probability"] >= 0.5:
        assert m["measurement"] == {"Fetal brain": "head", "Fetal thorax": "cardiothoracic"}.get(a["plane"])
    if m["measurement"] is None:
        assert m["quality"] == "not_measured" and a["plane"] in m["flags"][0]
    # asked for by name on an image the route sends elsewhere: made, and rejected with the route's reason
    for what in ("head", "cardiothoracic"):
        forced = _post(client, "/v1/measure", phantom_png, what=what, pixel_size_mm="0.1").json()
        assert forced["measurement"] == what and forced["route"]["asked"] == what
        if route["what"] != what:
            assert forced["quality"] == "rejected" and forced["flags"][0].startswith(("not_head_plane",
                                                                                     "not_thorax_plane"))


def test_measure_rejects_a_forced_head_on_a_colour_photo(client):
    from skimage import data

    from fetalscope.explain.overlay import png_bytes

    m = _post(client, "/v1/measure", png_bytes(data.astronaut()), "photo.png", what="head",
              pixel_size_mm="0.1").json()
    assert m["quality"] == "rejected" and m["hc_mm"] is None and m["route"]["by"] == "ood"
    auto = _post(client, "/v1/measure", png_bytes(data.astronaut()), "photo.png", what="auto").json()
    assert auto["measurement"] is None and auto["quality"] == "not_measured"


def test_documented_records_are_the_records_the_routes_return(client, phantom_png):
    """The OpenAPI schemas name exactly the fields the routes return (so /docs cannot drift from the code)."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    analysis = _post(client, "/v1/predict", phantom_png, explain="gradcam").json()
    assert set(schemas["AnalysisRecord"]["properties"]) == set(analysis)
    assert set(schemas["AnalysisRecord"]["required"]) <= set(analysis)
    explanation = analysis["explanations"][0]
    documented = set(schemas["ExplanationRecord"]["properties"])
    assert documented <= set(explanation) | {"to_original"} and "target_label" in documented
    error = _post(client, "/v1/predict", b"not an image").json()
    assert set(error) == set(schemas["ErrorRecord"]["properties"]) == {"detail"}
    measured = _post(client, "/v1/measure", phantom_png, what="auto").json()
    assert set(schemas["MeasurementRecord"]["required"]) <= set(measured)
