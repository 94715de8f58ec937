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
    assert abs(rec["hc_mm"] - reference_hc) < 0.05 * reference_hc  # the measurement itself, in mm

    given = httpx.post(real_server + "/v1/measure", files={"file": ("head.dcm", body)},
                       data={"what": "head", "pixel_size_mm": str(2 * spacing)}, timeout=120).json()
    assert given["pixel_size_source"] == "argument"
    assert abs(given["hc_mm"] - 2 * rec["hc_mm"]) < 0.01 * rec["hc_mm"]
    assert any(f.startswith("pixel_size_overrides_dicom") for f in given["flags"])
