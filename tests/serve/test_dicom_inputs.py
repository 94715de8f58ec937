"""DICOM written by others, over HTTP: pydicom's own test files (from the installed wheel, never
downloaded). A CT or MR file is analysed with the "not ultrasound" warning naming its modality and nothing
measured; compressed transfer syntaxes that answered 400 for want of a decoder now answer 200."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
import pytest


def _file(name: str) -> bytes:
    path = pydicom.data.get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom wheel")
    return Path(path).read_bytes()


def _predict(client, name: str, **form):
    return client.post("/v1/predict", files={"file": (name, _file(name), "application/octet-stream")}, data=form)


@pytest.mark.parametrize(("name", "words"), [("CT_small.dcm", "Modality CT (computed tomography)"),
                                             ("MR_small.dcm", "Modality MR (magnetic resonance)")])
def test_other_modalities_are_flagged_and_not_measured(client, name: str, words: str):
    r = _predict(client, name, measure="auto", pixel_size_mm="0.5")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["ood"]["flag"] is True and a["ood"]["reasons"][0] == f"the DICOM says {words}, not ultrasound"
    assert any(w.startswith(f"This image does not look like B-mode ultrasound: the DICOM says {words}")
               and w.endswith("The prediction is meaningless for it.") for w in a["warnings"]), a["warnings"]
    assert a["measurement"] is None and a["measurement_skipped"]


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm",
                                  "JPGExtended.dcm", "SC_rgb_jpeg_gdcm.dcm", "examples_jpeg2k.dcm"])
def test_compressed_transfer_syntaxes_are_decoded(client, name: str):
    r = _predict(client, name)
    assert r.status_code == 200, r.text
