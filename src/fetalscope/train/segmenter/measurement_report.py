"""Validation of a biometry bundle on its held-out split, written as ``report.json`` + ``report.md``
(+ PNG plots) into the bundle folder; the headline numbers also go into ``card.json``'s ``metrics``.

Head (HC18): per image the HC difference (mm, prediction - reference), ellipse Dice and Hausdorff
distance (mm) against the reference ellipse, and the raw mask's Dice; aggregated as mean absolute
difference, mean difference (bias), Bland-Altman limits, mean Dice, mean HD.

Cardiothoracic (FOCUS): per structure the IoU and Dice of the fitted ellipse (against the expert
ellipse) and of the raw mask (against the expert mask); CTR (circumference, area, diameter) mean
absolute error, bias, Pearson r and Bland-Altman limits, next to the constant predictor that says
the training-mean CTR for every image.

Every aggregate carries a percentile bootstrap 95% interval that resamples whole groups (HC18
subjects, FOCUS duplicate groups) via :mod:`fetalscope.evaluate.agreement`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.biometry.cardiothoracic import ctr_ratios
from fetalscope.biometry.ellipse import Ellipse, ellipse_overlap, hausdorff_distance, mask_dice, mask_iou
from fetalscope.biometry.measure import Measurer, ctr_views_sd, hc_views_sd
from fetalscope.biometry.segbundle import load_seg_bundle, render_seg_card_md
from fetalscope.config import shared_data_relative
from fetalscope.data.segsets import SegSample, load_mask_file
from fetalscope.errors import DataError
from fetalscope.evaluate.agreement import agreement, mean_ci
from fetalscope.imaging.loader import load_image
from fetalscope.models.bundle import read_card_file, write_card_files
from fetalscope.train.segmenter.recipes import SPLITS_FILE, read_split, recipe
from fetalscope.train.segmenter.repeatability import reference_ratios, reference_repeatability

RATIOS = ("circumference", "area", "diameter")


# ---- per-image evaluation --------------------------------------------------------------------------
def validation_samples(folder: Path, what: str, split: str = "validation") -> list[SegSample]:
    """The bundle's held-out samples (as listed in its ``splits.json``) from the measurement's dataset."""
    return split_samples(folder, what, [split])[split]


def split_samples(folder: Path, what: str, splits: Sequence[str] | None = None) -> dict[str, list[SegSample]]:
    """The samples of each of the bundle's ``splits`` (default: every split in its ``splits.json``) from the
    measurement's dataset, read once."""
    if not (folder / SPLITS_FILE).is_file():
        raise DataError(f"{folder}: no {SPLITS_FILE}; evaluate with explicit samples instead")
    names = list(json.loads((folder / SPLITS_FILE).read_text(encoding="utf-8"))) if splits is None else splits
    by_rel = {shared_data_relative(s.path): s for s in recipe(what).load()}
    out = {}
    for split in names:
        wanted = read_split(folder, split)
        missing = [w for w in wanted if w not in by_rel]
        if missing:
            raise DataError(f"{len(missing)} {split} images of {folder} are not in the dataset, e.g. {missing[:3]}")
        out[split] = [by_rel[w] for w in wanted]
    return out


def evaluate_head_sample(m: Measurer, sample: SegSample) -> dict[str, Any]:
    image = load_image(sample.path)
    t0 = time.perf_counter()
    probs = m.probabilities(image)
    pred, views = m.head_views(image, probs)
    seconds = time.perf_counter() - t0
    shape = (image.height, image.width)
    ref = Ellipse.from_dict(sample.ellipses["head"])
    px = float(sample.meta["pixel_size_mm"])
    row: dict[str, Any] = {"image": sample.name, "group": sample.group, "hc_ref_mm": float(sample.meta["hc_mm"]),
                           "pixel_size_mm": px, "seconds": seconds, "found": pred is not None}
    if pred is None:
        return row
    raw = m.masks(image, probs)["head"]
    ref_mask = ref.rasterise(shape)
    row.update(hc_pred_mm=pred.circumference() * px, ellipse=pred.normalised().to_dict(),
               ellipse_dice=ellipse_overlap(pred, ref, shape)["dice"], hd_mm=hausdorff_distance(pred, ref) * px,
               mask_dice=mask_dice(raw, ref_mask))
    row["hc_diff_mm"] = row["hc_pred_mm"] - row["hc_ref_mm"]
    row["hc_views_sd_mm"] = hc_views_sd(views) * px
    rule = m.interval_rule
    interval = rule.interval(row["hc_pred_mm"], row["hc_views_sd_mm"], unit="mm") if rule else None
    if interval is not None:
        row.update(hc_interval=interval, hc_in_interval=bool(interval[0] <= row["hc_ref_mm"] <= interval[1]))
    return row


def evaluate_ctr_sample(m: Measurer, sample: SegSample) -> dict[str, Any]:
    image = load_image(sample.path)
    t0 = time.perf_counter()
    probs = m.probabilities(image)
    ellipses, views = m.ctr_views(image, m.ellipses(image, probs, refine=False))
    seconds = time.perf_counter() - t0
    shape = (image.height, image.width)
    refs = {s: Ellipse.from_dict(sample.ellipses[s]) for s in ("heart", "thorax")}
    masks = m.masks(image, probs)
    row: dict[str, Any] = {"image": sample.name, "group": sample.group, "seconds": seconds,
                           "ctr_ref": reference_ratios(sample)}
    from fetalscope.biometry.cardiothoracic import quality_gate

    row["gate"] = quality_gate(ellipses["heart"], ellipses["thorax"], shape)
    for s in ("heart", "thorax"):
        pred = ellipses[s]
        ref_mask = load_mask_file(sample.masks[s]) if s in sample.masks else refs[s].rasterise(shape)
        row[f"{s}_mask_iou"] = mask_iou(masks[s], ref_mask)
        row[f"{s}_mask_dice"] = mask_dice(masks[s], ref_mask)
        if pred is None:
            row[f"{s}_ellipse_iou"] = row[f"{s}_ellipse_dice"] = 0.0
            continue
        ov = ellipse_overlap(pred, refs[s], shape)
        row[f"{s}_ellipse_iou"], row[f"{s}_ellipse_dice"] = ov["iou"], ov["dice"]
        row[s] = pred.normalised().to_dict()
    if ellipses["heart"] is not None and ellipses["thorax"] is not None:
        row["ctr_pred"] = ctr_ratios(ellipses["heart"], ellipses["thorax"])
        row["ctr_views_sd"] = ctr_views_sd(views) or 0.0  # 0: the bundle averages no views
        rule = m.interval_rule
        interval = rule.interval(row["ctr_pred"]["circumference"], row["ctr_views_sd"]) if rule else None
        if interval is not None:
            ref = row["ctr_ref"]["circumference"]
            row.update(ctr_interval=interval, ctr_in_interval=bool(interval[0] <= ref <= interval[1]))
    return row


# ---- aggregation -------------------------------------------------------------------------------
def summarise_head(rows: list[dict[str, Any]], n_boot: int) -> dict[str, Any]:
    ok = [r for r in rows if r["found"]]
    g = [r["group"] for r in ok]
    y = [r["hc_ref_mm"] for r in ok]
    p = [r["hc_pred_mm"] for r in ok]
    hc = agreement(y, p, g, n_boot)
    return {
        "n_images": len(rows), "n_groups": len({r["group"] for r in rows}), "n_no_head_found": len(rows) - len(ok),
        "hc_mm": {"mean_absolute_difference": hc["mae"], "mean_difference": hc["bias"],
                  "loa_low": hc["loa_low"], "loa_high": hc["loa_high"], "pearson_r": hc["pearson_r"]},
        "ellipse_dice": mean_ci([r["ellipse_dice"] for r in ok], g, n_boot),
        "hausdorff_mm": mean_ci([r["hd_mm"] for r in ok], g, n_boot),
        "mask_dice": mean_ci([r["mask_dice"] for r in ok], g, n_boot),
        "within_2mm": mean_ci([float(abs(r["hc_diff_mm"]) <= 2.0) for r in ok], g, n_boot),
        "by_reference_hc": _by_size(ok),
        **({"hc_interval": _interval_summary(ok, n_boot, "hc", size_bands(), lambda r: r["hc_ref_mm"])}
           if any("hc_in_interval" in r for r in ok) else {}),
    }


def _interval_summary(rows: list[dict[str, Any]], n_boot: int, prefix: str,
                      bands: Sequence[tuple[float, float, str]] = (),
                      reference: Callable[[dict[str, Any]], float] | None = None) -> dict[str, Any]:
    """How often the measurement interval (the card's ``inference.<prefix>_interval``) held the reference, its mean
    width, and the coverage per band of the reference (``bands``: low, high, label; ``reference``: a row's
    reference value)."""
    inside, interval = f"{prefix}_in_interval", f"{prefix}_interval"
    rows = [r for r in rows if inside in r]
    g = [r["group"] for r in rows]
    by_band = []
    for lo, hi, label in bands:
        hits = [r[inside] for r in rows if reference is not None and lo <= reference(r) < hi]
        by_band.append({"reference": label, "n": len(hits), "coverage": float(np.mean(hits)) if hits else None})
    return {"coverage": mean_ci([float(r[inside]) for r in rows], g, n_boot),
            "mean_width": mean_ci([r[interval][1] - r[interval][0] for r in rows], g, n_boot),
            "by_reference": by_band}


HC_EDGES = (0.0, 100.0, 200.0, 1e9)  # reference head size bands (first trimester, mid-pregnancy, late pregnancy)


def size_bands(edges: Sequence[float] = HC_EDGES) -> list[tuple[float, float, str]]:
    """(low, high, label) of each head size band, e.g. ``0-100 mm`` ... ``>= 200 mm``."""
    return [(lo, hi, f"{lo:.0f}-{hi:.0f} mm" if hi < 1e8 else f">= {lo:.0f} mm")
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _by_size(rows: list[dict[str, Any]], edges: Sequence[float] = HC_EDGES) -> list[dict[str, Any]]:
    """HC error by reference head size (first trimester, mid-pregnancy, late pregnancy)."""
    out = []
    for lo, hi, label in size_bands(edges):
        d = np.array([r["hc_diff_mm"] for r in rows if lo <= r["hc_ref_mm"] < hi])
        out.append({"reference_hc": label, "n": int(len(d)),
                    "mean_absolute_difference_mm": float(np.abs(d).mean()) if len(d) else None,
                    "mean_difference_mm": float(d.mean()) if len(d) else None})
    return out


def summarise_ctr(rows: list[dict[str, Any]], train_mean: dict[str, float], n_boot: int) -> dict[str, Any]:
    g_all = [r["group"] for r in rows]
    out: dict[str, Any] = {"n_images": len(rows), "n_groups": len(set(g_all)),
                           "n_gate_rejected": sum(1 for r in rows if r["gate"]),
                           "gate_reasons": sorted({x.split(":")[0] for r in rows for x in r["gate"]})}
    for s in ("heart", "thorax"):
        out[s] = {k: mean_ci([r[f"{s}_{k}"] for r in rows], g_all, n_boot)
                  for k in ("ellipse_iou", "ellipse_dice", "mask_iou", "mask_dice")}
    with_ctr = [r for r in rows if "ctr_pred" in r]
    g = [r["group"] for r in with_ctr]
    out["ctr"], out["ctr_constant_baseline"] = {}, {}
    for ratio in RATIOS:
        y = [r["ctr_ref"][ratio] for r in with_ctr]
        out["ctr"][ratio] = agreement(y, [r["ctr_pred"][ratio] for r in with_ctr], g, n_boot)
        base = agreement(y, [train_mean[ratio]] * len(y), g, n_boot)
        base["pearson_r"] = {"estimate": None, "note": "undefined for a constant prediction"}
        out["ctr_constant_baseline"][ratio] = {**base, "constant": round(train_mean[ratio], 4)}
    out["n_with_ctr"] = len(with_ctr)
    if any("ctr_in_interval" in r for r in with_ctr):
        t1, t2 = (float(x) for x in np.quantile([r["ctr_ref"]["circumference"] for r in with_ctr], [1 / 3, 2 / 3]))
        bands = ((0.0, t1, f"< {t1:.3f}"), (t1, t2, f"{t1:.3f}-{t2:.3f}"), (t2, 10.0, f">= {t2:.3f}"))
        out["ctr_interval"] = _interval_summary(with_ctr, n_boot, "ctr", bands,
                                                lambda r: r["ctr_ref"]["circumference"])
    from fetalscope.biometry.cardiothoracic import NORMAL_RANGES, range_flags

    out["outside_published_ranges"] = {
        "ranges": NORMAL_RANGES,
        "expert_reference": _count_flags([range_flags(r["ctr_ref"]) for r in rows]),
        "model": _count_flags([range_flags(r["ctr_pred"]) for r in with_ctr]),
    }
    return out


def _count_flags(flag_lists: list[list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {"images": len(flag_lists)}
    for flags in flag_lists:
        for f in {x.split(":")[0] for x in flags}:
            counts[f] = counts.get(f, 0) + 1
    return counts


def _train_mean_ctr(train: Sequence[SegSample]) -> dict[str, float]:
    """The mean reference CTR of the training images: the constant predictor's answer."""
    refs = [reference_ratios(s) for s in train]
    return {k: float(np.mean([r[k] for r in refs])) for k in RATIOS}


def _fmt(c: dict[str, Any] | None, digits: int = 3) -> str:
    if not c or c.get("estimate") is None:
        return "n/a"
    text = f"{c['estimate']:.{digits}f}"
    if c.get("lower") is not None and c.get("upper") is not None:
        text += f" ({c['lower']:.{digits}f} to {c['upper']:.{digits}f})"
    return text


def _interval_lines(report: dict[str, Any], prefix: str, label: str, items: str, unit: str, digits: int) -> list[str]:
    """One paragraph on the measurement interval's coverage on this split (nothing when the card has no rule)."""
    iv = report["summary"].get(f"{prefix}_interval")
    if not iv:
        return []
    nominal = (report.get("interval_rule") or {}).get("coverage")
    u = f" {unit}" if unit else ""
    bands = ", ".join(f"{b['reference']} " + ("n/a" if b["coverage"] is None else f"{b['coverage']:.2f}")
                      + f" ({b['n']})" for b in iv["by_reference"])
    return [f"{label} interval (card `inference.{prefix}_interval`, calibrated out of fold"
            + (f" for {nominal:.0%}" if nominal else "") + "): the reference lay inside for "
            f"{_fmt(iv['coverage'], 3)} of the {items}; mean width {_fmt(iv['mean_width'], digits)}{u}"
            + (f"; by reference: {bands}" if bands else "") + ".", ""]


def _flag_text(counts: dict[str, int]) -> str:
    parts = [f"{k.replace('ctr_', '').replace('_published_range', '')} {v}/{counts['images']}"
             for k, v in counts.items() if k != "images"]
    return ", ".join(parts) if parts else f"none of {counts['images']}"


def render_report_md(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [f"# Validation report: {report['bundle']}", "",
             f"Measurement: {report['measurement']}; split: {report['split']} ({s['n_images']} images, "
             f"{s['n_groups']} groups); 95% intervals by bootstrap over groups ({report['n_boot']} replicates). "
             f"Generated {report['created']} by `fetalscope.train.segmenter.measurement_report`.", ""]
    if report["measurement"] == "head":
        hc = s["hc_mm"]
        lines += ["| metric | value (95% CI) |", "| --- | --- |",
                  f"| HC mean absolute difference (mm) | {_fmt(hc['mean_absolute_difference'], 2)} |",
                  f"| HC mean difference, bias (mm) | {_fmt(hc['mean_difference'], 2)} |",
                  f"| HC Bland-Altman limits (mm) | {_fmt(hc['loa_low'], 2)} / {_fmt(hc['loa_high'], 2)} |",
                  f"| HC Pearson r | {_fmt(hc['pearson_r'], 4)} |",
                  f"| share within 2 mm | {_fmt(s['within_2mm'], 3)} |",
                  f"| ellipse Dice | {_fmt(s['ellipse_dice'], 4)} |",
                  f"| ellipse Hausdorff distance (mm) | {_fmt(s['hausdorff_mm'], 2)} |",
                  f"| raw mask Dice | {_fmt(s['mask_dice'], 4)} |",
                  f"| images with no head found | {s['n_no_head_found']} |", ""]
        lines += ["By reference head size:", "",
                  "| reference HC | images | mean absolute difference (mm) | bias (mm) |", "| --- | --- | --- | --- |"]

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        lines += [f"| {b['reference_hc']} | {b['n']} | {num(b['mean_absolute_difference_mm'])} | "
                  f"{num(b['mean_difference_mm'])} |" for b in s["by_reference_hc"]]
        lines += [""]
        lines += _interval_lines(report, "hc", "HC", "heads", "mm", 2)
        mad = s["hc_mm"]["mean_absolute_difference"]
        where = ""
        if mad.get("lower") is not None and mad.get("upper") is not None:
            inside = mad["lower"] <= 2.0 <= mad["upper"]
            where = (f" by the point estimate ({mad['estimate']:.2f} mm); its 95% interval "
                     f"({mad['lower']:.2f} to {mad['upper']:.2f} mm) {'contains' if inside else 'excludes'} 2.0 mm")
        lines += [f"Target: mean absolute HC difference <= 2.0 mm: "
                  f"{'met' if report['targets']['hc_mad_le_2mm'] else 'NOT met'}{where}.", ""]
    else:
        lines += ["## Segmentation (per structure)", "",
                  "| structure | ellipse IoU | ellipse Dice | mask IoU | mask Dice |",
                  "| --- | --- | --- | --- | --- |"]
        for st in ("heart", "thorax"):
            r = s[st]
            lines.append(f"| {st} | {_fmt(r['ellipse_iou'])} | {_fmt(r['ellipse_dice'])} | {_fmt(r['mask_iou'])} | "
                         f"{_fmt(r['mask_dice'])} |")
        lines += ["", "## CTR agreement with the expert ellipses", "",
                  "| ratio | predictor | MAE | bias | Bland-Altman low | Bland-Altman high | Pearson r |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for ratio in RATIOS:
            for label, block in (("model", s["ctr"][ratio]),
                                 (f"constant {s['ctr_constant_baseline'][ratio]['constant']}",
                                  s["ctr_constant_baseline"][ratio])):
                lines.append(f"| {ratio} | {label} | {_fmt(block['mae'], 4)} | {_fmt(block['bias'], 4)} | "
                             f"{_fmt(block['loa_low'], 4)} | {_fmt(block['loa_high'], 4)} | "
                             f"{_fmt(block['pearson_r'], 3)} |")
        t = report["targets"]
        lines += ["", f"Images with a CTR: {s['n_with_ctr']} of {s['n_images']}; rejected by the quality gate "
                      f"(no plane label given): {s['n_gate_rejected']} {s['gate_reasons']}.", "",
                  "Outside the published ranges the card cites (flags, not findings): expert references "
                  f"{_flag_text(s['outside_published_ranges']['expert_reference'])}; model "
                  f"{_flag_text(s['outside_published_ranges']['model'])}.", "",
                  *_repeatability_lines(s.get("reference_repeatability"), s["ctr"]["circumference"]["mae"]),
                  *_interval_lines(report, "ctr", "Circumference-CTR", "images", "", 4),
                  "Targets: heart ellipse IoU >= 0.80 "
                  f"{'met' if t['heart_iou_ge_0.80'] else 'NOT met'}; thorax ellipse IoU >= 0.90 "
                  f"{'met' if t['thorax_iou_ge_0.90'] else 'NOT met'}; circumference CTR MAE <= 0.02 "
                  f"{'met' if t['ctr_mae_le_0.02'] else 'NOT met'}.", ""]
    tm = report["timing"]
    lines += ["## Speed", "", f"CPU inference (preprocess + network + ellipse fit), {tm['runtime']}, "
              f"{tm['threads']} thread(s), shared machine: median {tm['median_ms']:.0f} ms, "
              f"mean {tm['mean_ms']:.0f} ms per image."]
    onnx = report.get("timing_onnx")
    if onnx and onnx.get("median_ms") is not None:
        diff = onnx["max_relative_circumference_difference_vs_torch"]
        lines.append(f"ONNX Runtime twin: median {onnx['median_ms']:.0f} ms per image on {onnx['images']} images; "
                     f"largest relative circumference difference from PyTorch {diff:.2e}.")
    lines.append("")
    for plot in report.get("plots", []):
        lines.append(f"![{plot}]({plot})")
    return "\n".join(lines) + "\n"


def _repeatability_lines(rep: dict[str, Any] | None, mae: dict[str, Any]) -> list[str]:
    """The report's paragraph on how repeatable the expert CTR is (:mod:`.repeatability`), beside the model's MAE."""
    if not rep:
        return []
    if not rep["pairs"]:
        return [f"Reference repeatability: no two of the bundle's {rep['images']} images share a duplicate group, so "
                "it cannot be measured here.", ""]
    ident = rep["identical_pairs"]
    same = (f"; the {len(ident)} pixel-identical pairs (one image annotated twice) by "
            f"{rep['identical_mean_absolute_difference']:.4f}" if ident else "; none is pixel-identical")
    return ["## How repeatable the reference is", "",
            f"Among the bundle's {rep['images']} images (all splits), {rep['groups_with_pairs']} duplicate groups hold "
            f"{rep['pairs']} pairs of near-identical frames. Their expert {rep['ratio']} CTRs differ by "
            f"{rep['mean_absolute_difference']:.4f} on average{same}. A model that answers alike for both images of "
            f"a pair keeps an error of about {rep['implied_per_image_mae']:.4f} (that mean / sqrt 2) against single "
            "references where the pairs differ by annotation alone; near-identical frames can also differ in cardiac "
            "phase, so this overstates the annotation part. Read the model's MAE above "
            f"({mae['estimate']:.4f}) and the constant predictor's beside it "
            "(`fetalscope.train.segmenter.repeatability`).", ""]


def _plots(report: dict[str, Any], rows: list[dict[str, Any]], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    if report["measurement"] == "head":
        ok = [r for r in rows if r["found"]]
        y = np.array([r["hc_ref_mm"] for r in ok])
        p = np.array([r["hc_pred_mm"] for r in ok])
        pairs = [("hc_bland_altman.png", "HC (mm)", y, p)]
    else:
        ok = [r for r in rows if "ctr_pred" in r]
        y = np.array([r["ctr_ref"]["circumference"] for r in ok])
        p = np.array([r["ctr_pred"]["circumference"] for r in ok])
        pairs = [("ctr_bland_altman.png", "CTR (circumference)", y, p)]
    for name, label, y, p in pairs:
        if len(y) < 2:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].scatter(y, p, s=10)
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        axes[0].plot([lo, hi], [lo, hi], "k--", lw=1)
        axes[0].set_xlabel(f"reference {label}")
        axes[0].set_ylabel(f"predicted {label}")
        d, mean = p - y, (p + y) / 2
        axes[1].scatter(mean, d, s=10)
        sd = d.std(ddof=1)
        for v, style in ((d.mean(), "-"), (d.mean() - 1.96 * sd, "--"), (d.mean() + 1.96 * sd, "--")):
            axes[1].axhline(v, color="k", ls=style, lw=1)
        axes[1].set_xlabel(f"mean of predicted and reference {label}")
        axes[1].set_ylabel("predicted - reference")
        axes[1].set_title("Bland-Altman")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


def evaluate_bundle(folder: str | Path, *, split: str = "validation", n_boot: int = 1000, runtime: str = "torch",
                    threads: int | None = None, update_card: bool = True,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate a biometry bundle on its held-out split; writes report.json/report.md/plots into the
    bundle folder and the headline metrics into its card. Returns the report."""
    import datetime as _dt

    import torch

    folder = Path(folder)
    bundle = load_seg_bundle(folder)
    what = bundle.measurement
    by_split = split_samples(folder, what)
    samples = by_split.get(split, [])
    m = Measurer(what, bundle, runtime=runtime)
    log(f"evaluating {bundle.name} ({what}) on {len(samples)} {split} images")
    rows = []
    for i, s in enumerate(samples):
        rows.append(evaluate_head_sample(m, s) if what == "head" else evaluate_ctr_sample(m, s))
        if (i + 1) % 25 == 0:
            log(f"  {i + 1}/{len(samples)}")
    secs = np.array([r["seconds"] for r in rows]) * 1000
    report: dict[str, Any] = {
        "bundle": bundle.name, "measurement": what, "split": split, "n_boot": n_boot,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "timing": {"runtime": m.predictor.name, "threads": threads or torch.get_num_threads(),
                   "median_ms": float(np.median(secs)), "mean_ms": float(secs.mean()),
                   "note": "wall clock on a 2-core machine shared with other jobs; excludes image decoding"},
    }
    if what == "head":
        summary = summarise_head(rows, n_boot)
        report["targets"] = {"hc_mad_le_2mm": bool(summary["hc_mm"]["mean_absolute_difference"]["estimate"] is not None
                                                   and summary["hc_mm"]["mean_absolute_difference"]["estimate"] <= 2.0)}

    else:
        summary = summarise_ctr(rows, _train_mean_ctr(by_split.get("train", [])), n_boot)
        summary["reference_repeatability"] = reference_repeatability([s for ss in by_split.values() for s in ss])

        def est(c: dict[str, Any]) -> float:
            return c["estimate"] if c and c.get("estimate") is not None else math.nan

        report["targets"] = {"heart_iou_ge_0.80": bool(est(summary["heart"]["ellipse_iou"]) >= 0.80),
                             "thorax_iou_ge_0.90": bool(est(summary["thorax"]["ellipse_iou"]) >= 0.90),
                             "ctr_mae_le_0.02": bool(est(summary["ctr"]["circumference"]["mae"]) <= 0.02)}
    if m.interval_rule is not None:
        report["interval_rule"] = m.interval_rule.to_dict()
    if bundle.onnx_path is not None:
        report["timing_onnx"] = _onnx_check(bundle, what, samples[:20], rows[:20])
    report["summary"] = summary
    report["per_image"] = rows
    report["plots"] = _plots(report, rows, folder)
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(render_report_md(report), encoding="utf-8")
    if update_card:
        _update_card(folder, report)
    log(f"wrote {folder / 'report.json'}")
    return report


def _onnx_check(bundle: Any, what: str, samples: list[SegSample], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Time the ONNX twin on a few images and compare its ellipses with PyTorch's."""
    m = Measurer(what, bundle, runtime="onnx")
    times, diffs = [], []
    main = "head" if what == "head" else "thorax"
    for s, row in zip(samples, rows, strict=True):
        image = load_image(s.path)
        t0 = time.perf_counter()
        e = m.ellipses(image)[main]
        times.append((time.perf_counter() - t0) * 1000)
        ref = row.get("ellipse") if what == "head" else row.get("thorax")
        if e is not None and ref is not None:
            diffs.append(abs(e.circumference() / Ellipse.from_dict(ref).circumference() - 1))
    return {"runtime": "onnx", "images": len(times), "median_ms": float(np.median(times)) if times else None,
            "max_relative_circumference_difference_vs_torch": float(max(diffs)) if diffs else None}


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    s = report["summary"]
    keep = ("estimate", "lower", "upper")

    def short(c: dict[str, Any]) -> dict[str, Any]:
        return {"value": c.get("estimate"), "ci_low": c.get("lower"), "ci_high": c.get("upper")} \
            if c.get("estimate") is not None else {k: c.get(k) for k in keep}

    if report["measurement"] == "head":
        return {"validation_images": s["n_images"], "hc_mad_mm": short(s["hc_mm"]["mean_absolute_difference"]),
                "hc_bias_mm": short(s["hc_mm"]["mean_difference"]), "ellipse_dice": short(s["ellipse_dice"]),
                "hausdorff_mm": short(s["hausdorff_mm"]),
                **({"hc_interval_coverage": short(s["hc_interval"]["coverage"]),
                    "hc_interval_mean_width_mm": short(s["hc_interval"]["mean_width"])} if s.get("hc_interval")
                   else {})}
    return {"validation_images": s["n_images"], "heart_ellipse_iou": short(s["heart"]["ellipse_iou"]),
            "thorax_ellipse_iou": short(s["thorax"]["ellipse_iou"]),
            "ctr_circumference_mae": short(s["ctr"]["circumference"]["mae"]),
            "ctr_circumference_mae_constant_baseline": short(s["ctr_constant_baseline"]["circumference"]["mae"]),
            "ctr_circumference_bias": short(s["ctr"]["circumference"]["bias"]),
            **({"ctr_interval_coverage": short(s["ctr_interval"]["coverage"]),
                "ctr_interval_mean_width": short(s["ctr_interval"]["mean_width"])} if s.get("ctr_interval") else {}),
            **({"ctr_reference_repeatability": {k: s["reference_repeatability"][k] for k in
                                                ("pairs", "mean_absolute_difference", "implied_per_image_mae")}}
               if s.get("reference_repeatability") else {})}


def _update_card(folder: Path, report: dict[str, Any]) -> None:
    card = read_card_file(folder)
    card["metrics"] = _headline(report)
    card["speed"] = {k: report["timing"][k] for k in ("runtime", "threads", "median_ms")}
    if report.get("timing_onnx"):
        card["speed"]["onnx_median_ms"] = report["timing_onnx"]["median_ms"]
    write_card_files(folder, card, render_seg_card_md(card))
