"""The product face: one server with the HTTP API (FastAPI) and the web UI (Gradio) mounted at ``/``.

- :func:`create_app` builds the ASGI app; :func:`run_server` serves it (``fetalscope serve``).
- :class:`ServeSettings` holds models, limits and security options.

FastAPI, uvicorn and Gradio are imported on first use, so ``import fetalscope.serve`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from fetalscope.serve.settings import ServeSettings


def create_app(settings: ServeSettings | None = None, **overrides: Any) -> Any:
    """Build the app (see :func:`fetalscope.serve.app.create_app`)."""
    from fetalscope.serve.app import create_app as _create_app

    return _create_app(settings, **overrides)


def run_server(host: str = "127.0.0.1", port: int = 7860, **kwargs: Any) -> None:
    """Run the server (see :func:`fetalscope.serve.app.run_server`)."""
    from fetalscope.serve.app import run_server as _run_server

    _run_server(host, port, **kwargs)


__all__ = ["ServeSettings", "create_app", "run_server"]
