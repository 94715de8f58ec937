"""``create_app`` settings wired end to end, in-process (API only, no UI): token, detector, time limit,
opt-in saving of uploads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from fetalscope.serve import create_app

TINY_DET = dict(min_size=64, max_size=96, width_mult=0.5, fpn_channels=32, representation_size=64,
                anchor_sizes=(16, 32, 64, 128), min_score=0.0)


@pytest.fixture(scope="module")
def detector_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny Faster R-CNN bundle (random weights; threshold 0 so it returns boxes)."""
    from fetalscope.detect.bundle_io import save_detector_bundle
    from fetalscope.detect.torchvision_backend import DetectorConfig, TorchvisionDetector, build_detector

    cfg = DetectorConfig(**TINY_DET)
    torch.manual_seed(0)
    classes = ("MIDLINE_FALX", "CSP", "CHOROID_PLEXUS")
    det = TorchvisionDetector(build_detector(len(classes), cfg, pretrained=False), classes, cfg)
    return save_detector_bundle(det, tmp_path_factory.mktemp("det") / "tiny-det",
                                {"score_threshold": 0.0, "plausibility": {"drop_outside_skull": False}})


def _post(client, route, data, **form):
    return client.post(route, files={"file": ("img.png", data)}, data=form)


def test_token_detector_and_saving(tiny_bundle, detector_bundle, phantom_png, tmp_path):
    saved = tmp_path / "saved"
    app = create_app(plane_model=tiny_bundle, detector=detector_bundle, token="t0ken", ui=False, save_uploads=saved)
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200  # open
    assert client.get("/docs").status_code == 200  # open
    assert client.get("/v1/models").status_code == 401
    assert _post(client, "/v1/predict", phantom_png).status_code == 401
    assert not saved.exists()  # refused requests are not saved either
    auth = {"Authorization": "Bearer t0ken"}
    models = client.get("/v1/models", headers=auth).json()
    assert models["loaded"]["detector"]["available"] is True
    assert models["loaded"]["detector"]["classes"] == ["MIDLINE_FALX", "CSP", "CHOROID_PLEXUS"]
    schema = client.get("/openapi.json").json()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]

    r = client.post("/v1/detect", files={"file": ("img.png", phantom_png)}, headers=auth)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["image"] == "img.png" and (record["width"], record["height"]) == (256, 208)
    assert {"boxes", "plausibility", "score_threshold", "model"} <= set(record)
    for box in record["boxes"]:
        x0, y0, x1, y1 = box["xyxy"]
        assert box["label"] in ("MIDLINE_FALX", "CSP", "CHOROID_PLEXUS") and 0 <= box["score"] <= 1
        assert 0 <= x0 <= x1 <= 256 and 0 <= y0 <= y1 <= 208
    # opt-in saving: exactly the uploaded bytes, under a name that is not the client's
    files = list(saved.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == phantom_png and "img" not in files[0].name


def test_request_time_limit_answers_504(tiny_bundle, phantom_png):
    app = create_app(plane_model=tiny_bundle, detector=None, ui=False, request_timeout_s=0.05)
    client = TestClient(app)
    r = _post(client, "/v1/explain", phantom_png, method="lime")
    assert r.status_code == 504 and "limit" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200
    # the abandoned LIME run goes on in its worker thread, holding its compute slot until it ends
    gate = app.state.gate
    deadline = time.monotonic() + 120
    while gate.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.running == 0


def test_missing_model_bundle_is_a_clear_error(tmp_path):
    from fetalscope.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="no model bundle"):
        create_app(plane_model=tmp_path / "nope", ui=False)


def test_explain_findings_without_the_bundle_is_503(tiny_bundle, phantom_png):
    app = create_app(plane_model=tiny_bundle, detector=None, brain_findings_model="", ui=False)
    client = TestClient(app)
    r = _post(client, "/v1/explain", phantom_png, model="brain_findings")
    assert r.status_code == 503
    assert "brain findings" in r.json()["detail"] and "model=plane" in r.json()["detail"]
    assert client.get("/v1/models").json()["loaded"]["brain_findings"]["available"] is False
    assert _post(client, "/v1/explain", phantom_png).status_code == 200  # the plane model still explains
