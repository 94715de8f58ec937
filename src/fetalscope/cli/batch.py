"""`fetalscope batch`: an archive of images through the pipeline session, one Parquet row per file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fetalscope.cli.common import friendly_errors, progress_bar, say


@friendly_errors
def batch(
    paths: Annotated[list[Path], typer.Argument(
        help="Image and clip files (video, multi-frame DICOM), folders (searched recursively) and/or CSV/Parquet "
        "manifests with a 'path' column (and an optional 'pixel_size_mm').")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Results file (.parquet), one row per file.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated: predict (always), detect, measure, "
                                        "quality.")] = "predict",
    engine: Annotated[str, typer.Option(help="local (this process) or ray (Ray Data, an actor pool).")] = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to join, from one of its nodes: auto or HEAD:6379 (default: start one on this machine). "
        "Not ray:// (Ray Data does not run through Ray Client): use `ray job submit` from outside.")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray workers (default: one per cluster CPU).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep the output's rows; skip files whose path and SHA-256 have an ok row, retry errors.")
                      ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again over an existing output.")] = False,
    model: Annotated[str, typer.Option("--model", "-m", help="Plane model: bundled name or bundle folder.")
                     ] = "sononet-planes",
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8")] = "auto",
    flush_every: Annotated[int, typer.Option(help="Rows per part file written while the run goes.")] = 64,
    frame_rows: Annotated[bool, typer.Option(
        "--frame-rows", help="Clips also write one row per processed frame to OUT.frames.parquet.")] = False,
    max_crashes: Annotated[int, typer.Option(
        help="A file that killed its worker (Ray) or the run (local, counted by --resume) this many times becomes "
        "an error row.")] = 2,
) -> None:
    """Analyse an archive: every file through the pipeline, one Parquet row per file (path, sha256, status, error,
    plane, p_<class>, sub-plane, findings, measurements, timings). Resumable; a bad file is an error row."""
    from fetalscope.pipeline.batch.run import execute, plan_batch

    plan = plan_batch(paths, output, tasks=tasks, engine=engine, address=address, workers=workers, resume=resume,
                      overwrite=overwrite, model=model, runtime=runtime, frame_rows=frame_rows,
                      max_crashes=max_crashes)
    say(f"batch: {len(plan.todo)} file(s) to analyse with the {engine} engine"
        + (f", {plan.skipped} already done" if plan.skipped else ""))
    with progress_bar(len(plan.todo), "batch") as advance:
        summary = execute(plan, advance=advance, flush_every=max(1, flush_every), note=say)
    for line in summary.lines():
        say(line)
    if summary.interrupted:
        say("interrupted: the output holds the rows that finished; run again with --resume to finish")
        raise typer.Exit(code=130)
