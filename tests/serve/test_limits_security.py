"""Limits and security pieces in-process: bearer token, access log, body size, time and concurrency."""

from __future__ import annotations

import io
import logging
import threading
import time

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fetalscope.serve.limits import (
    BodySizeLimitMiddleware,
    InferenceGate,
    RequestTimeoutError,
    keep_multipart_in_memory,
)
from fetalscope.serve.security import COOKIE, AccessLogMiddleware, TokenAuthMiddleware, is_loopback


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{request.url.path} {len(body)}")


def _app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST"])])


def test_token_middleware():
    client = TestClient(TokenAuthMiddleware(_app(), token="s3cret"), follow_redirects=False)
    r = client.get("/v1/models")
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/healthz").status_code == 200  # liveness and the API docs stay open
    assert client.get("/docs").status_code == 200
    # a browser logs in once with ?token=: cookie set, token gone from the URL
    r = client.get("/?token=s3cret&x=1")
    assert r.status_code == 303 and r.headers["location"] == "/?x=1"
    assert f"{COOKIE}=s3cret" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    assert client.get("/").status_code == 200  # the client now holds the cookie
    fresh = TestClient(TokenAuthMiddleware(_app(), token="s3cret"), follow_redirects=False)
    assert fresh.get("/", headers={"cookie": f"{COOKIE}=nope"}).status_code == 401
    assert fresh.get("/?token=nope").status_code == 401
    assert fresh.get("/", headers={"cookie": f"{COOKIE}=s3cret"}).status_code == 200
    with pytest.raises(ValueError):
        TokenAuthMiddleware(_app(), token="")


def test_access_log_has_no_query_or_body(caplog):
    client = TestClient(AccessLogMiddleware(_app()))
    with caplog.at_level(logging.INFO, logger="fetalscope.serve"):
        client.post("/v1/predict?token=s3cret&name=jane.png", content=b"PATIENT-BYTES")
    lines = [r.getMessage() for r in caplog.records if r.name == "fetalscope.serve"]
    assert lines and lines[-1].startswith("POST /v1/predict 200")
    assert not any("s3cret" in line or "jane" in line or "PATIENT" in line for line in lines)


def test_body_size_limit_on_header_and_stream():
    client = TestClient(BodySizeLimitMiddleware(_app(), max_body_bytes=1000))
    assert client.post("/x", content=b"a" * 1000).text == "/x 1000"
    r = client.post("/x", content=b"a" * 1001)
    assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]

    def stream():
        for _ in range(5):
            yield b"b" * 400

    r = client.post("/x", content=stream())  # chunked: no Content-Length
    assert r.status_code == 413


def test_multipart_uploads_stay_in_memory():
    """Starlette spools multipart files over 1 MB to a temporary file; the server raises that threshold."""
    from starlette.formparsers import MultiPartParser

    payload = b"x" * (3 * 2**20)
    keep_multipart_in_memory(4 * 2**20)
    assert MultiPartParser.spool_max_size >= 4 * 2**20
    seen: dict[str, bool] = {}

    async def upload(request: Request) -> JSONResponse:
        form = await request.form()
        file = form["file"]
        seen["rolled"] = bool(file.file._rolled)  # SpooledTemporaryFile: True once it moved to disk
        seen["size"] = len(await file.read())
        return JSONResponse({})

    client = TestClient(Starlette(routes=[Route("/", upload, methods=["POST"])]))
    assert client.post("/", files={"file": ("a.png", io.BytesIO(payload))}).status_code == 200
    assert seen == {"rolled": False, "size": len(payload)}


def test_gate_times_out_with_504():
    gate = InferenceGate(max_concurrent=1, timeout_s=0.2)

    async def main() -> None:
        await gate.run(time.sleep, 1.0)

    with pytest.raises(RequestTimeoutError) as info:
        anyio.run(main)
    assert info.value.http_status == 504 and "limit" in str(info.value)


def test_gate_keeps_abandoned_work_in_its_slot():
    gate = InferenceGate(max_concurrent=1, timeout_s=0.1)
    started: list[str] = []

    def slow(name: str) -> None:
        started.append(name)
        time.sleep(0.4)

    async def main() -> None:
        with pytest.raises(RequestTimeoutError):
            await gate.run(slow, "first")  # answers after 0.1 s, keeps computing until 0.4 s
        assert gate.running == 1
        with pytest.raises(RequestTimeoutError):
            await gate.run(slow, "second")  # waits for the slot, times out, and never starts

    anyio.run(main)
    deadline = time.monotonic() + 5
    while gate.running and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    assert started == ["first"] and gate.running == 0


def test_gate_caps_concurrency():
    gate = InferenceGate(max_concurrent=2, timeout_s=10)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(gate.run, work)

    anyio.run(main)
    assert peak == 2


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
