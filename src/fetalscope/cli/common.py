"""What every verb shares: turning fetalscope errors into a clear message and exit code 2."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fetalscope.errors import FetalscopeError

F = TypeVar("F", bound=Callable[..., Any])
# soft_wrap: a message is printed whole on one line whatever the terminal width (Rich would otherwise break
# it at the width of the terminal, or at 80 columns / $COLUMNS when stderr is not a terminal)
console = Console(stderr=True, soft_wrap=True)


def one_line(message: object) -> str:
    """``message`` as one line of console markup: line breaks become spaces and square brackets are
    escaped (a file name such as ``scan[/x].png`` is text, not a Rich tag)."""
    return escape(" ".join(str(message).splitlines()))


def say(text: str, **kwargs: Any) -> None:
    """Print a plain message on stderr as it is: no Rich markup (file names may hold brackets), no
    highlighting, never wrapped."""
    kwargs.setdefault("markup", False)
    kwargs.setdefault("highlight", False)
    console.print(text, **kwargs)


class _RateColumn(ProgressColumn):
    """Images per second of a task (its finished rate once done)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- images/s" if not speed else f"{speed:.1f} images/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr with count, rate and time left, for ``total`` images: yields ``advance(n)``.
    Shown only on a terminal and for more than one image; elsewhere ``advance`` does nothing (logs and pipes
    get no control codes)."""
    if total < 2 or not console.is_terminal:
        yield lambda n=1: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def friendly_errors(fn: F) -> F:
    """Print a FetalscopeError, or an OSError about a named file (an output folder that cannot be made, a file
    that cannot be written), as one red line and exit with status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FetalscopeError as exc:
            console.print(f"[bold red]error:[/] {one_line(exc)}", markup=True, highlight=False)
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a file or folder the command must read or write (inputs are read as BadInputError)
            if exc.filename is None:
                raise
            where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
            reason = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError | NotADirectoryError):  # making an output folder
                text = f"cannot create {where}: {reason} (a file stands where a folder is needed)"
            elif isinstance(exc, PermissionError):
                text = f"no permission to use {where}: {reason}"
            else:
                text = f"{where}: {reason}"
            console.print(f"[bold red]error:[/] {one_line(text)}", markup=True, highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]
