"""The HTTP API with its bundled models on real images (no browser)."""

from __future__ import annotations

import csv

import httpx
import numpy as np
from PIL import Image

from .test_hostile_inputs import _dicom


def test_measure_reads_the_dicom_pixel_spacing_and_says_so(real_server, shared_data):
    with open(shared_data / "hc18" / "labels.csv", newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    pixels = np.asarray(Image.open(shared_data / "hc18" / row["filename"]).convert("L"))
    spacing, reference_hc = float(row["pixel_size_mm"]), float(row["head_circumference_mm"])
    body = _dicom(pixels, spacing_mm=spacing)

    rec = httpx.post(real_server + "/v1/measure", files={"file": ("head.dcm", body)}, data={"what": "head"},
                     timeout=120).json()
    assert rec["pixel_size_source"] == "dicom" and abs(rec["pixel_size_mm"] - spacing) < 1e-6
    # the measurement itself, in mm (this 44 mm head is one of HC18's smallest: 10%, where a wrong spacing is 2x off)
    assert abs(rec["hc_mm"] - reference_hc) < 0.10 * reference_hc
    low, high = rec["hc_interval_mm"]  # the shipped card's calibrated 90% interval, around the measurement
    assert low < rec["hc_mm"] < high and rec["hc_interval_coverage"] == 0.9

    given = httpx.post(real_server + "/v1/measure", files={"file": ("head.dcm", body)},
                       data={"what": "head", "pixel_size_mm": str(2 * spacing)}, timeout=120).json()
    assert given["pixel_size_source"] == "argument"
    assert abs(given["hc_mm"] - 2 * rec["hc_mm"]) < 0.01 * rec["hc_mm"]
    assert any(f.startswith("pixel_size_overrides_dicom") for f in given["flags"])


def _explain(url: str, image, **form) -> httpx.Response:
    return httpx.post(url + "/v1/explain", files={"file": (image.name, image.read_bytes())}, data=form, timeout=120)


def _resized(m: np.ndarray, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A map on a common grid, scaled to [0, 1] (the two models see inputs of different sizes)."""
    img = Image.fromarray(np.asarray(m, dtype=np.float32)).resize(shape[::-1], Image.BILINEAR)
    a = np.asarray(img, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min() + 1e-12)


def test_explain_brain_findings_model_on_a_real_brain_image(real_server, real_brain_image):
    from urllib.parse import unquote

    from fetalscope.models.bundle import read_card

    card = read_card("brain-normal-abnormal-demo")
    findings = httpx.post(real_server + "/v1/predict", files={"file": (real_brain_image.name,
                                                                       real_brain_image.read_bytes())},
                          timeout=120).json()["brain_findings"]
    r = _explain(real_server, real_brain_image, model="brain_findings", format="json")
    assert r.status_code == 200, r.text
    e = r.json()
    # the findings model's own predicted class, with the card's caution verbatim and no off-label note
    assert e["explains"] == "brain_findings" and e["model"]["id"] == card["name"]
    assert e["target_label"] == findings["label"] and e["target"] == card["classes"].index(findings["label"])
    assert e["status"] == card["status"] and e["warning"] == card["warning"] and e["note"] is None
    fmap = np.asarray(e["map"], dtype=np.float32)
    assert fmap.shape == tuple(card["preprocess"]["input_size"]) and np.isfinite(fmap).all() and fmap.max() > 0

    p = _explain(real_server, real_brain_image, format="json").json()  # default: the plane model, as before
    assert p["explains"] == "plane" and p["model"]["id"] == "sononet-planes" and p["target_label"] == "Fetal brain"
    assert "warning" not in p and "note" not in p
    pmap = np.asarray(p["map"], dtype=np.float32)
    assert pmap.shape != fmap.shape or not np.allclose(pmap, fmap)
    assert np.abs(_resized(pmap) - _resized(fmap)).mean() > 0.05  # another model, another map

    png = _explain(real_server, real_brain_image, model="brain_findings")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["x-explain-model"] == card["name"] and png.headers["x-explain-target"] == findings["label"]
    assert unquote(png.headers["x-explain-warning"]) == card["warning"]

    # a thorax image: allowed, but the answer says the findings model is not meant for it
    thorax = sorted((real_brain_image.parents[2] / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    t = _explain(real_server, thorax, model="brain_findings", format="json", method="gradcam++")
    assert t.status_code == 200, t.text
    note = t.json()["note"]
    assert "meant for fetal brain" in note and "not 'Fetal brain'" in note
