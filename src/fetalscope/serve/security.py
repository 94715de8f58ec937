"""Who may call the server, and what the server writes to its log.

- :class:`TokenAuthMiddleware`: optional bearer token on every route except liveness and the API docs.
  Programs send ``Authorization: Bearer <token>``; a browser opens ``/?token=<token>`` once and gets an
  HttpOnly cookie, so the Gradio UI (which cannot add headers) works too.
- :class:`AccessLogMiddleware`: one log line per request with method, path (never the query string, which
  may hold the token), status and milliseconds. Request bodies, file names and DICOM fields are never
  logged; neither are error messages (they may name the upload).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOG = logging.getLogger("fetalscope.serve")
COOKIE = "fetalscope_token"
OPEN_PATHS = ("/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json")
OPEN_PREFIXES = ("/_docs_static/",)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class TokenAuthMiddleware:
    """Require ``token`` (constant-time compared) on HTTP and websocket requests, except open paths."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("TokenAuthMiddleware needs a non-empty token")
        self.app = app
        self.token = token.encode()

    def _ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization") or ""
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = SimpleCookie()
        try:
            cookie.load(_header(scope, b"cookie") or "")
        except Exception:  # a malformed cookie header is simply not a token
            cookie = SimpleCookie()
        from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
        if self._ok(bearer) or self._ok(from_cookie):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if scope["type"] == "http" and given and self._ok(given[-1]):
            # browser login: set the cookie and reload the same page without the token in the URL
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = (scope.get("root_path", "") + path) + (f"?{rest}" if rest else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", f"{COOKIE}={given[-1]}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")),
                (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_json(send, 401, b'{"detail":"missing or wrong bearer token: send the header '
                                    b'\'Authorization: Bearer <token>\' (browsers: open /?token=<token> once)"}',
                         [(b"www-authenticate", b"Bearer")])


class AccessLogMiddleware:
    """Log ``METHOD /path STATUS ms`` for every HTTP request (no query string, no body, no file names)."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = LOG) -> None:
        self.app = app
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.log.info("%s %s %s %.1fms", scope.get("method", "?"), scope.get("path", "?"),
                          status["code"] or "-", ms)


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach."""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
