"""Paired comparison of two biometry reports (``report.json`` of :mod:`.measurement_report`) on the same images:
how much closer to the reference the second bundle measures each image than the first.

The two bundles' errors on one image are strongly correlated (the image is hard or easy for both), so the
difference of their mean absolute errors has a much narrower interval when the same images are resampled for
both than the two separate intervals suggest. The interval is a percentile bootstrap over the report's groups
(subjects), as in the reports themselves.

    compare_reports(load_report("runs/old"), load_report("runs/new"))  # -> dict; render_comparison_md(...)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.errors import BadInputError
from fetalscope.evaluate.bootstrap import N_BOOT, bootstrap_ci
from fetalscope.models.bundle import REPORT
from fetalscope.train.segmenter.measurement_report import size_bands

# per measurement: the report row's prediction and reference, and the unit of their difference
_ERROR_FIELDS = {"head": ("hc_pred_mm", "hc_ref_mm", "mm", "HC"),
                 "cardiothoracic": ("ctr_pred", "ctr_ref", "", "circumference CTR")}


def load_report(path: str | Path) -> dict[str, Any]:
    """The report at ``path``: a ``report.json`` file or a bundle folder holding one."""
    path = Path(path)
    file = path / REPORT if path.is_dir() else path
    if not file.is_file():
        raise BadInputError(f"{path}: no {REPORT}; write one with `train_biometry.py evaluate BUNDLE`")
    report = json.loads(file.read_text(encoding="utf-8"))
    if report.get("measurement") not in _ERROR_FIELDS or not isinstance(report.get("per_image"), list):
        raise BadInputError(f"{file} is not a biometry report (no measurement or per_image rows)")
    report["_source"] = str(file)
    return report


def compare_reports(before: dict[str, Any], after: dict[str, Any], n_boot: int = N_BOOT) -> dict[str, Any]:
    """``after`` against ``before`` on the images both measured: each one's mean absolute error, the paired
    difference (after minus before; negative: ``after`` is closer) with its bootstrap interval over groups, the
    correlation of the two errors, and for the head the same by reference size. Both reports must cover the
    same measurement, split and images."""
    what = before["measurement"]
    for key in ("measurement", "split"):
        if before.get(key) != after.get(key):
            raise BadInputError(f"the reports differ in {key}: {before.get(key)!r} and {after.get(key)!r}")
    rows_a = {r["image"]: r for r in before["per_image"]}
    rows_b = {r["image"]: r for r in after["per_image"]}
    if set(rows_a) != set(rows_b):
        only = sorted(set(rows_a) ^ set(rows_b))
        raise BadInputError(f"the reports cover different images ({len(only)} in one only, e.g. {only[:3]}); "
                            "compare bundles evaluated on the same split")
    pred, ref, unit, label = _ERROR_FIELDS[what]
    both = [n for n in sorted(rows_a) if rows_a[n].get(pred) is not None and rows_b[n].get(pred) is not None]
    if len(both) < 2:
        raise BadInputError(f"only {len(both)} image(s) measured by both bundles; nothing to compare")
    err_a = np.array([rows_a[n][pred] - rows_a[n][ref] for n in both], dtype=float)
    err_b = np.array([rows_b[n][pred] - rows_b[n][ref] for n in both], dtype=float)
    groups = [rows_a[n].get("group", n) for n in both]

    def gain(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(b).mean() - np.abs(a).mean())

    out: dict[str, Any] = {
        "measurement": what, "label": label, "unit": unit, "split": before.get("split"),
        "before": before.get("_source", before.get("bundle")), "after": after.get("_source", after.get("bundle")),
        "n_images": len(rows_a), "n_compared": len(both),
        "before_mean_absolute_error": float(np.abs(err_a).mean()),
        "after_mean_absolute_error": float(np.abs(err_b).mean()),
        "difference": bootstrap_ci(gain, err_a, err_b, groups=groups, n_boot=n_boot),
        "error_correlation": float(np.corrcoef(err_a, err_b)[0, 1]) if err_a.std() and err_b.std() else None,
        "by_reference": [],
    }
    if what == "head":
        refs = np.array([rows_a[n][ref] for n in both])
        for lo, hi, band in size_bands():
            m = (refs >= lo) & (refs < hi)
            out["by_reference"].append({
                "reference": band, "n": int(m.sum()),
                "before_mean_absolute_error": float(np.abs(err_a[m]).mean()) if m.any() else None,
                "after_mean_absolute_error": float(np.abs(err_b[m]).mean()) if m.any() else None})
    return out


def render_comparison_md(c: dict[str, Any]) -> str:
    """A short Markdown table of :func:`compare_reports`'s result."""
    digits = 3 if c["unit"] else 4
    unit = f" ({c['unit']})" if c["unit"] else ""
    d = c["difference"]
    lines = [
        f"Paired comparison, {c['measurement']} on the {c['split']} split: {c['n_compared']} of {c['n_images']} "
        "images measured by both.", "",
        f"| | {c['label']} mean absolute difference{unit} |", "| --- | --- |",
        f"| before: {c['before']} | {c['before_mean_absolute_error']:.{digits}f} |",
        f"| after: {c['after']} | {c['after_mean_absolute_error']:.{digits}f} |",
        f"| after minus before (95% interval, bootstrap over {d['n_units']} {d['unit']}s) | "
        f"{d['estimate']:+.{digits}f} ({d['lower']:+.{digits}f} to {d['upper']:+.{digits}f}) |",
    ]
    if c["error_correlation"] is not None:
        lines.append(f"| correlation of the two errors | {c['error_correlation']:.3f} |")
    for band in c["by_reference"]:
        if band["n"]:
            lines.append(f"| reference {band['reference']} ({band['n']} images): before / after | "
                         f"{band['before_mean_absolute_error']:.{digits}f} / "
                         f"{band['after_mean_absolute_error']:.{digits}f} |")
    return "\n".join(lines) + "\n"
