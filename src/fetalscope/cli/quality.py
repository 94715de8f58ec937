"""`fetalscope quality`: the acquisition checklist of each image (is it a good standard plane, and what to
change), one line per image, or the records as JSON (``--json``, ``--output``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fetalscope.cli.common import friendly_errors, progress_bar, say, write_json

PathsArg = Annotated[list[Path], typer.Argument(help="Image files and/or folders (PNG, JPEG, TIFF, BMP, DICOM).")]


@friendly_errors
def quality(
    paths: PathsArg,
    what: Annotated[str, typer.Option(help="auto | head | cardiothoracic (auto: the head checklist for brain "
                                           "images, the four-chamber one for thorax images, chosen by the plane "
                                           "model).")] = "auto",
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Millimetres per pixel.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON results file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON to stdout (default: one "
                                                         "line per image; --output writes the JSON file).")]
    = False,
) -> None:
    """Acquisition feedback: a checklist per image (size, in view, structures, ellipse fit, gain, sharpness),
    a score 0-100, a grade and one line of advice per failed criterion."""
    from fetalscope.imaging import iter_image_paths
    from fetalscope.pipeline.measure import check_pixel_size, measurement_choice
    from fetalscope.pipeline.session import Session

    # the session's rules, with the inputs named as the user typed them, before any image is read
    what = measurement_choice(what, "--what")
    pixel_size = check_pixel_size(pixel_size, "--pixel-size")
    session = Session(brain_plane_model=None, brain_findings_model=None)
    files = list(iter_image_paths(list(paths)))
    records = []
    with progress_bar(len(files), "quality") as advance:
        for path in files:
            records.append(session.quality(session.load(path), what, pixel_size))
            advance(1)
    payload = [r.to_dict() for r in records]
    if output is not None:
        write_json(output, payload)
        say(f"wrote {len(records)} record(s) to {output}")
    if as_json:
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=str))
    elif output is None:
        for record in records:
            typer.echo(record.line())
