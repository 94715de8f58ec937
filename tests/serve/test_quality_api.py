"""`POST /v1/quality` on the running test server (tiny plane model, no detector): the record, its documented
schema, and clear errors."""

from __future__ import annotations


def _post(client, data: bytes, **fields):
    return client.post("/v1/quality", files={"file": ("scan.png", data, "image/png")},
                       data={k: str(v) for k, v in fields.items()})


def test_quality_route_returns_the_checklist(client, phantom_png):
    r = _post(client, phantom_png, what="head", pixel_size_mm=0.1)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["image"] == "scan.png" and record["what"] == "head" and record["assessed"] is True
    ids = [c["id"] for c in record["criteria"]]
    assert ids[:3] == ["plane_confidence", "head_size", "head_in_view"] and ids[-2:] == ["gain", "sharpness"]
    # the test server runs without a detector: the structure criteria say so and do not count
    falx = next(c for c in record["criteria"] if c["id"] == "midline_falx")
    assert falx["passed"] is None and "detector" in falx["label"]
    assert 0 <= record["score"] <= 100 and record["grade"] in ("standard", "acceptable", "not standard")
    assert set(record["ellipses"]) == {"head"} and record["model"]["segmentation"]["id"] == "hc18-head"


def test_quality_schema_is_documented(client, phantom_png):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    record = _post(client, phantom_png, what="cardiothoracic").json()
    assert set(schemas["QualityRecord"]["properties"]) == set(record)
    assert set(schemas["CriterionRecord"]["properties"]) == set(record["criteria"][0])
    answer = client.get("/openapi.json").json()["paths"]["/v1/quality"]["post"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("QualityRecord")


def test_quality_route_errors(client, phantom_png):
    r = _post(client, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert r.status_code == 400 and r.json()["detail"]
    assert _post(client, phantom_png, what="femur").status_code == 422
    r = _post(client, phantom_png, what="head", pixel_size_mm=50)
    assert r.status_code == 400 and "pixel_size_mm" in r.json()["detail"]
