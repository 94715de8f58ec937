"""Everything a server is started with: model, limits, security, where pages and examples come from.

Every field has a safe default (loopback only, no saving of uploads, 20 MB uploads); the CLI's
``fetalscope serve`` options and the environment variables below override them.

- ``FETALSCOPE_TOKEN``: bearer token required on every request but ``/healthz`` and the API docs.
- ``FETALSCOPE_EXAMPLES``: folder of images for the UI's example gallery.
- ``FETALSCOPE_ABLATION_DIR``: folder holding ``ablation.json`` / ``ablation.md`` from ``fetalscope ablate``.
- ``FETALSCOPE_EVAL_DIR``: folder holding an evaluation ``report.json`` (default: the plane model's bundle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 25_000_000  # e.g. 5000 x 5000; scanners export well under 2 MP
DEFAULT_TIMEOUT_S = 120.0


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class ServeSettings:
    """Server configuration.

    - ``plane_model``: bundle name or folder of the plane classifier (the bundled model by default).
    - ``runtime``: ``auto`` (ONNX Runtime when the bundle has ``model.onnx``), ``torch`` or ``onnx``.
    - ``brain_findings_model``: bundle name/folder of the normal/abnormal brain findings model (the shipped
      demonstration bundle by default), or ``""`` for none (brain images then get no findings and
      ``/v1/explain`` with ``model=brain_findings`` answers 503).
    - ``detector``: bundle name/folder of the brain-structure detector, or None for none. A missing
      bundle is not an error: ``/v1/detect`` then answers 503 and the UI says so.
    - ``token``: when set, every request except ``/healthz`` and the API docs needs
      ``Authorization: Bearer <token>`` (the browser UI: open ``/?token=<token>`` once; a cookie follows).
    - ``save_uploads``: opt-in folder where every upload is written; None (default) keeps uploads in memory.
    - ``max_upload_bytes`` / ``max_pixels``: limits per upload (413 over them).
    - ``request_timeout_s``: an API call taking longer answers 504.
    - ``max_concurrent``: inference calls running at once (others wait their turn, within the timeout).
    - ``examples_dir``: folder of example images for the gallery (default: the bundled synthetic examples
      plus a few real images from the shared data folder when present, read in place).
    - ``eval_dir`` / ``ablation_dir``: report folders rendered by the performance and ablation pages.
    - ``ui``: mount the Gradio UI at ``/`` (False: API only).
    """

    plane_model: str | Path = "sononet-planes"
    runtime: str = "auto"
    detector: str | Path | None = "brain-structures"
    brain_findings_model: str | Path | None = "brain-normal-abnormal-demo"
    token: str | None = None
    save_uploads: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    request_timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrent: int = 2
    examples_dir: Path | None = None
    eval_dir: Path | None = None
    ablation_dir: Path | None = None
    ui: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> ServeSettings:
        """Defaults, then environment variables, then ``overrides`` (None values are ignored)."""
        base = cls(
            token=os.environ.get("FETALSCOPE_TOKEN") or None,
            examples_dir=_env_path("FETALSCOPE_EXAMPLES"),
            ablation_dir=_env_path("FETALSCOPE_ABLATION_DIR"),
            eval_dir=_env_path("FETALSCOPE_EVAL_DIR"),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        for key in ("save_uploads", "examples_dir", "eval_dir", "ablation_dir"):
            if key in given:
                given[key] = Path(given[key]).expanduser()
        return replace(base, **given)
