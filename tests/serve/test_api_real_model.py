"""The HTTP API with its bundled models on real images (no browser)."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
from PIL import Image


def _dicom_with_spacing(pixels: np.ndarray, spacing_mm: float) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelSpacing = [f"{spacing_mm:.10g}", f"{spacing_mm:.10g}"]
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_measure_reads_the_dicom_pixel_spacing_and_says_so(real_server, shared_data):
    with open(shared_data / "hc18" / "labels.csv", newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    pixels = np.asarray(Image.open(shared_data / "hc18" / row["filename"]).convert("L"))
    spacing, reference_hc = float(row["pixel_size_mm"]), float(row["head_circumference_mm"])
    body = _dicom_with_spacing(pixels, spacing)

    rec = httpx.post(real_server + "/v1/measure", files={"file": ("head.dcm", body)}, data={"what": "head"},
                     timeout=120).json()
    assert rec["pixel_size_source"] == "dicom" and abs(rec["pixel_size_mm"] - spacing) < 1e-6
    assert abs(rec["hc_mm"] - reference_hc) < 0.05 * reference_hc  # the measurement itself, in mm

    given = httpx.post(real_server + "/v1/measure", files={"file": ("head.dcm", body)},
                       data={"what": "head", "pixel_size_mm": str(2 * spacing)}, timeout=120).json()
    assert given["pixel_size_source"] == "argument"
    assert abs(given["hc_mm"] - 2 * rec["hc_mm"]) < 0.01 * rec["hc_mm"]
    assert any(f.startswith("pixel_size_overrides_dicom") for f in given["flags"])
