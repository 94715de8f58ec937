"""Detection reports: ``report.json`` (everything measured) rendered to ``report.md`` and PNG plots.

Every number in the Markdown comes from the JSON; nothing is typed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fetalscope.detect.types import Box  # noqa: E402


def _n(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _eval_section(
    title: str, ev: dict[str, Any], classes: Sequence[str], ci: dict[str, Any] | None = None
) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"{ev['images']} images from {ev['groups']} source groups; operating score "
        f"threshold {ev['score_threshold']}.",
        "",
    ]
    mr, mf = ev["map_raw"], ev["map_filtered"]
    pr, pf = ev["pr_raw"], ev["pr_filtered"]
    rows = []
    for c in classes:
        rows.append(
            [
                c,
                _n(mr["per_class"][c]["map_50"]),
                _n(mr["per_class"][c]["map_50_95"]),
                _n(mf["per_class"][c]["map_50"]),
                _n(mf["per_class"][c]["map_50_95"]),
                _n(pf["per_class"][c]["precision"]),
                _n(pf["per_class"][c]["recall"]),
                mr["ground_truth_boxes"][c],
            ]
        )
    rows.append(
        [
            "**all (mean)**",
            _n(mr["map_50"]),
            _n(mr["map_50_95"]),
            _n(mf["map_50"]),
            _n(mf["map_50_95"]),
            _n(pf["micro"]["precision"]),
            _n(pf["micro"]["recall"]),
            sum(mr["ground_truth_boxes"].values()),
        ]
    )
    lines += _table(
        [
            "class",
            "AP@0.5 raw",
            "AP@0.5:0.95 raw",
            "AP@0.5 filtered",
            "AP@0.5:0.95 filtered",
            "precision (filtered)",
            "recall (filtered)",
            "boxes",
        ],
        rows,
    )
    lines += [
        "",
        f"Raw output at the threshold: precision {_n(pr['micro']['precision'])}, recall "
        f"{_n(pr['micro']['recall'])} (TP {pr['micro']['tp']}, FP {pr['micro']['fp']}, "
        f"FN {pr['micro']['fn']}).",
    ]
    if ci:
        lines += [
            "",
            "Bootstrap 95% intervals (resampling source groups, "
            f"{ci.get('n_boot')} replicates): "
            f"mAP@0.5 {_n(ci['map_50']['ci_low'])}-{_n(ci['map_50']['ci_high'])}, "
            f"mAP@0.5:0.95 {_n(ci['map_50_95']['ci_low'])}-{_n(ci['map_50_95']['ci_high'])}.",
        ]
    pl = ev["plausibility"]
    keys = [k for k in pl["raw_outputs"] if k.startswith(("duplicate", "outside", "any"))]
    rows = [
        [
            k,
            _pct(pl["raw_outputs"].get(k)),
            _pct(pl["filtered_outputs"].get(k)),
            _pct(pl["annotations"].get(k)),
        ]
        for k in keys
    ]
    lines += [
        "",
        "Plausibility rule violations (fraction of images; skull rules over the "
        f"{pl['raw_outputs']['images_with_skull']} images where a skull was found, "
        f"{_pct(pl['skull_found_fraction'])}):",
        "",
    ]
    lines += _table(["rule", "raw outputs", "filtered outputs", "annotations"], rows)
    return lines + [""]


def render_report_md(report: dict[str, Any]) -> str:
    """Markdown view of a detection ``report.json``."""
    classes = report["dataset"]["classes"]
    lines = [f"# Detection report: {report.get('name', 'detector')}", ""]
    lines += ["Research and education only; not a medical device.", ""]
    ds = report["dataset"]
    lines += ["## Data", "", f"- dataset: `{ds['yaml']}`", f"- classes: {', '.join(classes)}"]
    for split, info in ds["splits"].items():
        lines.append(
            f"- {split}: {info['images']} images, {info['groups']} source groups, boxes {info['boxes']}"
        )
    proto = report["protocol"]
    lines += [f"- protocol: {proto['description']}", ""]
    tr = report.get("training")
    if tr:
        lines += [
            "## Training",
            "",
            f"- backend: {report['backend']}; base weights: {report.get('base_weights', 'n/a')}",
            f"- {tr['epochs_run']} epochs in {tr['seconds']} s on {tr['device']} "
            f"({tr['threads']} thread(s)); "
            f"weights kept from epoch {tr['best_epoch']} (hold-out mAP@0.5:0.95 {_n(tr['best_map'])})",
            f"- settings: {json.dumps(tr['config'])}",
            "",
        ]
        hist = tr.get("history", [])
        if hist:
            lines += _table(
                ["epoch", "loss", "hold-out mAP@0.5", "hold-out mAP@0.5:0.95", "seconds"],
                [
                    [h["epoch"], h["loss"], _n(h.get("val_map_50")), _n(h.get("val_map_50_95")), h["seconds"]]
                    for h in hist
                ],
            )
            lines.append("")
    th = report["threshold"]
    lines += [
        "## Operating threshold",
        "",
        f"Score threshold {th['value']} maximises micro F1 on "
        f"{th['chosen_on']} (F1 {_n(th['f1'])}). Outside-skull boxes dropped by the filter: "
        f"{report['plausibility_filter']['drop_outside_skull']} ({report['plausibility_filter']['reason']}).",
        "",
    ]
    lines += ["## Results", ""]
    for key, title in (
        ("test", "Test split"),
        ("holdout", "Hold-out split (used for epoch and threshold choice)"),
    ):
        if report.get(key):
            lines += _eval_section(
                f"{title}: {report[key]['split_name']}",
                report[key]["evaluation"],
                classes,
                report[key].get("bootstrap"),
            )
    sk = report.get("skull_estimator")
    if sk:
        lines += [
            "## Skull region estimator",
            "",
            sk["method"],
            "",
            f"Against {sk['images']} HC18 filled head masks: skull found in {_pct(sk['found_fraction'])}; "
            f"IoU median {_n(sk['iou_median'])}, mean {_n(sk['iou_mean'])} (found images); IoU < 0.5 in "
            f"{_pct(sk['iou_below_0_5_fraction'])} of found images.",
            "",
        ]
    sp = report.get("speed")
    if sp:
        lines += [
            "## Speed",
            "",
            f"CPU inference {_n(sp['detector_ms_per_image'], 1)} ms per image (detector, "
            f"{sp['threads']} thread(s), {sp['images']} images of {sp['image_size']}); skull estimate "
            f"{_n(sp['skull_ms_per_image'], 1)} ms; model file {_n(sp.get('model_mb'), 1)} MB.",
            "",
        ]
    notes = report.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    plots = report.get("plots") or {}
    if plots:
        lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text(render_report_md(report), encoding="utf-8")
    return out / "report.json"


def plot_threshold_curve(curve: Sequence[dict[str, float]], chosen: float, path: str | Path) -> Path:
    """Precision, recall and F1 against the score threshold (the data beside it as JSON)."""
    t = [r["threshold"] for r in curve]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for key in ("precision", "recall", "f1"):
        ax.plot(t, [r[key] for r in curve], label=key)
    ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen {chosen}")
    ax.set_xlabel("score threshold")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Hold-out precision / recall / F1")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    path.with_suffix(".json").write_text(
        json.dumps({"curve": list(curve), "chosen": chosen}, indent=1) + "\n"
    )
    return path


def plot_examples(
    images: Sequence[np.ndarray],
    predictions: Sequence[Sequence[Box]],
    truths: Sequence[Sequence[Box]],
    path: str | Path,
    titles: Sequence[str] | None = None,
) -> Path:
    """A grid of images with predicted boxes (coloured, labelled) and annotations (white, dashed)."""
    from fetalscope.detect.api import draw_boxes

    n = len(images)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.9 * rows), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, pred, gt) in enumerate(zip(images, predictions, truths, strict=True)):
        ax = axes.ravel()[i]
        ax.imshow(draw_boxes(img, list(pred)))
        for b in gt:
            ax.add_patch(
                plt.Rectangle((b.x0, b.y0), b.x1 - b.x0, b.y1 - b.y0, fill=False, ec="white", ls="--", lw=1)
            )
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.suptitle("predictions (coloured) vs annotations (white dashed)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
