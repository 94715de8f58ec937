"""Fault injection for the tests, inert unless its environment variable is set in the worker's environment:
``FETALSCOPE_BATCH_CRASH_ONCE=FLAG`` makes the first worker to run a batch die once (``FLAG``: a file path,
created by the one that dies); ``FETALSCOPE_BATCH_CRASH_ON=TEXT`` makes every worker die when it starts on a
file whose name contains ``TEXT`` (a decoder that segfaults on one file, every time). Both die with
``os._exit``, as a killed process does: no exception, no clean-up."""

from __future__ import annotations

import os
from pathlib import Path

CRASH_ONCE_ENV = "FETALSCOPE_BATCH_CRASH_ONCE"
CRASH_ON_ENV = "FETALSCOPE_BATCH_CRASH_ON"


def crash_once_if_asked() -> None:
    flag = os.environ.get(CRASH_ONCE_ENV)
    if not flag:
        return
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def crash_if_marked(path: str) -> None:
    marker = os.environ.get(CRASH_ON_ENV)
    if marker and marker in Path(path).name:
        os._exit(1)
