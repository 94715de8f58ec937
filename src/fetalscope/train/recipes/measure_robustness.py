"""How the measurements hold up on degraded images: the shipped head and CTR bundles on their validation images
(or another split of a bundle's ``splits.json``, e.g. a cross-validation fold's held-out ``fold``),
each image perturbed (:mod:`fetalscope.imaging.perturb`) at several strengths, measured through the
:class:`~fetalscope.biometry.measure.Measurer` as users get it, scored against the reference: HC mean absolute
difference (or circumference-CTR MAE), bias, how many were measured, and how often the calibrated interval
(:mod:`fetalscope.biometry.uncertainty`) still held the reference.

Geometric perturbations that rescale the image (zoom, crop) change the millimetres per pixel: the head is measured
with the pixel size rescaled to match, so that its error is the model's and not the zoom's. Letterboxing squeezes
the image in one direction only (no single pixel size fits) and is left out of the head's list.
"""

from __future__ import annotations

import datetime as _dt
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.biometry.measure import Measurer
from fetalscope.config import bundled_models_dir
from fetalscope.errors import BadInputError
from fetalscope.evaluate.agreement import mean_ci
from fetalscope.imaging.loader import load_image
from fetalscope.imaging.perturb import CROP_MAX, PERTURBATIONS, ZOOM_MAX, get_perturbation
from fetalscope.models.cards import resolve_bundle
from fetalscope.train.segmenter.measurement_report import validation_samples
from fetalscope.train.segmenter.repeatability import reference_ratios

HEAD_PERTURBATIONS = ("speckle", "speckle_correlated", "gain_down", "gain_up", "contrast", "blur", "jpeg",
                      "video_codec", "rotation", "shift", "zoom_in", "zoom_out", "crop", "ui_chrome")
CTR_PERTURBATIONS = (*HEAD_PERTURBATIONS, "letterbox")  # a ratio needs no pixel size
STRENGTHS = (0.5, 1.0)


def content_scale(name: str, strength: float) -> float | None:
    """How much a perturbation magnifies the image content (1: unchanged; None: not one factor for both axes)."""
    if name == "zoom_in":
        return 1.0 + ZOOM_MAX * strength
    if name == "zoom_out":
        return 1.0 - ZOOM_MAX * strength
    if name == "crop":
        return 1.0 / (1.0 - CROP_MAX * strength)
    if name == "letterbox":
        return None
    return 1.0


def _seed(image_name: str, condition: str) -> int:
    """A stable seed per image and condition (the same perturbed image on every run)."""
    return zlib.crc32(f"{image_name}|{condition}".encode())


def perturbed_rows(what: str, bundle: str | Path, perturbations: Sequence[str], strengths: Sequence[float],
                   runtime: str = "onnx", limit: int | None = None,
                   log: Callable[[str], None] = print, split: str = "validation") -> list[dict[str, Any]]:
    """One row per image of the bundle's ``split`` and condition (``clean`` first): the measurement against the
    reference."""
    m = Measurer(what, bundle, runtime=runtime)
    samples = validation_samples(Path(m.bundle.path), what, split)[:limit]
    if not samples:
        raise BadInputError(f"{m.bundle.path} has no {split!r} images in its splits.json")
    conditions = [("clean", 0.0)] + [(p, s) for p in perturbations for s in strengths]
    for name, _ in conditions[1:]:
        get_perturbation(name)  # an unknown name fails before any work
    rows = []
    for i, sample in enumerate(samples):
        image = load_image(sample.path)
        for name, strength in conditions:
            scale = 1.0 if name == "clean" else content_scale(name, strength)
            if what == "head" and scale is None:
                continue
            pixels = image.pixels if name == "clean" else get_perturbation(name)(
                image.pixels, strength, np.random.default_rng(_seed(sample.name, f"{name}@{strength}")))
            row: dict[str, Any] = {"image": sample.name, "group": sample.group, "perturbation": name,
                                   "strength": strength}
            if what == "head":
                px = float(sample.meta["pixel_size_mm"]) / scale
                rec = m.measure(replace(image, pixels=pixels), pixel_size_mm=px)
                ref, value, interval = float(sample.meta["hc_mm"]), rec.get("hc_mm"), rec.get("hc_interval_mm")
            else:
                rec = m.measure(replace(image, pixels=pixels))
                ref = reference_ratios(sample)["circumference"]
                value, interval = (rec.get("ctr") or {}).get("circumference"), rec.get("ctr_interval")
            row.update(reference=ref, value=value, quality=rec["quality"])
            if value is not None:
                row["error"] = value - ref
            if interval:
                row.update(interval=interval, covered=bool(interval[0] <= ref <= interval[1]))
            rows.append(row)
        if (i + 1) % 10 == 0:
            log(f"{what}: {i + 1}/{len(samples)} images")
    return rows


def summarise(rows: list[dict[str, Any]], n_boot: int = 500) -> list[dict[str, Any]]:
    """Per condition: images, measured, mean absolute error and bias (bootstrap over groups), interval coverage
    and mean width."""
    out = []
    for key in dict.fromkeys((r["perturbation"], r["strength"]) for r in rows):
        sel = [r for r in rows if (r["perturbation"], r["strength"]) == key]
        done = [r for r in sel if "error" in r]
        groups = [r["group"] for r in done]
        ranged = [r for r in done if "covered" in r]
        out.append({
            "perturbation": key[0], "strength": key[1], "images": len(sel), "measured": len(done),
            "describe": "" if key[0] == "clean" else PERTURBATIONS[key[0]].describe(key[1]),
            "mae": mean_ci([abs(r["error"]) for r in done], groups, n_boot) if done else None,
            "bias": float(np.mean([r["error"] for r in done])) if done else None,
            "coverage": float(np.mean([r["covered"] for r in ranged])) if ranged else None,
            "mean_width": float(np.mean([r["interval"][1] - r["interval"][0] for r in ranged])) if ranged else None,
        })
    return out


def render_md(results: dict[str, dict[str, Any]]) -> str:
    """The report: one table per measurement, the clean row first."""
    splits = sorted({result.get("split", "validation") for result in results.values()})
    # the shipped bundles on validation are the product's report; anything else serves a trial's rule
    shipped = all(result.get("shipped", result.get("split", "validation") == "validation")
                  for result in results.values())
    lines = ["# Measurements on degraded images", "",
             "Written by `scripts/measure_robustness.py` (`fetalscope.train.recipes.measure_robustness`) on "
             f"{_dt.date.today().isoformat()}. Each bundle's {' / '.join(splits)} images, each perturbed once per "
             "condition (seeded by image and condition), measured by "
             f"{'the shipped bundle' if shipped else 'the bundle named in each section'} through the Measurer "
             "(ONNX Runtime), against the reference. Zoom and crop rescale the pixel size given to the head; "
             "letterboxing is scored for the ratio only. Coverage: how often the record's calibrated 90% interval "
             "held the reference" + (". Nothing here was used to choose anything." if shipped else
                                     " (n/a for a bundle without one)."), ""]
    for what, result in results.items():
        unit, digits, label = ("mm", 2, "HC mean absolute difference") if what == "head" else \
            ("", 4, "circumference-CTR MAE")
        lines += [f"## {result['bundle']} ({what}), {result['summary'][0]['images']} "
                  f"{result.get('split', 'validation')} images", "",
                  f"| perturbation | strength | what it does | measured | {label} (95% CI) | bias | "
                  "interval coverage | mean width |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in result["summary"]:
            mae = r["mae"]
            cell = "n/a" if not mae else (f"{mae['estimate']:.{digits}f} ({mae['lower']:.{digits}f} to "
                                         f"{mae['upper']:.{digits}f})")
            bias = "n/a" if r["bias"] is None else f"{r['bias']:+.{digits}f}"
            cov = "n/a" if r["coverage"] is None else f"{r['coverage']:.3f}"
            width = "n/a" if r["mean_width"] is None else f"{r['mean_width']:.{digits}f}{' ' + unit if unit else ''}"
            lines.append(f"| {r['perturbation']} | {r['strength']:g} | {r['describe']} | {r['measured']}/"
                         f"{r['images']} | {cell} | {bias} | {cov} | {width} |")
        lines += ["", f"Run time: {result['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def run(bundles: dict[str, str], strengths: Sequence[float] = STRENGTHS, limit: int | None = None,
        log: Callable[[str], None] = print, split: str = "validation",
        only: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The measurements of ``bundles`` (measurement -> bundle name or folder) on each bundle's ``split``: rows and
    summaries. ``only`` keeps those perturbations of each measurement's list (all by default)."""
    for name in only or ():
        get_perturbation(name)  # an unknown name fails before any work
    results = {}
    for what, bundle in bundles.items():
        t0 = time.perf_counter()
        names = [n for n in (HEAD_PERTURBATIONS if what == "head" else CTR_PERTURBATIONS) if only is None or n in only]
        rows = perturbed_rows(what, bundle, names, strengths, limit=limit, log=log, split=split)
        bundled = resolve_bundle(bundle).resolve().parent == bundled_models_dir().resolve()
        results[what] = {"bundle": Path(str(bundle)).name, "split": split, "shipped": bundled and split == "validation",
                         "rows": rows, "summary": summarise(rows), "seconds": time.perf_counter() - t0}
    return results
