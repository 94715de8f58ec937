"""Hostile and odd inputs over real HTTP: each gets a clear 4xx (or a correct answer when it is a valid
image) and the server keeps serving; patient data and file names never reach responses or logs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

MAX_UPLOAD_MB = 2  # the session server's limits (tests/serve/conftest.py)
MAX_PIXELS = 4_000_000


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-7741-SECRET"
SECRET_FILENAME = "jane-doe-scan-0042.dcm"


def _dicom(pixels: np.ndarray | None, frames: int = 1, spacing_mm: float | None = None) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19870412"
    ds.InstitutionName = "Secret Hospital"
    ds.Modality = "US"
    if pixels is not None:
        stack = np.stack([pixels] * frames) if frames > 1 else pixels
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        if frames > 1:
            ds.NumberOfFrames = frames
        if spacing_mm is not None:
            ds.PixelSpacing = [f"{spacing_mm:.10g}", f"{spacing_mm:.10g}"]
        ds.PixelData = np.ascontiguousarray(stack, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims ``width x height`` (CRC fixed), like a decompression bomb."""
    data = bytearray(png_bytes(np.zeros((8, 8), np.uint8)))
    ihdr = 8 + 8  # signature + length/type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    from fetalscope.data.phantoms import make_phantom

    return make_phantom("Fetal brain", np.random.default_rng(3), (96, 128))


def _post(client, data: bytes, name: str = "x.png", route: str = "/v1/predict", **form):
    return client.post(route, files={"file": (name, data, "application/octet-stream")}, data=form)


def bad_inputs(grey: np.ndarray) -> dict[str, tuple[bytes, int, str]]:
    """name -> (bytes, expected status, a word the message must contain)."""
    good = png_bytes(grey)
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, format="JPEG")
    corrupt_jpeg = jpeg.getvalue()[:200] + bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    huge = png_bytes(np.zeros((2100, 2100), np.uint8))  # 4.4 MP in a few kB
    assert len(huge) < MAX_UPLOAD_MB * 2**20 and MAX_PIXELS < 2100 * 2100
    return {
        "text": (b"this is not an image\n" * 20, 400, "not a readable image"),
        "empty": (b"", 400, "empty"),
        "truncated_png": (good[: len(good) // 2], 400, "truncated"),
        "corrupt_jpeg": (corrupt_jpeg, 400, "corrupt"),
        "header_bomb": (_png_with_header_size(60000, 60000), 413, "pixels"),
        "huge_dimensions": (huge, 413, "limit"),
        "tiny_1x1": (png_bytes(np.zeros((1, 1), np.uint8)), 400, "at least"),
        "dicom_without_pixels": (_dicom(None), 400, "no pixel data"),
        "svg": (b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='10' height='10'/></svg>", 400, "readable"),
        "zip": (b"PK\x03\x04" + b"\x00" * 200, 400, "readable"),
    }


def test_bad_inputs_get_clear_4xx_and_server_keeps_serving(client, server, grey):
    for name, (data, status, word) in bad_inputs(grey).items():
        r = _post(client, data, f"{name}.png")
        assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
        detail = r.json()["detail"]
        assert word.lower() in detail.lower(), f"{name}: {detail}"
        assert "Traceback" not in detail
    assert client.get("/healthz").status_code == 200
    assert _post(client, png_bytes(grey)).status_code == 200
    assert server.process.poll() is None


def test_oversized_uploads_are_refused_before_reading(client, server):
    big = bytes(np.random.default_rng(1).integers(0, 256, (MAX_UPLOAD_MB + 1) * 2**20, dtype=np.uint8))
    r = _post(client, big, "big.png")
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # a valid multipart body without Content-Length: the limit is enforced while streaming
        yield (b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
               b"Content-Type: application/octet-stream\r\n\r\n")
        for _ in range(MAX_UPLOAD_MB + 2):
            yield b"x" * 2**20
        yield b"\r\n--zz--\r\n"

    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 413
    assert client.get("/healthz").status_code == 200


def test_odd_but_valid_images_are_analysed(client, grey):
    g16 = (grey.astype(np.uint16) * 257)
    buf16 = io.BytesIO()
    Image.fromarray(g16).save(buf16, format="PNG")
    palette = Image.fromarray(grey).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pbuf = io.BytesIO()
    palette.save(pbuf, format="PNG")
    import tifffile

    tbuf = io.BytesIO()
    tifffile.imwrite(tbuf, g16)
    rgba = np.dstack([np.repeat(grey[..., None], 3, 2), np.full(grey.shape, 255, np.uint8)])
    reference = _post(client, png_bytes(grey)).json()
    for name, data in {"16bit.png": buf16.getvalue(), "palette.png": pbuf.getvalue(), "16bit.tif": tbuf.getvalue(),
                       "rgba.png": png_bytes(rgba)}.items():
        r = _post(client, data, name)
        assert r.status_code == 200, f"{name}: {r.text}"
        a = r.json()
        assert (a["width"], a["height"]) == (128, 96)
        assert a["plane"] == reference["plane"], name  # same pixels, same answer
        assert a["plane_probability"] == pytest.approx(reference["plane_probability"], abs=0.02), name


def test_dicom_frames_and_patient_data_never_leak(client, server, grey):
    data = _dicom(grey, frames=3)
    r = _post(client, data, SECRET_FILENAME, frame="2")
    assert r.status_code == 200, r.text
    text = r.text
    for secret in (PATIENT_NAME, "Doe", PATIENT_ID, "19870412", "Secret Hospital"):
        assert secret not in text
    r = _post(client, data, SECRET_FILENAME, frame="7")
    assert r.status_code == 400 and "3 frame" in r.json()["detail"]
    r = _post(client, data, SECRET_FILENAME, frame="-1")
    assert r.status_code == 400
    log = server.log_text()
    assert "POST /v1/predict 200" in log  # requests are logged ...
    for secret in (PATIENT_NAME, "Doe", PATIENT_ID, "Secret Hospital", SECRET_FILENAME, "jane"):
        assert secret not in log  # ... but never patient fields or file names


def test_malformed_requests(client, grey):
    assert client.post("/v1/predict").status_code == 422  # no body
    r = client.post("/v1/predict", files={"image": ("a.png", png_bytes(grey))})  # wrong field name
    assert r.status_code == 422 and "file" in r.text
    assert client.post("/v1/predict", json={"file": "a.png"}).status_code == 422
    assert client.get("/v1/predict").status_code in (404, 405)  # the UI mounted at / answers GETs
    r = _post(client, png_bytes(grey), "../../etc/passwd.png")
    assert r.status_code == 200 and r.json()["image"] == "passwd.png"


def test_api_uploads_leave_no_files_behind(client, server, grey):
    def files() -> set:
        roots = [server.tmpdir, *server.upload_dirs()]
        return {p for r in roots for p in r.rglob("*")}

    before = files()
    for route in ("/v1/predict", "/v1/explain"):
        assert _post(client, png_bytes(grey), "keep-me-in-memory.png", route=route).status_code == 200
    assert files() == before
