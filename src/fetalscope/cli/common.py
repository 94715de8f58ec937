"""What every verb shares: turning fetalscope errors into a clear message and exit code 2."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from fetalscope.errors import FetalscopeError

F = TypeVar("F", bound=Callable[..., Any])
console = Console(stderr=True)


def friendly_errors(fn: F) -> F:
    """Print a FetalscopeError as one red line and exit with status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FetalscopeError as exc:
            console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]
