"""A folder of an archive, searched recursively for images and clips, safe against what archives hold: symbolic
links are followed once per real folder, a link back to a folder that contains it (a loop) is not followed, and
such a link, a link that loops on itself and a link to nothing are inputs of their own (the row of each says what
is wrong, :func:`link_problem`), never a hang, a crash or a silent gap."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path


def walk_inputs(folder: Path, suffixes: Sequence[str]) -> Iterator[str]:
    """The files under ``folder`` whose suffix is in ``suffixes`` (resolved absolute paths), each real folder
    searched once, names sorted; plus, as given (absolute, not resolved), what cannot be searched or read: links to
    an enclosing folder (any name), links with one of ``suffixes`` that loop or point to nothing, and folders that
    cannot be listed (no permission)."""
    root = Path(os.path.abspath(folder))
    seen: set[str] = set()
    stack = [(root, (os.path.realpath(root),))]
    while stack:
        here, ancestors = stack.pop()
        real = ancestors[-1]
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:  # a folder we may not search: one row that says so, not a silent gap
            yield str(here)
            continue
        folders = []
        for entry in entries:
            path = Path(here, entry.name)
            wanted = path.suffix.lower() in suffixes
            try:
                is_dir = entry.is_dir()  # follows links
                is_file = not is_dir and entry.is_file()
            except OSError:  # a link that loops on itself
                is_dir = is_file = False
            if is_dir:
                target = os.path.realpath(path)
                if entry.is_symlink() and target in ancestors:
                    yield str(path)  # a loop: one row that says so
                elif target not in seen:
                    folders.append((path, (*ancestors, target)))
            elif is_file:
                if wanted:
                    yield os.path.realpath(path)
            elif wanted and entry.is_symlink():
                yield str(path)  # loops or points to nothing: its row says which
        stack.extend(reversed(folders))


def link_problem(path: str | Path) -> str | None:
    """What is wrong with ``path`` as an input the walk gave (``None``: nothing, a file to read): a symbolic link
    that loops, points to nothing or points to a folder that contains it, or a folder that cannot be searched."""
    p = Path(path)
    if not p.is_symlink():
        return _unsearchable(p)
    target = os.readlink(p)
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"a symbolic link that loops (-> {target} -> ... back to itself); there is no file to read"
        return f"a broken symbolic link (-> {target}, which does not exist)"
    real, parent = os.path.realpath(p), os.path.realpath(p.parent)
    if os.path.isdir(real) and (parent == real or parent.startswith(real.rstrip(os.sep) + os.sep)):
        return f"a symbolic link to {real}, a folder that contains it (a loop); not followed"
    return None


def _unsearchable(p: Path) -> str | None:
    if not p.is_dir():
        return None
    try:
        os.scandir(p).close()
    except OSError as exc:
        return f"a folder that cannot be searched ({exc.strerror or type(exc).__name__}); its files were not analysed"
    return None
