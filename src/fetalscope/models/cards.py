"""Finding bundles and reading their cards without building a model (no torch): what ``fetalscope models``
and the server's model listing need. :mod:`fetalscope.models.bundle` loads and saves the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fetalscope import config
from fetalscope.errors import MissingWeightsError

CARD = "card.json"


def available_bundles() -> list[str]:
    """Names of the bundles shipped in :func:`fetalscope.config.bundled_models_dir`."""
    root = config.bundled_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD).is_file())


def resolve_bundle(name_or_path: str | Path) -> Path:
    """Folder of a bundle given by path (folder or its ``card.json``) or by bundled name."""
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name == CARD:
        path = path.parent
    if path.is_dir() and (path / CARD).is_file():
        return path
    bundled = config.bundled_models_dir() / str(name_or_path)
    if not path.is_absolute() and (bundled / CARD).is_file():
        return bundled
    names = available_bundles()
    raise MissingWeightsError(
        f"no model bundle '{name_or_path}': not a folder with {CARD} and not a bundled model. "
        f"Bundled models: {', '.join(names) if names else '(none installed)'}. "
        "Pass a bundle folder path or one of those names."
    )


def read_card_file(folder: Path) -> dict[str, Any]:
    """The parsed ``card.json`` of the bundle folder ``folder``; one that cannot be read, is not JSON or holds no
    JSON object raises :class:`MissingWeightsError` naming the file (a broken bundle, like unreadable weights)."""
    path = folder / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MissingWeightsError(f"{path} is not a readable model card ({exc}); re-save the bundle") from exc
    if not isinstance(card, dict):
        raise MissingWeightsError(f"{path} is not a model card (a JSON object), it holds a {type(card).__name__}; "
                                  "re-save the bundle")
    return card


def require_card_keys(folder: Path, card: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Raise :class:`MissingWeightsError` naming the first of ``keys`` that the bundle's card lacks."""
    for key in keys:
        if key not in card:
            raise MissingWeightsError(f"{folder / CARD} has no '{key}'; the bundle is incomplete: re-save it")


def read_card(name_or_path: str | Path) -> dict[str, Any]:
    """The ``card.json`` of a bundle, without building its model."""
    return read_card_file(resolve_bundle(name_or_path))


def bundle_size_bytes(name_or_path: str | Path) -> int:
    """Bytes on disk of every file in the bundle folder (weights, ONNX twins, card, report)."""
    return sum(p.stat().st_size for p in resolve_bundle(name_or_path).rglob("*") if p.is_file())


def model_label(model: dict[str, Any] | None) -> str:
    """A model as results name it (``model``: a record's ``{"id", "version", "revision"?}``): its name, version and,
    where its card counts retrained revisions of one version, that revision (``hc18-head 0.1.0 revision 5``)."""
    model = model or {}
    label = f"{model.get('id', 'unknown')} {model.get('version', '')}".strip()
    return label if model.get("revision") is None else f"{label} revision {model['revision']}"
