"""``POST /v1/report``: the analysis of ``/v1/predict`` as a PDF, over real HTTP against the session's server."""

from __future__ import annotations

import io

import pytest

pypdf = pytest.importorskip("pypdf")


def _post(client, route: str, data: bytes, name: str = "image.png", **form):
    return client.post(route, files={"file": (name, data, "application/octet-stream")}, data=form)


def pdf_text(data: bytes) -> tuple[str, pypdf.PdfReader]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split()), reader


def test_report_is_the_predicted_analysis_as_a_pdf(client, phantom_png):
    form = {"measure": "head", "pixel_size_mm": "0.1", "explain": "gradcam"}
    record = _post(client, "/v1/predict", phantom_png, "brain scan.png", **form).json()
    r = _post(client, "/v1/report", phantom_png, "brain scan.png", **form)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert "fetalscope-report-brain%20scan.pdf" in r.headers["content-disposition"]
    text, reader = pdf_text(r.content)
    assert all(p.mediabox.width == pytest.approx(595.28, abs=0.5) for p in reader.pages)
    assert f"Predicted plane: {record['plane']} ({100 * record['plane_probability']:.1f}%)" in text
    for c in record["probabilities"]:
        shown = "not covered by this model" if c["probability"] is None else f"{100 * c['probability']:.1f}%"
        assert f"{c['label']} {shown}" in text
    m = record["measurement"]
    assert m["measurement"] == "head" and "Measurement: head" in text
    for key, label in (("hc_mm", "HC (mm)"), ("bpd_mm", "BPD (mm)")):
        assert f"{label} {'n/a' if m[key] is None else format(m[key], '.1f')}" in text
    assert "Grad-CAM of tiny-planes" in text and "brain scan.png" in text and "tiny-planes v0.0.1" in text


def test_report_refuses_a_corrupt_file_and_bad_fields(client, phantom_png):
    r = _post(client, "/v1/report", phantom_png[:200], "broken.png")
    assert r.status_code == 400 and r.headers["content-type"] == "application/json" and r.json()["detail"]
    r = _post(client, "/v1/report", phantom_png, detect="maybe")
    assert r.status_code == 400 and "detect must be" in r.json()["detail"]


def test_report_is_documented_as_a_pdf(client):
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/v1/report"]["post"]
    assert "application/pdf" in answer["responses"]["200"]["content"]
    assert answer["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorRecord")
    body = answer["requestBody"]["content"]["multipart/form-data"]["schema"]
    body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]] if "$ref" in body else body
    predict = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    predict = schema["components"]["schemas"][predict["$ref"].rsplit("/", 1)[-1]] if "$ref" in predict else predict
    # the report takes predict's fields, less `format` (predict's DICOM SR answer; the report is the PDF)
    assert set(body["properties"]) == set(predict["properties"]) - {"format"} >= {"file", "detect", "measure",
                                                                                  "pixel_size_mm", "explain"}
