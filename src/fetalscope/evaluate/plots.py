"""Evaluation plots as PNG files, each written next to a JSON file of the arrays it shows.

Figures are drawn with matplotlib's Agg canvas (``matplotlib.figure.Figure``, no pyplot), so
plotting never needs a display and never changes the global backend. Every function takes the
already-computed data (from metrics.py / calibration.py), writes ``<path>.png`` and
``<path>.json`` and returns ``{"png": name, "json": name}`` (names relative to the folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix.lower() == ".png":
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    return base.with_suffix(".png"), base.with_suffix(".json")


def _save(fig: Figure, data: dict[str, Any], path: str | Path) -> dict[str, str]:
    png, js = _paths(path)
    FigureCanvasAgg(fig)
    fig.savefig(png, dpi=DPI, bbox_inches="tight")
    js.write_text(json.dumps(data, indent=2, allow_nan=False))
    return {"png": png.name, "json": js.name}


def plot_confusion_matrix(counts: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, *,
                          normalized: bool = False, not_covered: Sequence[str] = (),
                          title: str | None = None) -> dict[str, str]:
    """Confusion matrix heat map (rows true, columns predicted); ``normalized`` divides each row by its
    support (rows without test images show ``n/a``); ``not_covered`` classes are marked on both axes."""
    cm = np.asarray(counts, dtype=np.float64)
    support = cm.sum(axis=1)
    if normalized:
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.where(support[:, None] > 0, cm / np.where(support[:, None] > 0, support[:, None], 1),
                             np.nan)
    else:
        shown = cm
    k = len(classes)
    size = max(4.0, 0.9 * k + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    vmax = 1.0 if normalized else max(1.0, float(np.nanmax(shown)) if shown.size else 1.0)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for i in range(k):
        for j in range(k):
            v = shown[i, j]
            text = "n/a" if np.isnan(v) else (f"{v:.2f}" if normalized else f"{int(v)}")
            dark = not np.isnan(v) and v > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    marked = [f"{c} (not covered)" if c in set(not_covered) else str(c) for c in classes]
    ax.set_xticks(range(k), labels=marked, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[f"{c} (n={int(s)})" for c, s in zip(marked, support, strict=True)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    default = "Confusion matrix (row-normalised)" if normalized else "Confusion matrix (counts)"
    ax.set_title(title or default)
    data = {"classes": list(classes), "not_covered": list(not_covered), "normalized": normalized,
            "support": support.astype(int).tolist(),
            "values": [[None if np.isnan(v) else float(v) for v in row] for row in shown]}
    return _save(fig, data, path)


def plot_reliability(before: dict[str, Any], path: str | Path, *, after: dict[str, Any] | None = None,
                     title: str | None = None) -> dict[str, str]:
    """Reliability diagram: accuracy against mean confidence per bin, with the diagonal of perfect
    calibration. ``before``/``after`` are :func:`~fetalscope.evaluate.calibration.reliability_bins`
    results (after: temperature-scaled), each with its ``ece`` when present."""
    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    series = {"before": before} if after is None else {"before": before, "after": after}
    styles = {"before": ("tab:red", "o"), "after": ("tab:blue", "s")}
    for key, bins in series.items():
        pts = [(c, a, n) for c, a, n in zip(bins["confidence"], bins["accuracy"], bins["count"], strict=True)
               if n > 0]
        if not pts:
            continue
        conf, acc, n = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
        color, marker = styles[key]
        label = "uncalibrated" if key == "before" else "temperature-scaled"
        if bins.get("ece") is not None:
            label += f" (ECE {bins['ece']:.3f})"
        ax.plot(conf, acc, marker=marker, color=color, label=label)
        ax.scatter(conf, acc, s=10 + 60 * n / n.max(), color=color, alpha=0.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(title or "Reliability diagram (marker size ~ images in bin)")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, {k: v for k, v in series.items()}, path)


def plot_roc_curves(curves: dict[str, dict[str, Any]], path: str | Path, *,
                    title: str | None = None) -> dict[str, str]:
    """One-vs-rest ROC curve per class (``curves``: class -> {fpr, tpr, auc}, from ``roc_curves``)."""
    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], lw=1.5, label=f"{name} (AUC {c['auc']:.3f})")
    if not curves:
        ax.text(0.5, 0.5, "no class has both positive and negative test images", ha="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC curves (one class vs rest)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, {"curves": curves}, path)
