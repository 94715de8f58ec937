"""One server: the FastAPI API with the Gradio UI mounted at ``/``.

``create_app(...)`` builds it (models loaded once, limits and security in place); ``run_server(host,
port, ...)`` runs it with uvicorn. Both take the fields of :class:`ServeSettings` as keywords.

Gradio is configured to stay on this machine: analytics off, no share links, no server-side
rendering, no run history, our own bundled fonts only (:mod:`fetalscope.serve.fonts`). Its upload folder
is a private directory in ``/dev/shm`` (memory) when available, removed when the process exits.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from fetalscope.errors import BadInputError
from fetalscope.serve.api import build_api
from fetalscope.serve.fonts import font_face_css, mount_fonts, theme
from fetalscope.serve.limits import MULTIPART_OVERHEAD, BodySizeLimitMiddleware, keep_multipart_in_memory
from fetalscope.serve.security import AccessLogMiddleware, TokenAuthMiddleware, is_loopback
from fetalscope.serve.service import Service
from fetalscope.serve.settings import DEFAULT_HOST, DEFAULT_PORT, ServeSettings

LOG = logging.getLogger("fetalscope.serve")
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_SSR_MODE": "False",
    "GRADIO_MCP_SERVER": "False",
    "GRADIO_RUN_HISTORY": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
_ui_temp_dir: Path | None = None


def private_upload_dir() -> Path:
    """A fresh 0700 folder for the UI's uploads: in ``/dev/shm`` (RAM) when writable, else the temp dir."""
    global _ui_temp_dir
    if _ui_temp_dir is not None and _ui_temp_dir.is_dir():
        return _ui_temp_dir
    shm = Path("/dev/shm")
    parent = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    if parent is None:
        LOG.warning("no /dev/shm: the UI's upload widget will pass files through %s (deleted after reading)",
                    tempfile.gettempdir())
    _ui_temp_dir = Path(tempfile.mkdtemp(prefix=f"fetalscope-ui-{os.getpid()}-", dir=parent))
    atexit.register(remove_upload_dir)
    return _ui_temp_dir


def remove_upload_dir() -> None:
    """Delete the UI's private upload folder and everything in it (at shutdown)."""
    global _ui_temp_dir
    if _ui_temp_dir is not None:
        shutil.rmtree(_ui_temp_dir, ignore_errors=True)
        _ui_temp_dir = None


def configure_gradio_environment() -> Path:
    """Environment that keeps Gradio offline and its uploads in memory; returns the upload folder."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    folder = private_upload_dir()
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def create_app(settings: ServeSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the app. ``settings`` (or keyword overrides of :class:`ServeSettings`, e.g. ``plane_model=``,
    ``token=``, ``ui=False``) choose models, limits and security. Raises
    :class:`~fetalscope.errors.MissingWeightsError` when the plane model bundle cannot be found."""
    if settings is None:
        settings = ServeSettings.from_env(**overrides)
    elif overrides:
        raise TypeError("pass either settings or keyword overrides, not both")
    keep_multipart_in_memory(settings.max_upload_bytes)
    service = Service(settings)
    app = build_api(service, timeout_s=settings.request_timeout_s, max_concurrent=settings.max_concurrent,
                    max_body_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
                    on_shutdown=remove_upload_dir if settings.ui else None)
    app.state.settings = settings
    mount_fonts(app)  # before the UI, which takes every other path under "/"
    if settings.ui:
        upload_dir = configure_gradio_environment()
        import gradio as gr

        from fetalscope.serve.ui import CSS, build_ui

        blocks = build_ui(service, settings)
        gr.mount_gradio_app(
            app, blocks, path="/", footer_links=[{"label": "API docs", "url": "/docs"}], run_history=False,
            ssr_mode=False, mcp_server=False, show_error=True, css=font_face_css() + CSS, theme=theme(),
            max_file_size=settings.max_upload_bytes, allowed_paths=[], blocked_paths=[],
        )
        app.state.upload_dir = upload_dir
    # middleware: the last added runs first (log -> token -> body size -> routes)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if settings.token:
        app.add_middleware(TokenAuthMiddleware, token=settings.token)
    app.add_middleware(AccessLogMiddleware)
    return app


def configure_logging(level: int = logging.INFO) -> None:
    """Plain log lines on stderr for fetalscope and uvicorn (uvicorn's own access log stays off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("fetalscope", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`~fetalscope.errors.BadInputError` when ``host:port`` cannot be bound (taken, or not an
    address of this machine), so ``fetalscope serve`` says so at once."""
    import socket

    if not 0 <= int(port) <= 65535:
        raise BadInputError(f"--port must be in 0-65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BadInputError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            why = "is already in use" if taken else f"cannot be bound ({exc.strerror})"
            raise BadInputError(f"port {port} on {host} {why}; choose another with --port"
                                + (" or stop the program using it" if taken else "")) from None


def run_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, plane_model: str | Path | None = None,
               token: str | None = None, save_uploads: str | Path | None = None, **settings: Any) -> None:
    """Serve the app with uvicorn on ``host:port`` (loopback by default) until interrupted.

    Other keywords are :class:`ServeSettings` fields (``runtime``, ``detector``, ``max_upload_bytes``,
    ``max_pixels``, ``request_timeout_s``, ``examples_dir``, ``eval_dir``, ``ablation_dir``, ``ui``...).
    """
    import uvicorn

    check_port_free(host, port)  # before the models load: a taken port is a one-line error, not Errno 98 later
    configure_logging()
    app = create_app(plane_model=plane_model, token=token, save_uploads=save_uploads, **settings)
    cfg: ServeSettings = app.state.settings
    if not is_loopback(host) and not cfg.token:
        LOG.warning("listening on %s without a token: anyone who can reach this address can use the app "
                    "(set --token or FETALSCOPE_TOKEN)", host)
    if cfg.save_uploads is not None:
        LOG.warning("saving every upload to %s (--save-uploads)", cfg.save_uploads)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    LOG.info("fetalscope app on http://%s:%d/ (API docs: /docs)", shown, port)
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, timeout_keep_alive=5,
                server_header=False)
