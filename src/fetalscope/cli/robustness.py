"""`fetalscope robustness`: a plane bundle beside the plain SonoNet-16 mapping, per source and under
perturbations, with bootstrap intervals; writes robustness.json and robustness.md."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fetalscope.cli.common import friendly_errors, progress_bar, say, split_list


@friendly_errors
def robustness(
    bundle: Annotated[str, typer.Option("--bundle", "-m", help="Plane bundle: bundled name or folder.")]
    = "sononet-planes",
    shared: Annotated[Path | None, typer.Option(help="Shared folder holding data/ (default: FETALSCOPE_SHARED "
                                                     "or ../shared); its sononet-planes test split is used.")]
    = None,
    data: Annotated[Path | None, typer.Option(help="Instead of the shared test split: a folder with one "
                                                   "sub-folder of images per plane.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for robustness.json and robustness.md.")]
    = Path("robustness"),
    limit: Annotated[int, typer.Option(help="Images in the perturbation subsample (stratified by source).")]
    = 120,  # evaluate.robustness.DEFAULT_LIMIT (not imported here: it loads torch, the CLI starts without it)
    baseline: Annotated[str, typer.Option(help="sononet16 (the plain SonoNet-16 mapping, whole image "
                                               "resized) | none.")] = "sononet16",
    perturbations: Annotated[str | None, typer.Option(help="Comma-separated perturbation names (default: "
                                                           "all).")] = None,
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8 for the bundle.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the subsample, the perturbations and the bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON to stdout.")] = False,
) -> None:
    """Robustness report: accuracy with bootstrap 95% intervals per source and per perturbation x strength,
    the shipped model beside the baseline."""
    from fetalscope.evaluate.robustness_report import headline
    from fetalscope.train.recipes.sononet.robustness import run_robustness

    names = split_list(perturbations) if perturbations else None
    with contextlib.ExitStack() as stack:
        advance: Callable[[int], None] | None = None
        seen = 0

        def on_progress(done: int, total: int) -> None:
            nonlocal advance, seen
            if advance is None:
                advance = stack.enter_context(progress_bar(total, "robustness"))
            advance(done - seen)
            seen = done

        report = run_robustness(bundle, shared=shared, data=data, out_dir=out, limit=limit, baseline=baseline,
                                runtime=runtime, perturbations=names, seed=seed, on_progress=on_progress)
    say(f"wrote {out / 'robustness.json'} and {out / 'robustness.md'} ({report['seconds']} s)")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(headline(report))
