"""Lazy package exports: a package names the modules its public names live in, and those modules
(often heavy, e.g. torch) are imported on first use of a name, not on ``import`` of the package.

Imports nothing from fetalscope's layers, so any package may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``exports`` maps each public name to the module
    that defines it; any other name raises :class:`AttributeError` as a plain module would.

    Use as ``__getattr__ = lazy_getattr(__name__, _EXPORTS)`` with ``__all__ = sorted(_EXPORTS)``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
