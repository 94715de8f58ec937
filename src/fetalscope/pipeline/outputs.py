"""Files in, files out: what the batch verbs write, through a :class:`~fetalscope.pipeline.session.Session`.

- :func:`explain_to_folder` (``fetalscope explain``): per image and method an overlay PNG and the raw map
  (``.npy``), and ``index.json`` listing every image, its prediction and the explanation records (the same
  records ``POST /v1/explain`` returns).
- :func:`detect_to_folder` (``fetalscope detect``): one detection record per image (the record of
  ``POST /v1/detect``) as a JSON list, and optionally the boxes drawn on each image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError, FetalscopeError, MissingWeightsError
from fetalscope.explain.methods import parse_methods
from fetalscope.explain.overlay import DEFAULT_ALPHA, png_bytes
from fetalscope.imaging.loader import UltrasoundImage, iter_image_paths
from fetalscope.pipeline.analysis import draw_findings
from fetalscope.pipeline.session import Session


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File-name stems for ``paths``, made safe and unique (``a``, ``a_2``, ...)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem) or "image"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n + 1}")
    return out


def explain_to_folder(session: Session, paths: str | Path | Sequence[str | Path], methods: str | Sequence[str],
                      out_dir: str | Path, target: int | str | None = None, *, model: str = "plane",
                      params: dict[str, Any] | None = None, method_params: dict[str, dict[str, Any]] | None = None,
                      batch_size: int = 8, cmap: str | None = None, alpha: float = DEFAULT_ALPHA,
                      on_images_done: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Explain every image in ``paths`` (files and folders) with each method through ``session``.

    Writes ``<stem>_<method>.png`` (the overlay on the region the model saw) and ``<stem>_<method>.npy`` (the raw
    ``H x W`` float32 map at the model's input size) per image and method, and ``index.json``. Unreadable
    images are listed under ``errors`` and skipped; if none can be read the first error is raised.
    ``on_images_done(n)`` is called after each batch of ``n`` images (a progress bar's advance). Returns the
    per-image records of the index; a record's ``probabilities`` are the explained model's calibrated ones
    (as ``predict`` reports them)."""
    names = parse_methods(methods)
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1, got {batch_size}")
    chosen_index = session.resolve_target(target, model=model)  # typos fail before any work
    files = list(iter_image_paths(paths if not isinstance(paths, (str, Path)) else [paths]))
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    first_error: FetalscopeError | None = None
    stems = unique_stems(files)
    for start in range(0, len(files), batch_size):
        chunk: list[tuple[Path, str, UltrasoundImage]] = []
        for path, stem in zip(files[start:start + batch_size], stems[start:start + batch_size], strict=True):
            try:
                chunk.append((path, stem, session.load(path)))
            except FetalscopeError as exc:
                errors.append({"image": str(path), "error": str(exc)})
                first_error = first_error or exc
        if not chunk:
            if on_images_done is not None:
                on_images_done(len(files[start:start + batch_size]))
            continue
        explained = session.explain_many([c[2] for c in chunk], names, chosen_index, model=model, params=params,
                                         method_params=method_params, batch_size=batch_size, alpha=alpha, cmap=cmap)
        for (path, stem, image), item in zip(chunk, explained, strict=True):
            classes = list(item.probabilities)
            rec: dict[str, Any] = {
                "image": str(path), "stem": stem, "original_size": [image.height, image.width],
                "predicted": classes.index(item.predicted), "predicted_class": item.predicted,
                "probabilities": item.probabilities, "explanations": {},
            }
            for result in item.results:
                rec["input_size"] = list(result.explanation.shape)
                rec["explanations"][result.method] = {**result.to_dict(), **result.save(out, stem)}
            records.append(rec)
        if on_images_done is not None:  # e.g. a progress bar's advance
            on_images_done(len(files[start:start + batch_size]))
    if not records:
        if first_error is not None:
            raise first_error
        raise BadInputError(f"no images found in {paths}")
    info = session.explain_model_info(model)
    index = {"model": {**info, "name": info.get("id"), "classes": session.explain_classes(model), "explains": model},
             "methods": names, "target": chosen_index, "images": records, "errors": errors,
             "overlay": {"cmap": cmap or "jet (unsigned) / RdBu_r (signed)", "alpha": alpha,
                         "drawn_on": "the region the model saw (sector crop when the model crops), at most 512 px"}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return records


def detect_to_folder(session: Session, paths: str | Path | Sequence[str | Path], *,
                     out_json: str | Path | None = None, draw_dir: str | Path | None = None,
                     score_threshold: float | None = None,
                     on_images_done: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Detect structures in every image of ``paths`` (files and folders) with the session's detector.

    Returns one detection record per image; writes them as a JSON list to ``out_json`` and the boxes (and the
    skull ellipse) drawn on each image as ``<stem>_boxes.png`` into ``draw_dir`` when given (the record then
    names its drawing in ``overlay``). A missing detector raises before any image is read."""
    if not session.detector_available:
        raise MissingWeightsError(session.detector_info()["reason"])
    files = list(iter_image_paths(paths if not isinstance(paths, (str, Path)) else [paths]))
    records = []
    for path, stem in zip(files, unique_stems(files), strict=True):
        image = session.load(path)
        record = session.detect(image, score_threshold)
        record.pop("timings_ms", None)
        if draw_dir is not None:
            target = Path(draw_dir) / f"{stem}_boxes.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png_bytes(draw_findings(image.pixels, detections=record)))
            record["overlay"] = str(target)
        records.append(record)
        if on_images_done is not None:
            on_images_done(1)
    if out_json is not None:
        out = Path(out_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return records
