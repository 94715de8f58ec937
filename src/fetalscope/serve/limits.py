"""Limits that keep one request from taking the server down: body size, concurrency and time.

- :class:`BodySizeLimitMiddleware` answers 413 (JSON, naming the limit) before reading a body whose
  ``Content-Length`` is over the limit, and stops reading a streamed body the moment it passes it.
- :func:`keep_multipart_in_memory` makes Starlette's multipart parser hold file parts up to the upload
  limit in memory (its default spills parts over 1 MB to a temporary file on disk).
- :class:`InferenceGate` runs blocking work in a worker thread, at most ``max_concurrent`` at a time,
  and gives up after ``timeout_s`` (504) so one slow call cannot hold a client forever.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser

from fetalscope.errors import FetalscopeError, PayloadTooLargeError
from fetalscope.serve.security import ASGIApp, Message, Receive, Scope, Send, _send_json

T = TypeVar("T")
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around one file
DEFAULT_VIDEO_FRAMES = 300  # frames of a clip the server analyses unless asked otherwise (API and app)


class RequestTimeoutError(FetalscopeError):
    """The request took longer than the server's time limit."""

    http_status = 504


def too_large_message(max_body_bytes: int) -> str:
    return (f"request body is over the limit of {max_body_bytes} bytes ({max_body_bytes / 2**20:.1f} MB); "
            "send a smaller image")


class BodySizeLimitMiddleware:
    """413 for request bodies over ``max_body_bytes``: at once when ``Content-Length`` says so, else as
    soon as the streamed body passes the limit (raised as an ``HTTPException(413)``, which FastAPI's
    form parsing lets through to the app's error handler)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max = int(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = json.dumps({"detail": too_large_message(self.max)}).encode()
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length" and value.isdigit() and int(value) > self.max:
                await _send_json(send, 413, message, [(b"connection", b"close")])
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max:
                    raise HTTPException(413, detail=too_large_message(self.max))
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _send_json(send, 413, message, [(b"connection", b"close")])


def keep_multipart_in_memory(max_upload_bytes: int) -> None:
    """Raise Starlette's multipart spool threshold so uploads within the limit never touch the disk."""
    needed = int(max_upload_bytes) + MULTIPART_OVERHEAD
    if MultiPartParser.spool_max_size < needed:
        MultiPartParser.spool_max_size = needed


class InferenceGate:
    """Run blocking calls in threads: at most ``max_concurrent`` computing at once, each answer within
    ``timeout_s``.

    A call that times out answers 504 at once; its thread cannot be stopped, so it finishes in the
    background while still holding its compute slot (``running`` counts such threads too), and a call
    whose time ran out while it waited for a slot never starts.
    """

    def __init__(self, max_concurrent: int, timeout_s: float) -> None:
        n = max(1, int(max_concurrent))
        self.limiter = anyio.CapacityLimiter(n)
        self.timeout_s = float(timeout_s)
        self._slots = threading.BoundedSemaphore(n)
        self._count_lock = threading.Lock()
        self._running = 0

    @property
    def running(self) -> int:
        """Calls computing right now (including ones whose caller already got a 504)."""
        return self._running

    def _error(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"the request took longer than the server's limit of {self.timeout_s:g} s; try a smaller image or a "
            "faster method, or raise the limit (--timeout)"
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        abandoned = threading.Event()

        def work() -> T:
            with self._slots:
                if abandoned.is_set():  # the caller has gone: do not start
                    raise self._error()
                with self._count_lock:
                    self._running += 1
                try:
                    return fn(*args)
                finally:
                    with self._count_lock:
                        self._running -= 1

        try:
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(work, limiter=self.limiter, abandon_on_cancel=True)
        except TimeoutError as exc:
            abandoned.set()
            raise self._error() from exc


def check_upload_size(data: bytes, max_upload_bytes: int, name: str) -> None:
    if len(data) > max_upload_bytes:
        raise PayloadTooLargeError(f"{name}: upload is {len(data)} bytes, over the limit of {max_upload_bytes}")
