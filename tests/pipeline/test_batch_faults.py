"""A file that kills the process analysing it, every time (a decoder segfault, an out-of-memory kill; here
``os._exit`` through the test-only hook of ``pipeline/batch/faults.py``), with the local engine: each run dies
on it and leaves its rows and a journal naming the file; ``--resume`` counts the deaths and, at the budget, gives
the file an error row and finishes the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.pipeline.batch.faults import CRASH_ON_ENV


def run_batch(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fetalscope", "batch", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, CRASH_ON_ENV: "boom"})


def test_a_file_that_kills_the_run_becomes_an_error_row_after_two_deaths(example_pngs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, src in (("a.png", example_pngs[0]), ("boom.png", example_pngs[1]), ("c.png", example_pngs[2])):
        shutil.copy(src, folder / name)  # boom.png is a good image: only the hook makes it deadly
    out = tmp_path / "out.parquet"
    first = run_batch(folder, "-o", out, "--flush-every", "1")
    assert first.returncode == 1 and not out.exists(), first.stderr[-2000:]  # died on boom.png, no clean-up
    second = run_batch(folder, "-o", out, "--flush-every", "1", "--resume")
    assert second.returncode == 1, second.stderr[-2000:]  # a.png's row survived; boom.png killed it again
    third = run_batch(folder, "-o", out, "--resume")
    assert third.returncode == 0, third.stderr[-2000:]
    assert "gave up on it, the run died 2 time(s)" in third.stderr and "1 skipped" in third.stderr
    rows = pd.read_parquet(out).set_index("path")
    assert sorted(rows.index) == sorted(str(p.resolve()) for p in folder.glob("*.png"))
    boom = rows.loc[str((folder / "boom.png").resolve())]
    assert boom["status"] == "error" and "worker crashed while analysing this file (2 time(s))" in boom["error"]
    assert (rows.drop(index=boom.name)["status"] == "ok").all()
    assert not out.with_name("out.parquet.parts").exists()  # the journals went with the parts


def test_the_crash_budget_must_allow_one_crash(example_pngs, tmp_path):
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(app, ["batch", str(example_pngs[0]), "-o", str(out), "--max-crashes", "0"])
    assert result.exit_code == 2 and "--max-crashes must be at least 1, got 0" in result.output
    assert not out.exists()
