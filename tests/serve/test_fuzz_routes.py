"""Seeded mutation fuzzing of every route that takes an image, over real HTTP to the session's real
server (``tests/serve/conftest.py``); the cases come from ``tests/fuzzing.py``.

Invariant: the status is one of 200, 400, 413, 415, 422, 503 (never a 500), an error answer is JSON
with a ``detail`` message, and the server still answers ``/healthz`` afterwards. A failure names the
case id, which replays it: ``FETALSCOPE_FUZZ_CASES_ONLY=<id> pytest tests/serve/test_fuzz_routes.py``.

Counts per route: ``$FETALSCOPE_FUZZ_HTTP_CASES`` in the default run (40), ``$FETALSCOPE_FUZZ_HTTP_NIGHTLY_CASES``
more under ``-m nightly`` (250, so 1,000 requests over the four routes).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import fuzzing
from fetalscope.data.phantoms import make_phantom

#: route name -> (path, form fields): the defaults a client would send
ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "predict": ("/v1/predict", {}),
    "explain": ("/v1/explain", {"method": "gradcam"}),
    "detect": ("/v1/detect", {}),
    "measure": ("/v1/measure", {"what": "head"}),
    "quality": ("/v1/quality", {"what": "head"}),
}
ALLOWED = {200, 400, 413, 415, 422, 503}
PER_ROUTE = fuzzing.env_count("FETALSCOPE_FUZZ_HTTP_CASES", 40)
NIGHTLY_PER_ROUTE = fuzzing.env_count("FETALSCOPE_FUZZ_HTTP_NIGHTLY_CASES", 250)


def _params() -> list[object]:
    out: list[object] = []
    for i, route in enumerate(ROUTES):  # each route starts elsewhere in the round of (format, mutation) pairs
        out += fuzzing.params(fuzzing.cases(PER_ROUTE, start=2_000_000 + i * PER_ROUTE),
                              fuzzing.cases(NIGHTLY_PER_ROUTE, start=3_000_000 + i * NIGHTLY_PER_ROUTE),
                              pytest.mark.nightly, route=route)
    return out


def _post(client: httpx.Client, route: str, data: bytes, filename: str) -> httpx.Response:
    path, form = ROUTES[route]
    return client.post(path, files={"file": (filename, data, "application/octet-stream")}, data=form)


@pytest.mark.parametrize(("route", "case"), _params())
def test_route_answers_a_clear_status_and_keeps_serving(route: str, case: fuzzing.Case, client: httpx.Client,
                                                        server, fuzz_seeds: dict[str, bytes]) -> None:
    data = fuzzing.mutate(fuzz_seeds, case)
    replay = f"(replay: {fuzzing.CASES_ONLY_ENV}={case.id} pytest {__file__} -k {route})"
    r = _post(client, route, data, case.filename)
    assert r.status_code in ALLOWED, f"{route} {case.id}: HTTP {r.status_code} {r.text[:300]} {replay}"
    if r.status_code != 200:
        detail = r.json().get("detail")
        assert isinstance(detail, str) and detail, f"{route} {case.id}: no detail in {r.text[:300]} {replay}"
        assert "Traceback" not in detail
    elif route == "explain":
        assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG"), f"{route} {case.id}"
    else:
        assert isinstance(r.json(), dict), f"{route} {case.id}"
    health = client.get("/healthz")
    assert health.status_code == 200 and server.process.poll() is None, f"server down after {route} {case.id}"


def test_corrupt_vr_pixel_spacing_dicom_is_400_on_every_route(client: httpx.Client) -> None:
    """The DICOM whose PixelSpacing has an unknown VR (pydicom fails only when the element is read):
    400 naming the element, on every route (detect/measure may answer 503 first when their model is absent,
    as they do for a valid image)."""
    grey = make_phantom("Fetal brain", np.random.default_rng(5), (96, 128))
    bad = fuzzing.corrupt_vr_pixel_spacing_dicom(grey)
    good = fuzzing.dicom_bytes(grey, spacing="0.1\\0.1")
    for route in ROUTES:
        valid = _post(client, route, good, "scan.dcm").status_code
        r = _post(client, route, bad, "scan.dcm")
        expected = {400, 503} if valid == 503 else {400}
        assert r.status_code in expected, f"{route}: HTTP {r.status_code} {r.text[:300]} (valid DICOM: {valid})"
        if r.status_code == 400:
            assert "PixelSpacing" in r.json()["detail"] and "scan.dcm" in r.json()["detail"], r.text
    assert _post(client, "predict", bad, "scan.dcm").status_code == 400
    assert client.get("/healthz").status_code == 200


def _degenerate_images() -> dict[str, bytes]:
    """Files that decode but are odd: the smallest allowed size, extreme strips, flat images, NaN."""
    import io

    import tifffile
    from PIL import Image

    def png(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()

    def tif(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        tifffile.imwrite(buf, arr)
        return buf.getvalue()

    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000), dtype=np.uint8)
    partly_nan = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    partly_nan[:32] = np.nan
    return {
        "8x8.png": png(noise[:8, :8]),
        "8x2000.png": png(noise[:8, :2000]),
        "2000x8.png": png(noise[:2000, :8]),
        "black.png": png(np.zeros((64, 96), np.uint8)),
        "white.png": png(np.full((64, 96, 3), 255, np.uint8)),
        "flat16.tif": tif(np.full((64, 96), 1234, np.uint16)),
        "partly-nan.tif": tif(partly_nan),
        "all-nan.tif": tif(np.full((64, 64), np.nan, np.float32)),
        "inf.tif": tif(np.full((64, 64), np.inf, np.float32)),
        "1x2000.png": png(noise[:1, :2000]),
        "cine-2x8x8.dcm": fuzzing.dicom_bytes(np.stack([noise[:8, :8]] * 2), frames=2),
    }


def test_degenerate_but_decodable_images_on_every_route(client: httpx.Client) -> None:
    """Odd images that decode: a 200 or a clear 4xx (never a 500) on every route; no finite pixels or a
    1-px side is a 400."""
    for name, data in _degenerate_images().items():
        for route in ROUTES:
            r = _post(client, route, data, name)
            assert r.status_code in ALLOWED, f"{route} {name}: HTTP {r.status_code} {r.text[:300]}"
            if r.status_code != 200:
                assert r.json()["detail"], f"{route} {name}"
            if name in ("all-nan.tif", "inf.tif", "1x2000.png"):
                assert r.status_code == 400, f"{route} {name}: HTTP {r.status_code} {r.text[:300]}"
    assert client.get("/healthz").status_code == 200
