"""A timm-style registry: ``create_model(name, num_classes, pretrained=...)``.

Architectures register a factory with :func:`register_model`; the factory receives
``num_classes``, ``pretrained`` and keyword options and returns a :class:`FetalscopeClassifier`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.models.architectures import ARCHITECTURES
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.spec import ModelSpec

Factory = Callable[..., FetalscopeClassifier]

_FACTORIES: dict[str, Factory] = {}
_SPECS: dict[str, ModelSpec] = {}

# modules whose import registers architectures (imported lazily on first lookup)
_ARCHITECTURE_MODULES = tuple(dict.fromkeys(ARCHITECTURES.values()))
_loaded = False


def register_model(spec: ModelSpec) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(num_classes, pretrained=False, **kw)`` under ``spec.name``."""

    def wrap(factory: Factory) -> Factory:
        _FACTORIES[spec.name] = factory
        _SPECS[spec.name] = spec
        return factory

    return wrap


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for module in _ARCHITECTURE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside an existing module
                raise
    _loaded = True


def _ensure_registered(name: str) -> None:
    """Register ``name``: import only its module when it is a shipped architecture (loading the SonoNet plane
    model then never imports timm), every architecture module otherwise (a name registered elsewhere, or an
    unknown one, whose error lists them all)."""
    if name in _FACTORIES:
        return
    module = ARCHITECTURES.get(name)
    if module is not None:
        importlib.import_module(module)
        if name in _FACTORIES:
            return
    _ensure_loaded()


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_FACTORIES)


def _unknown(name: str) -> BadInputError:
    names = list_models()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return BadInputError(f"unknown model '{name}'.{hint} Available: {', '.join(names)}")


def get_spec(name: str) -> ModelSpec:
    _ensure_registered(name)
    if name not in _SPECS:
        raise _unknown(name)
    return _SPECS[name]


def create_model(name: str, num_classes: int, pretrained: bool = False,
                 **kwargs: Any) -> FetalscopeClassifier:
    """Build a registered classifier. ``pretrained=True`` loads offline base weights or raises
    :class:`~fetalscope.errors.MissingWeightsError` naming the missing file and how to supply it."""
    _ensure_registered(name)
    if name not in _FACTORIES:
        raise _unknown(name)
    if num_classes < 1:
        raise BadInputError(f"num_classes must be >= 1, got {num_classes}")
    model = _FACTORIES[name](num_classes=num_classes, pretrained=pretrained, **kwargs)
    model.arch_name = name  # type: ignore[attr-defined]
    model.arch_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    model.pretrained = bool(pretrained or kwargs.get("weights_path"))  # type: ignore[attr-defined]
    return model
