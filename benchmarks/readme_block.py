"""Benchmark tooling: put a benchmark's Markdown table into a document between ``<!-- NAME -->`` markers, so the
numbers a README shows are the ones a run wrote (imported as ``benchmarks.readme_block`` with the repository root on
the path)."""

from __future__ import annotations

from pathlib import Path


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace what stands between ``<!-- NAME -->`` and ``<!-- /NAME -->`` in ``path`` by ``text``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    doc = path.read_text(encoding="utf-8")
    if start not in doc or end not in doc:
        raise SystemExit(f"{path} has no '{start}' ... '{end}' block to fill")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}", encoding="utf-8")
