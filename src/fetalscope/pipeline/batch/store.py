"""Where a batch run's rows go: part files written as rows arrive (``OUT.parquet.parts/part-*.parquet``, each
written whole then renamed in, so an interrupted run leaves only whole parts), merged at the end into
``OUT.parquet`` with one row per path (the latest). ``--resume`` reads the output and any parts left by an
interrupted run to know which (path, sha256) already have an ``ok`` row.

The local engine also writes a journal (``started-RUN.txt`` in the parts folder: each path as its analysis
starts); a run that ends, also by Ctrl-C, removes it with the parts, so a journal still there means that run's
process died, and its last line names the file it died on (:meth:`Store.crashes`, read by ``--resume``).

Every file it writes records how its rows were made in the Parquet schema metadata (``provenance``, see
:mod:`~fetalscope.pipeline.batch.provenance`)."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.pipeline.batch.provenance import METADATA_KEY
from fetalscope.pipeline.batch.rows import KEY_COLUMNS, OK, TRAILING_COLUMNS


class Store:
    """The output file ``output`` (``.parquet``) and its folder of part files; ``key``: the columns that name one
    row (the latest row of a key is kept); ``provenance``: what every file written records about the run (JSON in
    the schema metadata; ``None``: nothing)."""

    def __init__(self, output: str | Path, key: Sequence[str] = ("path",),
                 provenance: dict[str, Any] | None = None) -> None:
        self.output = Path(output)
        self.key = tuple(key)
        self.provenance = provenance
        self._journal: Any = None
        if self.output.suffix.lower() != ".parquet":
            raise BadInputError(f"--output must end in .parquet, got '{self.output.name}'")
        self.parts = self.output.with_name(self.output.name + ".parts")
        self._run = time.strftime("%Y%m%d-%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
        self._seq = 0

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Start a run: with ``resume`` keep what is there; with ``overwrite`` drop it; else refuse to touch an
        existing output (or the parts of an interrupted run)."""
        there = [p for p in (self.output, self.parts) if p.exists()]
        if there and not resume:
            if not overwrite:
                raise BadInputError(f"{there[0]} already exists: add --resume to finish or extend that run, or "
                                    "--overwrite to start again")
            self.output.unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
        self.output.parent.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        """The output (when there) and every part file left by this or earlier runs."""
        parts = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        return ([self.output] if self.output.is_file() else []) + parts

    def done(self) -> dict[str, str]:
        """``{path: sha256}`` of the files with an ``ok`` row in the output or in its part files (the latest row of
        a path decides)."""
        import pyarrow.parquet as pq

        latest: dict[str, tuple[str | None, str | None]] = {}
        for f in self.files():
            try:
                t = pq.read_table(f, columns=["path", "sha256", "status"]).to_pydict()
            except (OSError, ValueError, KeyError) as exc:  # ArrowInvalid is a ValueError
                raise BadInputError(f"{f} is not an archive of fetalscope batch ({type(exc).__name__}: {exc}); "
                                    "--resume needs the output of an earlier run: use --overwrite to start again, "
                                    "or another --output") from exc
            for path, sha, status in zip(t["path"], t["sha256"], t["status"], strict=True):
                latest[path] = (sha, status)
        return {p: sha for p, (sha, status) in latest.items() if status == OK and sha}

    def write_part(self, rows: Sequence[dict[str, Any]]) -> Path | None:
        """Write ``rows`` as one part file (whole or not at all); ``None`` when there are none."""
        if not rows:
            return None
        import pyarrow.parquet as pq

        self.parts.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        final = self.parts / f"part-{self._run}-{self._seq:06d}.parquet"
        _write_atomically(self._stamped(rows_to_table(rows)), final, pq)
        return final

    def merge(self) -> int:
        """Fold the output and every part file into the output, one row per key (the latest; the rows of a path
        all from the newest file that has it, so a clip analysed again leaves no stale frames), sorted by key;
        remove the parts. Returns the number of rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = self.files()
        if not files:
            return 0
        tables = [pq.read_table(f) for f in files]
        table = pa.concat_tables(tables, promote_options="permissive")
        source = [n for n, t in enumerate(tables) for _ in range(t.num_rows)]
        paths = table.column("path").to_pylist()
        newest = dict(zip(paths, source, strict=True))  # a path's rows come from the newest file that has it
        keys = zip(*(table.column(c).to_pylist() for c in self.key), strict=True)
        latest = {k: i for i, (k, p, n) in enumerate(zip(keys, paths, source, strict=True)) if n == newest[p]}
        keep = [latest[k] for k in sorted(latest, key=lambda k: tuple((v is None, v) for v in k))]
        table = table.take(pa.array(keep, pa.int64()))
        first = [c for c in KEY_COLUMNS if c in table.column_names]
        trailing = [c for c in TRAILING_COLUMNS if c in table.column_names]
        table = table.select(first + [c for c in table.column_names if c not in first + trailing] + trailing)
        _write_atomically(self._stamped(table), self.output, pq)
        self.close_journal()
        shutil.rmtree(self.parts, ignore_errors=True)
        return table.num_rows

    def _stamped(self, table: Any) -> Any:
        """``table`` with this run's provenance in its schema metadata."""
        if self.provenance is None:
            return table
        meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(self.provenance).encode()}
        return table.replace_schema_metadata(meta)

    def started(self, path: str) -> None:
        """Note in this run's journal that ``path``'s analysis starts (written through before it does)."""
        if self._journal is None:
            self.parts.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.parts / f"started-{self._run}.txt", "a", encoding="utf-8")  # noqa: SIM115
        self._journal.write(path + "\n")
        self._journal.flush()

    def close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def crashes(self) -> Counter:
        """``{path: n}``: how many earlier runs died while analysing ``path`` (the last line of each journal
        those runs left behind)."""
        died: Counter = Counter()
        for journal in sorted(self.parts.glob("started-*.txt")) if self.parts.is_dir() else []:
            if journal.name == f"started-{self._run}.txt":
                continue
            lines = [line for line in journal.read_text(encoding="utf-8").splitlines() if line]
            if lines:
                died[lines[-1]] += 1
        return died


def rows_to_table(rows: Sequence[dict[str, Any]]) -> Any:
    """A pyarrow table of rows that may differ in their columns (the union, missing values null; the empty
    strings of a CSV row become nulls)."""
    import pyarrow as pa

    columns = list(dict.fromkeys(k for r in rows for k in r))
    data = {c: [None if r.get(c) == "" else r.get(c) for r in rows] for c in columns}
    return pa.table({c: pa.array(v) for c, v in data.items()})


def _write_atomically(table: Any, path: Path, pq: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
