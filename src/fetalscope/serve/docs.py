"""The API docs page (Swagger UI) served from local files, so ``/docs`` works with no internet.

The Swagger UI 5 assets (Apache-2.0; OpenAPI 3.1 as FastAPI writes it) come from the static folder
of the ``fastapi-offline`` package (MIT); only its files are used. Without it, ``/docs`` still answers
with a plain page listing every route from the OpenAPI schema.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/_docs_static"


def swagger_assets_dir() -> Path | None:
    """Folder of the locally installed Swagger UI files, or None."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).resolve().parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() and (path / "swagger-ui.css").is_file() else None


def _plain_docs(app: FastAPI) -> str:
    rows = []
    for path, ops in app.openapi().get("paths", {}).items():
        for method, op in ops.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td></tr>")
    return (f"<!doctype html><html><head><title>{html.escape(app.title)} API</title></head><body>"
            f"<h1>{html.escape(app.title)} API</h1><p>Schema: <a href='/openapi.json'>/openapi.json</a> "
            "(install <code>fastapi-offline</code> for the interactive page)</p>"
            f"<table>{''.join(rows)}</table></body></html>")


def add_offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` with Swagger UI from local assets (the app must be created with ``docs_url=None``)."""
    assets = swagger_assets_dir()
    if assets is not None:
        app.mount(STATIC_PREFIX, StaticFiles(directory=str(assets)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(_plain_docs(app))
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
        )
