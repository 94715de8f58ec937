"""Where things live: the shared data/weights folder, caches and bundled models.

Every path can be overridden: by CLI option first, then environment variable, then the default.

- ``FETALSCOPE_SHARED``: folder holding ``data/`` and ``weights/`` (default ``../shared`` next to the
  repository checkout, i.e. the documented layout ``<workspace>/main`` + ``<workspace>/shared``).
- ``FETALSCOPE_CACHE``: cache folder for feature caches and converted weights (default ``.cache``
  inside the repository checkout, or ``~/.cache/fetalscope`` when installed elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent  # src/fetalscope -> repo root (in a source checkout)


def shared_dir() -> Path:
    """The shared folder with real data and pretrained weights (may not exist)."""
    env = os.environ.get("FETALSCOPE_SHARED")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared").resolve()


def shared_data_dir() -> Path:
    return shared_dir() / "data"


def shared_data_relative(path: str | Path) -> str:
    """``path`` relative to :func:`shared_data_dir` when it lies inside it (names that mean the same on
    every machine, e.g. in split lists and cache keys), else its absolute path."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(shared_data_dir().resolve()))
    except ValueError:
        return str(resolved)


def shared_weights_dir() -> Path:
    return shared_dir() / "weights"


def cache_dir() -> Path:
    env = os.environ.get("FETALSCOPE_CACHE")
    if env:
        path = Path(env).expanduser()
    elif (REPO_ROOT / "pyproject.toml").exists():
        path = REPO_ROOT / ".cache"
    else:
        path = Path.home() / ".cache" / "fetalscope"
    path.mkdir(parents=True, exist_ok=True)
    return path


# The bundled model each role uses unless told otherwise (folder names under :func:`bundled_models_dir`); the
# modules that load them take their defaults from here, and a batch archive records which ones it used.
DEFAULT_MODELS: dict[str, str] = {
    "plane": "sononet-planes",
    "brain_plane": "sononet-brain-planes",
    "brain_findings": "brain-normal-abnormal-demo",
    "detector": "brain-structures",
    "head": "hc18-head",
    "cardiothoracic": "focus-ctr",
}


def bundled_models_dir() -> Path:
    """Folder of model bundles shipped with the package."""
    return PACKAGE_DIR / "models" / "bundled"


def bundled_reports_dir() -> Path:
    """Folder of study results shipped with the package (small JSON, Markdown and PNG files, no weights)."""
    return PACKAGE_DIR / "reports"


def bundled_fonts_dir() -> Path:
    """Folder of the fonts shipped with the package (DejaVu subsets as .ttf and .woff2, with their licence),
    used by the app's pages and embedded in PDF reports (``scripts/build_fonts.py`` rebuilds them)."""
    return PACKAGE_DIR / "assets" / "fonts"
