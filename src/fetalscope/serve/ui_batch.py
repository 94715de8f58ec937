"""Several images in one upload: each analysed through the app's one analysis call, an overview row per file
(thumbnail, plane and confidence, warnings flagged, or the file's own error), and a side-by-side comparison
(thumbnails with their plane, every class probability and the measurement when one ran).

Plain functions of :class:`BatchItem` lists, so :mod:`fetalscope.serve.ui` wires them into the page; every
number shown comes from an :class:`~fetalscope.pipeline.analysis.Analysis` record.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.errors import FetalscopeError
from fetalscope.imaging.display import thumbnail
from fetalscope.pipeline.analysis import Analysis
from fetalscope.pipeline.cautions import listed_warnings
from fetalscope.pipeline.html_report import data_uri, measurement_rows, probability_rows, subplane_html
from fetalscope.serve.service import Service, safe_name
from fetalscope.serve.ui_dicom import remember_source

MAX_BATCH_FILES = 20  # images analysed from one upload; the rest get an error row each
THUMB_SIDE = 200
COMPARE_SIDE = 320
NOT_ANALYSED = "Could not analyse this file"

BATCH_CSS = """
.fs-batch-table { border-collapse: collapse; width: 100%; }
.fs-batch-table td, .fs-batch-table th { padding: 4px 8px; text-align: left; vertical-align: top;
                                          border-bottom: 1px solid rgba(128, 128, 128, 0.3); }
.fs-batch-table ul { margin: 0; padding-left: 1.1em; }
#batch-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(150px, 190px)); }
.fs-compare { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 14px; }
.fs-compare-card { border: 1px solid rgba(128, 128, 128, 0.4); border-radius: 6px; padding: 8px; }
.fs-compare-card img { max-width: 100%; display: block; margin: 0 auto 6px auto; }
.fs-compare-card table { border-collapse: collapse; width: 100%; }
.fs-compare-card td { padding: 1px 6px; }
.fs-compare-card td:last-child { width: 45%; }
.fs-compare-card tr.top td { font-weight: bold; }
.fs-compare-card .bar { background: #3b82f6; height: 10px; min-width: 2px; }
"""


@dataclass
class BatchItem:
    """One file of an upload: its name and either its analysis or the reason it has none."""

    name: str
    analysis: Analysis | None = None
    error: str | None = None

    @property
    def record(self) -> dict[str, Any]:
        return self.analysis.to_dict() if self.analysis is not None else {}


def analyse_file(service: Service, data: bytes, name: str, *, upload: bool = True) -> Analysis:
    """The app's one analysis of an image (an upload, one file of a batch, or an example): the server's limits,
    then ``Session.analyse`` with detection and measurement on automatic. Raises ``FetalscopeError``."""
    image = service.load(data, name, upload=upload)
    analysis = service.session.analyse(image, name=name, detect="auto", measure="auto")
    remember_source(analysis, data, name)  # a DICOM upload's header, for the SR download
    return analysis


def take_upload(file: Path) -> bytes:
    """The bytes of a file the upload widget stored; its copy (and its folder, when now empty) is deleted."""
    try:
        return file.read_bytes()
    finally:
        remove_upload(file)


def remove_upload(file: Path) -> None:
    """Delete the upload widget's copy of a file, and its folder when that is now empty."""
    try:
        file.unlink(missing_ok=True)
        parent = file.parent
        upload_root = os.environ.get("GRADIO_TEMP_DIR")
        if upload_root and parent != Path(upload_root) and parent.is_relative_to(upload_root):
            parent.rmdir()
    except OSError:
        pass


def analyse_uploads(service: Service, files: Sequence[Path],
                    progress: Callable[..., Any] | None = None) -> list[BatchItem]:
    """Analyse each uploaded file in turn (reporting "image i of n" to ``progress``); a file that cannot be
    read or analysed gets its error and the others go on. Every upload copy is deleted."""
    n = min(len(files), MAX_BATCH_FILES)
    items: list[BatchItem] = []
    try:
        for i, file in enumerate(files):
            name = safe_name(file.name)
            if i >= MAX_BATCH_FILES:
                items.append(BatchItem(name, error=f"not analysed: at most {MAX_BATCH_FILES} images per upload "
                                                    "(upload the rest in another batch)"))
                continue
            if progress is not None:
                progress((i, n), desc=f"Analysing image {i + 1} of {n}", unit="images")
            try:
                items.append(BatchItem(name, analysis=analyse_file(service, take_upload(file), name)))
            except (OSError, FetalscopeError) as exc:
                items.append(BatchItem(name, error=str(exc)))
    finally:  # whatever happened, no upload copy stays behind
        for file in files:
            remove_upload(file)
    if progress is not None and n:
        progress((n, n), desc=f"Analysed {n} of {n} images", unit="images")
    return items


def analysed(items: Sequence[BatchItem]) -> list[int]:
    """Indices of the items that have an analysis (the gallery's order)."""
    return [i for i, item in enumerate(items) if item.analysis is not None]


def _label(index: int, item: BatchItem) -> str:
    return f"{index + 1}. {item.name}"


def _plane_text(record: dict[str, Any]) -> str:
    p = record.get("plane_probability")
    return f"{record.get('plane')}" + ("" if p is None else f" {100 * float(p):.1f}%")


def gallery_items(items: Sequence[BatchItem]) -> list[tuple[np.ndarray, str]]:
    """(thumbnail, caption) of every analysed image: number, file, plane and confidence, a flag for warnings."""
    out = []
    for i in analysed(items):
        item = items[i]
        assert item.analysis is not None and item.analysis.loaded is not None
        record = item.record
        n_warn = len(listed_warnings(record))
        flag = f" \u26a0 {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ""
        out.append((thumbnail(item.analysis.loaded.pixels, THUMB_SIDE),
                    f"{_label(i, item)}: {_plane_text(record)}{flag}"))
    return out


def compare_choices(items: Sequence[BatchItem]) -> list[tuple[str, int]]:
    """(label, item index) of every analysed image, for the side-by-side picker."""
    return [(_label(i, items[i]), i) for i in analysed(items)]


def table_html(items: Sequence[BatchItem]) -> str:
    """One row per file: number, file, plane, confidence and warnings, or the file's error."""
    esc = html.escape
    rows = []
    for i, item in enumerate(items):
        if item.analysis is None:
            rows.append(f"<tr class='fs-batch-row' data-status='error'><td>{i + 1}</td><td>{esc(item.name)}</td>"
                        f"<td colspan='3'><div class='fs-error'>&#9888; {NOT_ANALYSED}: {esc(str(item.error))}"
                        "</div></td></tr>")
            continue
        record = item.record
        p = record.get("plane_probability")
        warnings = listed_warnings(record)
        warn_cell = ("<ul>" + "".join(f"<li>&#9888; {esc(w)}</li>" for w in warnings) + "</ul>") if warnings \
            else "none"
        rows.append(f"<tr class='fs-batch-row' data-status='ok' data-warnings='{len(warnings)}'><td>{i + 1}</td>"
                    f"<td>{esc(item.name)}</td><td class='fs-batch-plane'>{esc(str(record.get('plane')))}</td>"
                    f"<td>{'' if p is None else f'{100 * float(p):.1f}%'}</td><td>{warn_cell}</td></tr>")
    n_ok = len(analysed(items))
    head = (f"<p><b>{len(items)} files:</b> {n_ok} analysed, {len(items) - n_ok} not. Click a thumbnail below "
            "to open it in the detailed view.</p>")
    return (head + "<table class='fs-batch-table' id='batch-rows'><tr><th>#</th><th>file</th><th>plane</th>"
            "<th>confidence</th><th>warnings</th></tr>" + "".join(rows) + "</table>")


def _card(index: int, item: BatchItem) -> str:
    esc = html.escape
    record = item.record
    assert item.analysis is not None and item.analysis.loaded is not None
    shown = item.analysis.plot(show=("measurement",), labels=False) if record.get("measurement") \
        else item.analysis.loaded.pixels
    parts = [f"<div class='fs-compare-card' data-index='{index}'>",
             f"<img src='{data_uri(thumbnail(shown, COMPARE_SIDE))}' alt='{esc(item.name)}'>",
             f"<div><b>{esc(_label(index, item))}</b></div>",
             f"<h3 class='fs-compare-plane'>{esc(_plane_text(record))}</h3>"]
    if record.get("brain_plane"):
        parts.append(f"<div>{subplane_html(record['brain_plane'])}</div>")
    parts += [f"<div class='fs-warning'>&#9888; {esc(w)}</div>" for w in listed_warnings(record)]
    parts.append(f"<table class='fs-compare-probs'>{probability_rows(record)}</table>")
    meas = record.get("measurement")
    if meas:
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in measurement_rows(meas))
        parts.append(f"<div><b>Measurement: {esc(str(meas.get('measurement', '')))}</b> (quality "
                     f"{esc(str(meas.get('quality')))})</div><table class='fs-compare-measure'>{rows}</table>")
    elif record.get("measurement_skipped"):
        parts.append(f"<div><em>No measurement: {esc(str(record['measurement_skipped']))}</em></div>")
    parts.append("</div>")
    return "".join(parts)


def compare_html(items: Sequence[BatchItem], chosen: Sequence[int] | None) -> str:
    """The chosen analysed images side by side, in the picker's order of the batch."""
    picked = [i for i in analysed(items) if i in set(chosen or [])]
    if not picked:
        return "<p>Tick two or more images above to compare them side by side.</p>"
    return "<div class='fs-compare'>" + "".join(_card(i, items[i]) for i in picked) + "</div>"
