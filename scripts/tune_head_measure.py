#!/usr/bin/env python
"""Explore the head ellipse's post-processing on cached network outputs (HC18 early_stop / validation).

    python scripts/tune_head_measure.py cache [--bundle DIR] [--splits early_stop validation]  # network, once
    python scripts/tune_head_measure.py sweep [--bundle DIR] --split early_stop [--levels 0.5 0.55]
    python scripts/tune_head_measure.py report [--bundle DIR] [--out docs/head_postprocessing.md]
    python scripts/tune_head_measure.py cache --bundle runs/head-cvK --splits fold   # each cross-validation model
    python scripts/tune_head_measure.py oof --folds runs/head-cv0 ... [--out docs/head_oof.md]  # chosen out of fold
    python scripts/tune_head_measure.py interval --folds runs/head-cv0 ... [--adopt]  # HC interval, out of fold
    python scripts/tune_head_measure.py recipes --folds runs/head-cv0 ... --folds runs/head-cv0-avg3 ... \
        [--out docs/head_oof_recipes.md]   # training recipes against the shipped one, out of fold
    python scripts/tune_head_measure.py input-scale --folds runs/head-cv0 ... [--scale 2] \
        [--out docs/head_oof_input_scale.md]   # views run on a larger input than the bundle's, out of fold
    python scripts/tune_head_measure.py combine --folds runs/head-cv0 ... --folds runs/head-cv0-px ... \
        [--out docs/head_oof_combination.md]   # two networks: maps or ellipses averaged, out of fold

The cache (``/tmp/fetalscope-head-tune/<bundle>``) holds per image the head probability maps of the plain image, its
mirror image and crops around the plain ellipse (margins 0.15, 0.25, 0.35, 0.5) with the crop offsets, so
every variant of the ellipse step can be scored in seconds. Settings are chosen on ``early_stop`` only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_folds import (  # noqa: E402
    apply_correction,
    cross_fitted_correction,
    fit_correction,
    fold_set_recipe,
    need_fold_sets,
    need_one_fold_set,
    opencv_fitter,
    pool_folds,
    recipe_names,
    write_card_inference,
    write_report,
)

CACHE_ROOT = Path(os.environ.get("FETALSCOPE_TUNE_CACHE", "/tmp/fetalscope-head-tune"))
BUNDLE = "src/fetalscope/models/bundled/hc18-head"
VIEW_SETS = {"current": ["plain", "flip", "zoom0.15", "zoom0.35"], "plain": ["plain"],
             "plain+flip": ["plain", "flip"],
             "+zoom0.25": ["plain", "flip", "zoom0.15", "zoom0.25", "zoom0.35"],
             "+zoomflips": ["plain", "flip", "zoom0.15", "zoom0.35", "zoomflip0.15", "zoomflip0.35"]}
SIZES = ((0.0, 100.0, "< 100 mm"), (100.0, 200.0, "100-200 mm"), (200.0, 1e9, ">= 200 mm"))
MARGINS = (0.15, 0.25, 0.35, 0.5)


def cache_dir(bundle: str) -> Path:
    return CACHE_ROOT / Path(bundle).resolve().name


def cache(splits: list[str], bundle: str = BUNDLE) -> None:
    from fetalscope.biometry.ellipse import fit_ellipse
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    folder = Path(bundle)
    m = Measurer("head", str(folder), runtime="onnx")
    CACHE = cache_dir(bundle)
    CACHE.mkdir(parents=True, exist_ok=True)
    for split in splits:
        samples = validation_samples(folder, "head", split)
        meta = []
        for i, s in enumerate(samples):
            image = load_image(s.path)
            shape = (image.height, image.width)
            plain = m.probabilities(image, flip=False)["head"]
            mirror = m._with_mirror(image, plain)
            base = fit_ellipse(plain, out_shape=shape)
            arrays = {"plain": plain, "flip": mirror}
            crops = {}
            for margin in MARGINS:
                crop, x0, y0 = m.crop_around(image, base, margin)
                arrays[f"zoom{margin}"] = m.probabilities(crop, flip=False)["head"]
                cimg = replace(crop, pixels=crop.pixels[:, ::-1].copy())
                arrays[f"zoomflip{margin}"] = m.probabilities(cimg, flip=False)["head"][:, ::-1].copy()
                crops[str(margin)] = [x0, y0, crop.width, crop.height]
            np.savez_compressed(CACHE / f"{s.name}.npz", **arrays)
            meta.append({"name": s.name, "group": s.group, "hc_ref_mm": float(s.meta["hc_mm"]),
                         "px": float(s.meta["pixel_size_mm"]), "shape": list(shape), "crops": crops,
                         "ref": s.ellipses["head"]})
            if (i + 1) % 25 == 0:
                print(split, i + 1, len(samples), flush=True)
        (CACHE / f"{split}.json").write_text(json.dumps(meta))


def load(bundle: str, split: str) -> list[dict]:
    folder = cache_dir(bundle)
    meta = json.loads((folder / f"{split}.json").read_text())
    for m in meta:
        m["arr"] = dict(np.load(folder / f"{m['name']}.npz"))
    return meta


def _shipped_fit(xy: np.ndarray):
    """The Measurer's fitter (:func:`fetalscope.biometry.ellipse.fit_ellipse_points`, OpenCV ``fitEllipse``)."""
    from fetalscope.biometry.ellipse import fit_ellipse_points

    return fit_ellipse_points(xy)


def _radial_fit(loss: str = "linear", scale_px: float = 1.0):
    """A geometric fitter: least squares (``loss``, e.g. soft_l1 with ``scale_px``) of each point's distance to the
    ellipse along the ray from its centre, started from OpenCV's algebraic fit."""
    def fit(xy: np.ndarray):
        from scipy.optimize import least_squares

        from fetalscope.biometry.ellipse import Ellipse, fit_ellipse_points

        start = fit_ellipse_points(xy)
        if start is None:
            return None

        def residuals(q: np.ndarray) -> np.ndarray:
            cx, cy, log_a, log_b, theta = q
            dx, dy = xy[:, 0] - cx, xy[:, 1] - cy
            u = dx * np.cos(theta) + dy * np.sin(theta)
            v = -dx * np.sin(theta) + dy * np.cos(theta)
            r = np.sqrt((u / np.exp(log_a)) ** 2 + (v / np.exp(log_b)) ** 2) + 1e-12
            return np.hypot(u, v) * (1 - 1 / r)

        q0 = [start.cx, start.cy, np.log(start.a), np.log(start.b), np.deg2rad(start.angle_deg)]
        q = least_squares(residuals, q0, loss=loss, f_scale=scale_px, method="lm" if loss == "linear" else "trf").x
        return Ellipse(float(q[0]), float(q[1]), float(np.exp(q[2])), float(np.exp(q[3])),
                       float(np.rad2deg(q[4]))).normalised()
    return fit


FITTERS = {  # name: (description, fitter of N x 2 image-pixel points); "opencv" is the shipped one
    "opencv": ("OpenCV fitEllipse (algebraic least squares; shipped)", _shipped_fit),
    "ams": ("OpenCV fitEllipseAMS (approximate mean square)", opencv_fitter("fitEllipseAMS")),
    "direct": ("OpenCV fitEllipseDirect (Fitzgibbon's direct fit)", opencv_fitter("fitEllipseDirect")),
    "radial": ("geometric: least squares of the radial distance to the ellipse", _radial_fit()),
    "radial-robust": ("geometric, soft-L1 loss (scale 1 px)", _radial_fit("soft_l1", 1.0)),
}


def view_fit(m: dict, view: str, level: float = 0.5, sharpness: float = 0.0, fitter: str = "opencv"):
    """The ellipse of one cached view in original image pixels, as the Measurer fits it: outline at ``level``,
    points on the model grid's frame dropped when enough others remain, least squares (``fitter``: a
    :data:`FITTERS` name). ``VIEW@S`` is ``VIEW`` run on an input ``S`` times the bundle's (:func:`scale_cache`)."""
    from fetalscope.biometry.ellipse import fit_points

    big_h, big_w = m["shape"]
    p = m["arr"][view]
    h, w = p.shape
    if view.startswith("zoom"):
        x0, y0, cw, ch = m["crops"][view.split("@")[0].replace("zoomflip", "").replace("zoom", "")]
        sx, sy = cw / w, ch / h
    else:
        x0 = y0 = 0.0
        sx, sy = big_w / w, big_h / h
    xy = fit_points(p, level=level, min_sharpness=sharpness, scale_xy=(sx, sy), offset=(x0, y0))
    if xy is None:
        return None
    return FITTERS[fitter][1](xy)


def predictions(meta: list[dict], views: list[str], level: float, sharpness: float = 0.0,
                fitter: str = "opencv") -> np.ndarray:
    """Predicted HC (mm) per cached head: the mean ellipse of ``views`` at outline ``level``."""
    from fetalscope.biometry.ellipse import mean_ellipse

    return np.array([mean_ellipse([view_fit(m, v, level, sharpness, fitter) for v in views]).circumference()
                     * m["px"] for m in meta])


def by_size(diff: np.ndarray, ref: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """HC mean absolute difference and bias (mm) of ``diff`` (prediction - reference), overall and by size."""
    out = {"all": (float(np.abs(diff).mean()), float(diff.mean()), len(diff))}
    for lo, hi, name in SIZES:
        sel = (ref >= lo) & (ref < hi)
        out[name] = ((float(np.abs(diff[sel]).mean()), float(diff[sel].mean()), int(sel.sum())) if sel.any()
                     else (float("nan"), float("nan"), 0))
    return out


def score(meta: list[dict], views: list[str], level: float,
          sharpness: float = 0.0) -> dict[str, tuple[float, float, int]]:
    """HC mean absolute difference and bias (mm) with the mean ellipse of ``views``, overall and by size."""
    ref = np.array([m["hc_ref_mm"] for m in meta])
    return by_size(predictions(meta, views, level, sharpness) - ref, ref)


def sweep(bundle: str, split: str, variants: list[tuple[str, float, float]]) -> tuple[list[str], dict]:
    """Markdown table lines of every (view set, level, outline sharpness) on ``split`` and their scores."""
    meta = load(bundle, split)
    lines = [f"{Path(bundle).name}, {split} ({len(meta)} heads): HC mean absolute difference in mm (bias)", "",
             "| views | level | min outline sharpness | all | " + " | ".join(n for _, _, n in SIZES) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in SIZES) + " |"]
    scores = {}
    for name, level, sharpness in variants:
        r = scores[(name, level, sharpness)] = score(meta, VIEW_SETS[name], level, sharpness)
        lines.append(f"| {name} | {level} | {sharpness} | " + " | ".join(f"{r[k][0]:.3f} ({r[k][1]:+.2f})"
                                                               for k in ["all", *(n for _, _, n in SIZES)]) + " |")
    return lines, scores


def axis_errors(bundle: str, split: str, level: float = 0.5) -> list[str]:
    """Where the HC error of heads >= 200 mm comes from: the semi-axis errors (mm, current views) and the heads
    with an HC error over 5 mm."""
    from fetalscope.biometry.ellipse import Ellipse, mean_ellipse

    rows = []
    for m in load(bundle, split):
        if m["hc_ref_mm"] < 200:
            continue
        e = mean_ellipse([view_fit(m, v, level) for v in VIEW_SETS["current"]]).normalised()
        ref = Ellipse.from_dict(m["ref"]).normalised()
        rows.append((m["name"], e.circumference() * m["px"] - m["hc_ref_mm"], (e.a - ref.a) * m["px"],
                     (e.b - ref.b) * m["px"]))
    if not rows:
        return []
    d = np.array([r[1:] for r in rows])
    big = [r for r in rows if abs(r[1]) > 5]
    return [f"{split}, heads >= 200 mm ({len(rows)}): HC bias {d[:, 0].mean():+.2f} mm; major semi-axis (OFD / 2) "
            f"bias {d[:, 1].mean():+.2f} mm, minor semi-axis (BPD / 2) bias {d[:, 2].mean():+.2f} mm; "
            f"{len(big)} heads with |HC difference| > 5 mm"
            + (": " + ", ".join(f"{n} ({x:+.1f} mm; major {a:+.1f}, minor {b:+.1f})" for n, x, a, b in big) if big
               else "") + "."]


def report(bundle: str, out: Path, levels: list[float], view_sets: list[str], sharpnesses: list[float]) -> None:
    """Two families of variants, tried in this order: the outline level with the view set, then the outline
    sharpness (current views, level 0.5). In each the variant with the lowest early_stop mean absolute difference
    is chosen, then it and the earlier setting (current views, level 0.5, every outline point) are scored once on
    validation; a family's choice is adopted only when validation improves. Writes the tables and decisions."""
    import json as _json

    card = _json.loads((Path(bundle) / "card.json").read_text())
    refit = (card.get("training") or {}).get("refit")
    current = ("current", 0.5, 0.0)
    families = {"outline level and views": [(name, level, 0.0) for name in view_sets for level in levels],
                "outline sharpness": [current, *(("current", 0.5, s) for s in sharpnesses if s > 0)]}
    text = ["# Head ellipse post-processing: outline level, views and outline sharpness", "",
            f"Written by `scripts/tune_head_measure.py report` for bundle `{Path(bundle).name}` from the network's "
            "probability maps cached per image (the image, its mirror image, crops around the head with margins "
            f"{', '.join(str(m) for m in MARGINS)} and their mirrors). The earlier setting: views "
            f"{', '.join(VIEW_SETS['current'])} (`current`), outline level 0.5, every outline point fitted. "
            "Min outline sharpness s > 0 fits only the outline points where the probability map's gradient is at "
            "least s times the outline's median (`fetalscope.biometry.ellipse.sharp_outline`).", ""]
    if refit:
        text += ["Caution: this bundle was refit (card `training.refit`: \"" + str(refit) + "\"), so the "
                 "early_stop split is in-sample for its weights: its errors, and their bias, are not those of unseen "
                 "heads, and a setting that corrects its bias need not carry over.", ""]
    for family, variants in families.items():
        es_lines, es_scores = sweep(bundle, "early_stop", variants)
        chosen = min(es_scores, key=lambda k: es_scores[k]["all"][0])
        text += [f"## {family[0].upper() + family[1:]}", "", "Early-stopping split (the choice is made here):", "",
                 *es_lines, "", f"Chosen: views `{chosen[0]}`, level {chosen[1]}, min outline sharpness {chosen[2]} "
                 f"({es_scores[chosen]['all'][0]:.3f} mm against {es_scores[current]['all'][0]:.3f} mm for the "
                 "earlier setting)."]
        if chosen == current:
            text += ["", "Decision: nothing to change."]
            continue
        val_lines, val_scores = sweep(bundle, "validation", [current, chosen])
        before, after = val_scores[current]["all"][0], val_scores[chosen]["all"][0]
        text += ["", "Validation split (measured once, the earlier and the chosen setting):", "", *val_lines, "",
                 (f"Decision: adopted (validation {before:.3f} -> {after:.3f} mm); the bundle's card carries it as "
                  "`inference.level` / `inference.min_outline_sharpness`." if after < before else
                  f"Decision: not adopted (validation {before:.3f} mm with the earlier setting, {after:.3f} mm with "
                  "the chosen one)."), ""]
    text += ["## Where the large heads' error comes from (earlier setting)", "",
             *axis_errors(bundle, "early_stop"), "", *axis_errors(bundle, "validation")]
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


# ---- out-of-fold choices (cross-validation models, ``train_biometry.py train head --cv-fold K N``) ---------
SHIPPED = ("current", 0.5, 0.7)  # views, outline level, min outline sharpness of the shipped hc18-head
CORRECTIONS = {"none": "no correction",
               "scale": "HC x (1 - mean relative difference)",
               "linear": "HC - (a + b HC), a and b by least squares on the difference"}


def load_oof(folds: list[str]) -> list[dict]:
    """The cached held-out (``fold``) heads of every cross-validation model, each tagged with its fold."""
    return pool_folds([load(folder, "fold") for folder in folds])


def _row(label: str, diff: np.ndarray, ref: np.ndarray) -> str:
    r = by_size(diff, ref)
    return f"| {label} | " + " | ".join(f"{r[k][0]:.3f} ({r[k][1]:+.2f})" if r[k][2] else "n/a"
                                        for k in ["all", *(n for _, _, n in SIZES)]) + " |"


def _gain(before: np.ndarray, after: np.ndarray, groups: list[str]) -> str:
    """Mean reduction of the absolute HC difference (mm) with its group-bootstrap 95% interval."""
    from fetalscope.evaluate.agreement import mean_ci

    c = mean_ci(np.abs(before) - np.abs(after), groups, n_boot=1000)
    return f"{c['estimate']:+.3f} mm (95% CI {c['lower']:+.3f} to {c['upper']:+.3f})"


def recipes_report(fold_sets: list[list[str]], out: Path, of_folds: int = 5) -> None:
    """Training recipes compared out of fold: each ``--folds`` set is one recipe's cross-validation (the same
    folds: one ``--split-seed``), every held-out head measured with the shipped setting (:data:`SHIPPED`: views,
    outline level and sharpness) from the caches, and each recipe's gain over the first set (the shipped recipe)
    with its 95% interval (bootstrap over subjects). ``of_folds``: the cross-validation's N; fewer fold models
    than that make the report say that only their heads are scored. Nothing is chosen here; the rule that decides
    is written where the recipe is tried (the model card)."""
    metas = [sorted(load_oof(folds), key=lambda m: m["name"]) for folds in fold_sets]
    names = recipe_names(metas, fold_sets, "heads")
    views, level, sharpness = _vls(SHIPPED)
    ref = np.array([m["hc_ref_mm"] for m in metas[0]])
    groups = [m["group"] for m in metas[0]]
    diffs = [predictions(meta, views, level, sharpness) - ref for meta in metas]
    lines = ["# Training recipes compared out of fold (hc18-head)", "",
             f"Written by `scripts/tune_head_measure.py recipes`. Each recipe's {of_folds}-fold cross-validation "
             f"(`scripts/train_biometry.py train head --cv-fold K {of_folds} --epochs 17 --split-seed 0 ...`, the "
             f"same folds for every recipe) predicts each of the {len(ref)} "
             + ("train and early-stop heads" if len(fold_sets[0]) >= of_folds else
                f"heads held out by its first {len(fold_sets[0])} fold{'s' * (len(fold_sets[0]) > 1)} (the other "
                "folds' heads are not scored: a "
                "partial cross-validation)")
             + " with a network that never trained on it. Every head is measured as shipped: the mean ellipse of "
             f"the views {', '.join(views)}, outline level {level:g}, sharpness {sharpness:g}. Cells: HC mean "
             "absolute difference (bias), mm. "
             "Nothing is chosen from this table.", "",
             "| recipe | all | " + " | ".join(n for _, _, n in SIZES) + " |",
             "| --- | --- | " + " | ".join("---" for _ in SIZES) + " |"]
    lines += [_row(name, diff, ref) for name, diff in zip(names, diffs, strict=True)]
    counts = ", ".join(f"{n} {int(((ref >= lo) & (ref < hi)).sum())}" for lo, hi, n in SIZES)
    lines += ["", f"Sizes by the reference HC; heads: {counts}."]
    for name, diff in zip(names[1:], diffs[1:], strict=True):
        lines += ["", f"{name} against {names[0]}: absolute HC difference reduced by {_gain(diffs[0], diff, groups)} "
                      "(bootstrap over subjects)."]
        for k in sorted({m["fold"] for m in metas[0]}):
            sel = np.array([m["fold"] == k for m in metas[0]])
            lines.append(f"- fold {k} ({int(sel.sum())} heads): {np.abs(diffs[0][sel]).mean():.3f} -> "
                         f"{np.abs(diff[sel]).mean():.3f} mm")
    write_report(out, lines)


# ---- views run on a larger input than the bundle's (rule H3, docs/head_oof_input_scale.md) -------------------
SCALE_MIN_GAIN_MM = 0.010  # rule H3: a validation look needs this out-of-fold gain and a lower >= 200 mm error


def scale_views(scale: float) -> dict[str, list[str]]:
    """Rule H3's variants (name: views): ``VIEW@S`` is the view on an input ``S`` times the bundle's."""
    shipped = VIEW_SETS["current"]
    hi = [f"plain@{scale:g}", f"zoom0.15@{scale:g}", f"zoom0.35@{scale:g}"]
    return {"shipped": shipped,
            f"shipped + the image at {scale:g}x": [*shipped, hi[0]],
            f"the image at {scale:g}x instead of plain": [hi[0], *shipped[1:]],
            f"the crops at {scale:g}x instead of 1x": [*shipped[:2], *hi[1:]],
            f"shipped + the image and crops at {scale:g}x": [*shipped, *hi[1:], hi[0]],
            f"(probe) the image at {scale:g}x alone": [hi[0]],
            "(probe) plain alone": ["plain"]}


def scaled_input_size(input_size: Sequence[int], scale: float) -> tuple[int, int]:
    """The bundle's input size times ``scale``; refused unless both sides stay multiples of 32 (the encoder's
    stride), so that every stride-2 convolution sees the same even sizes and paddings as in training."""
    size = tuple(int(round(v * scale)) for v in input_size)
    if scale <= 0 or any(v % 32 or abs(v - d * scale) > 1e-6 for v, d in zip(size, input_size, strict=True)):
        raise SystemExit(f"--scale {scale:g} gives an input of {size[0]} x {size[1]} from {input_size[0]} x "
                         f"{input_size[1]}: both sides must be multiples of 32")
    return size  # type: ignore[return-value]


def scale_cache(folder: str, scale: float) -> Path:
    """Cache (``<cache>/<fold>@x<S>``) the head maps of the plain image and of the 0.15 and 0.35 crops (offsets as
    in the fold's 1x cache) with the network run on an input ``scale`` times the bundle's, in PyTorch (the ONNX
    twin has a fixed input size). Needs the fold's 1x cache (``cache --bundle DIR --splits fold``)."""
    from fetalscope.biometry.measure import Measurer, crop_image
    from fetalscope.data.transforms import to_tensor
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    out = CACHE_ROOT / f"{Path(folder).resolve().name}@x{scale:g}"
    if (out / "fold.done").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    m = Measurer("head", folder, runtime="torch")
    pre = replace(m.bundle.preprocess, input_size=scaled_input_size(m.bundle.preprocess.input_size, scale))
    head = m.bundle.structures.index("head")
    samples = {s.name: s for s in validation_samples(Path(folder), "head", "fold")}
    meta = json.loads((cache_dir(folder) / "fold.json").read_text())
    for rec in meta:
        image = load_image(samples[rec["name"]].path)
        views = {"plain": image}
        for margin in ("0.15", "0.35"):  # the 1x cache's crops, so that only the input size differs
            views[f"zoom{margin}"] = crop_image(image, *rec["crops"][margin])
        arrays = {f"{name}@{scale:g}": m._sigmoid(to_tensor(img, pre).unsqueeze(0).numpy())[0][head].astype(np.float32)
                  for name, img in views.items()}
        np.savez_compressed(out / f"{rec['name']}.npz", **arrays)
    (out / "fold.done").write_text("ok")
    return out


def scale_report(folds: list[str], scale: float, out: Path) -> None:
    """Rule H3 out of fold: the shipped views beside views run on an input ``scale`` times the bundle's (each fold
    network on its held-out heads; shipped outline level and sharpness). The best variant goes to validation only
    when it beats the shipped views by :data:`SCALE_MIN_GAIN_MM` overall and on heads of 200 mm or more; the
    validation look itself is not made here."""
    per_fold = []
    for folder in folds:
        hi = scale_cache(folder, scale)
        records = load(folder, "fold")
        for rec in records:
            rec["arr"].update(np.load(hi / f"{rec['name']}.npz"))
        per_fold.append(records)
    oof = pool_folds(per_fold)
    ref = np.array([m["hc_ref_mm"] for m in oof])
    groups = [m["group"] for m in oof]
    _, level, sharpness = _vls(SHIPPED)
    variants = scale_views(scale)
    diffs = {name: predictions(oof, views, level, sharpness) - ref for name, views in variants.items()}
    base = diffs["shipped"]
    large = ref >= SIZES[-1][0]
    candidates = [k for k in diffs if k != "shipped" and not k.startswith("(probe)")]
    best = min(candidates, key=lambda k: np.abs(diffs[k]).mean())
    gain = np.abs(base).mean() - np.abs(diffs[best]).mean()
    large_lower = np.abs(diffs[best][large]).mean() < np.abs(base[large]).mean()
    h, w = json.loads((Path(folds[0]) / "card.json").read_text())["preprocess"]["input_size"]
    lines = ["# Head views on a larger input, out of fold (hc18-head)", "",
             f"Written by `scripts/tune_head_measure.py input-scale --scale {scale:g}`. Each of the {len(folds)} "
             f"cross-validation networks measures the {len(ref)} train and early-stop heads it never trained on. "
             f"`VIEW@{scale:g}` is a view run on an input {scale:g} times the bundle's ({h} x {w} -> "
             f"{int(h * scale)} x {int(w * scale)}; the same crops as at 1x, in PyTorch), so a head that fills the "
             "frame is seen at a finer resolution, which the crop views cannot give it (their crops are the whole "
             f"image or more). Outline level {level:g}, sharpness {sharpness:g}; each measurement is the mean "
             "ellipse of its views. Cells: HC mean absolute difference (bias), mm.", "",
             "| variant | views | all | " + " | ".join(n for _, _, n in SIZES) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in SIZES) + " |"]
    for name, diff in diffs.items():
        lines.append(_row(f"{name} | {', '.join(variants[name])}", diff, ref))
    counts = ", ".join(f"{n} {int(((ref >= lo) & (ref < hi)).sum())}" for lo, hi, n in SIZES)
    lines += ["", f"Sizes by the reference HC; heads: {counts}.", "",
              f"Rule H3 (written before these numbers): the best variant goes to one validation look only if it beats "
              f"the shipped views by at least {SCALE_MIN_GAIN_MM} mm out of fold and has the lower error on heads of "
              "200 mm or more.", "",
              f"Best variant: {best}, gain {_gain(base, diffs[best], groups)} (bootstrap over subjects); >= 200 mm "
              f"{np.abs(base[large]).mean():.3f} -> {np.abs(diffs[best][large]).mean():.3f} mm.", "",
              "Decision: " + ("a validation candidate." if gain >= SCALE_MIN_GAIN_MM and large_lower else
                              "not adopted; validation not consulted. The networks do not carry over to an input "
                              "larger than they were trained on: see the probe rows' biases by head size.")]
    write_report(out, lines)


# ---- two networks combined: their maps averaged (shipped) or their ellipses (rule E1) ---------------------------
COMBINE_MIN_GAIN_MM = 0.010  # rule E1: averaging ellipses goes to validation only with this out-of-fold gain


def _pair_records(fold_a: str, fold_b: str) -> list[tuple[dict, dict, dict]]:
    """For each head held out by fold networks ``fold_a`` and ``fold_b`` (same fold, two recipes or seeds): three
    cached records with the same crops, as an ensemble of the two would measure it: network a's views, network b's
    and the mean of their maps per view. The crops lie around the ellipse of the mean plain map (the ensemble's
    base ellipse), so both networks see the same windows; their maps are cached in ``<cache>/<a>+<b>`` (needs both
    folds' 1x caches)."""
    from fetalscope.biometry.ellipse import fit_ellipse
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    views, level, sharpness = _vls(SHIPPED)
    margins = [v.removeprefix("zoom") for v in views if v.startswith("zoom")]
    recs_a, recs_b = load(fold_a, "fold"), load(fold_b, "fold")
    if [r["name"] for r in recs_a] != [r["name"] for r in recs_b]:
        raise SystemExit(f"{fold_a} and {fold_b} hold out different heads: are they the same fold?")
    folder = CACHE_ROOT / f"{Path(fold_a).resolve().name}+{Path(fold_b).resolve().name}"
    if not (folder / "fold.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        nets = [Measurer("head", fold, runtime="onnx") for fold in (fold_a, fold_b)]
        samples = {s.name: s for s in validation_samples(Path(fold_a), "head", "fold")}
        crops = {}
        for ra, rb in zip(recs_a, recs_b, strict=True):
            image = load_image(samples[ra["name"]].path)
            base = fit_ellipse((ra["arr"]["plain"] + rb["arr"]["plain"]) / 2, out_shape=(image.height, image.width),
                               level=level, min_sharpness=sharpness)
            arrays, crops[ra["name"]] = {}, {}
            for margin in margins:
                crop, x0, y0 = nets[0].crop_around(image, base, float(margin))
                crops[ra["name"]][margin] = [x0, y0, crop.width, crop.height]
                for key, net in zip("ab", nets, strict=True):
                    arrays[f"{key}:zoom{margin}"] = net.probabilities(crop, flip=False)["head"]
            np.savez_compressed(folder / f"{ra['name']}.npz", **arrays)
        (folder / "fold.json").write_text(json.dumps(crops))
    crops = json.loads((folder / "fold.json").read_text())
    out = []
    for ra, rb in zip(recs_a, recs_b, strict=True):
        pair = dict(np.load(folder / f"{ra['name']}.npz"))
        one = []
        for key, rec in zip("ab", (ra, rb), strict=True):
            arr = {v: (pair[f"{key}:{v}"] if v.startswith("zoom") else rec["arr"][v]) for v in views}
            one.append({**rec, "crops": crops[ra["name"]], "arr": arr})
        mean = {**one[0], "arr": {v: (one[0]["arr"][v] + one[1]["arr"][v]) / 2 for v in views}}
        out.append((one[0], one[1], mean))
    return out


def combine_report(fold_sets: list[list[str]], out: Path) -> bool:
    """Rule E1 out of fold: two networks per held-out head (the fold networks of two ``--folds`` sets), combined as
    the shipped ensemble does (maps averaged per view, one ellipse per view, the views' mean ellipse) or by averaging
    every network's view ellipses. Averaging ellipses goes to one validation look only when it beats the maps'
    mean by :data:`COMBINE_MIN_GAIN_MM` overall and on heads of 200 mm or more. Returns whether it does."""
    from fetalscope.biometry.ellipse import mean_ellipse

    if len(fold_sets) != 2 or len(fold_sets[0]) != len(fold_sets[1]):
        raise SystemExit("combine needs two --folds sets of the same folds (two networks per fold)")
    views, level, sharpness = _vls(SHIPPED)
    triples = pool_folds([[{**t[0], "pair": t} for t in _pair_records(a, b)]
                          for a, b in zip(*fold_sets, strict=True)])
    ref = np.array([t["hc_ref_mm"] for t in triples])
    groups = [t["group"] for t in triples]

    def hc(fits: list) -> float:
        return float(mean_ellipse([f for f in fits if f is not None]).circumference())

    rows: dict[str, list[float]] = {"network a alone": [], "network b alone": [], "maps averaged (shipped)": [],
                                    "ellipses averaged": []}
    for t in triples:
        a, b, mean = t["pair"]
        fa, fb, fm = ([view_fit(r, v, level, sharpness) for v in views] for r in (a, b, mean))
        for name, fits in zip(rows, (fa, fb, fm, fa + fb), strict=True):
            rows[name].append(hc(fits) * t["px"])
    diffs = {name: np.array(v) - ref for name, v in rows.items()}
    shipped, candidate = diffs["maps averaged (shipped)"], diffs["ellipses averaged"]
    large = ref >= SIZES[-1][0]
    gain = float(np.abs(shipped).mean() - np.abs(candidate).mean())
    passes = gain >= COMBINE_MIN_GAIN_MM and bool(np.abs(candidate[large]).mean() < np.abs(shipped[large]).mean())
    names = [f"`{Path(f[0]).name}`..., {fold_set_recipe(f)}" for f in fold_sets]
    counts = ", ".join(f"{n} {int(((ref >= lo) & (ref < hi)).sum())}" for lo, hi, n in SIZES)
    lines = ["# Two networks combined: maps or ellipses averaged, out of fold (hc18-head)", "",
             f"Written by `scripts/tune_head_measure.py combine`. Each of the {len(ref)} train and early-stop heads is "
             f"measured by the two fold networks that never trained on it (a: {names[0]}; b: {names[1]}), "
             "as an ensemble of the two: the crops lie around the ellipse of their mean plain map and both networks "
             f"see the same crops. Views {', '.join(views)}; outline level {level:g}, sharpness {sharpness:g}. The "
             "shipped ensemble averages its members' probability maps per view and fits one ellipse per view; the "
             "alternative fits every member's ellipse in every view and averages them all. Cells: HC mean absolute "
             "difference (bias), mm.", "",
             "| combination | all | " + " | ".join(n for _, _, n in SIZES) + " |",
             "| --- | --- | " + " | ".join("---" for _ in SIZES) + " |"]
    lines += [_row(name, diff, ref) for name, diff in diffs.items()]
    lines += ["", f"Sizes by the reference HC; heads: {counts}.", "",
              "Rule E1 (written before these numbers): averaging ellipses goes to one validation look only if it "
              f"beats the averaged maps by at least {COMBINE_MIN_GAIN_MM} mm out of fold and has the lower error on "
              "heads of 200 mm or more.", "",
              f"Ellipses against maps: absolute HC difference reduced by {_gain(shipped, candidate, groups)} "
              f"(bootstrap over subjects); >= 200 mm {np.abs(shipped[large]).mean():.3f} -> "
              f"{np.abs(candidate[large]).mean():.3f} mm.", "",
              "Decision: " + ("a validation candidate." if passes else
                              "not adopted; validation not consulted. The shipped ensemble keeps averaging maps.")]
    write_report(out, lines)
    return passes


def _members(bundle: str) -> int:
    """How many networks the bundle averages (its card's ``arch_kwargs.members``; 1 for one network)."""
    card = json.loads((Path(bundle) / "card.json").read_text())
    return int((card.get("arch_kwargs") or {}).get("members", 1))


FITTER_MIN_GAIN_MM = 0.010  # a fitter other than the shipped one becomes a validation candidate only above this


def oof_report(folds: list[str], bundle: str, out: Path, levels: list[float], view_sets: list[str],
               sharpnesses: Sequence[float] = (), fitters: Sequence[str] = ()) -> None:
    """Post-processing of ``bundle`` chosen on the out-of-fold predictions of cross-validation models (honest for
    every non-validation head, unlike the refit bundle's in-sample early_stop), then scored once on validation.
    Families: the outline level with the view set (outline sharpness as shipped) and the outline sharpness
    ``sharpnesses`` (views and level as shipped; 0: the whole outline), and an HC correction fitted
    on the out-of-fold differences (scored leave-one-fold-out); the final candidate is the best out of fold of
    the shipped setting, each family's choice and both together, and is adopted only when it improves
    validation."""
    oof = load_oof(folds)
    val = load(bundle, "validation")
    ref_o = np.array([m["hc_ref_mm"] for m in oof])
    ref_v = np.array([m["hc_ref_mm"] for m in val])
    fold = np.array([m["fold"] for m in oof])
    groups_o, groups_v = [m["group"] for m in oof], [m["group"] for m in val]
    cards = [json.loads((Path(f) / "card.json").read_text()) for f in folds]
    tr = cards[0]["training"]
    variants = [(v, lv, SHIPPED[2]) for v in view_sets for lv in levels]
    variants += [(SHIPPED[0], SHIPPED[1], sh) for sh in sharpnesses if (SHIPPED[0], SHIPPED[1], sh) not in variants]
    if SHIPPED not in variants:
        variants.insert(0, SHIPPED)
    preds = {k: predictions(oof, *_vls(k)) for k in variants}
    base_o, base_v = preds[SHIPPED], predictions(val, *_vls(SHIPPED))
    header = "| variant | all | " + " | ".join(n for _, _, n in SIZES) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in SIZES) + " |"
    text = ["# Head post-processing chosen out of fold", "",
            f"Written by `scripts/tune_head_measure.py oof` for bundle `{Path(bundle).name}`. The choices are made on "
            f"the out-of-fold predictions of a {len(folds)}-fold cross-validation over the train and early-stop heads "
            f"({len(oof)} heads; `scripts/train_biometry.py train head --cv-fold K {len(folds)} --epochs "
            f"{tr['config']['epochs']} --seed {tr['config']['seed']} --split-seed {cards[0]['data']['split_seed']}`): "
            "every head is predicted by the one model that never trained on it, so its error is that of an unseen "
            "head. The validation split is held out by every fold model and by the bundle, and is scored once at the "
            "end. Caution: each fold model is one network trained on about 4/5 of the heads the bundle trained on; "
            f"the bundle is the mean of {_members(bundle)} networks trained on all of them.", "",
            "Cells: HC mean absolute difference in mm (bias). Shipped setting: views "
            f"{', '.join(VIEW_SETS['current'])}, "
            f"outline level {SHIPPED[1]}, min outline sharpness {SHIPPED[2]}.", "",
            "## Does the out-of-fold error look like the validation error?", "", header, rule,
            _row(f"out of fold ({len(oof)} heads), fold models", base_o - ref_o, ref_o),
            _row(f"validation ({len(val)} heads), bundle", base_v - ref_v, ref_v), ""]
    # family 1: outline level and views
    chosen = min(preds, key=lambda k: np.abs(preds[k] - ref_o).mean())
    text += ["## Outline level, views and sharpness", "", "Out of fold (the choice is made here):", "", header, rule,
             *(_row(f"{k[0]}, level {k[1]}, sharpness {k[2]}", preds[k] - ref_o, ref_o) for k in variants), "",
             ("Chosen: the shipped setting." if chosen == SHIPPED else
              f"Chosen: views `{chosen[0]}`, level {chosen[1]}, sharpness {chosen[2]}; out-of-fold gain over the "
              "shipped setting "
              f"{_gain(base_o - ref_o, preds[chosen] - ref_o, groups_o)}."), ""]
    if fitters:  # the ellipse fitter on the shipped setting: reported; a gain above the bar is left to a written rule
        fitted = {f: base_o if f == "opencv" else predictions(oof, *_vls(SHIPPED), fitter=f)
                  for f in dict.fromkeys(["opencv", *fitters])}
        best_fit = min(fitted, key=lambda f: np.abs(fitted[f] - ref_o).mean())
        gain = np.abs(base_o - ref_o).mean() - np.abs(fitted[best_fit] - ref_o).mean()
        text += ["## Ellipse fitter", "", "Out of fold, on the shipped setting:", "", header, rule,
                 *(_row(f"{f}: {FITTERS[f][0]}", p - ref_o, ref_o) for f, p in fitted.items()), "",
                 ("Best: the shipped fitter." if best_fit == "opencv" else
                  f"Best: `{best_fit}`, out-of-fold gain {_gain(base_o - ref_o, fitted[best_fit] - ref_o, groups_o)}; "
                  + ("a candidate for validation under a rule written beforehand (not scored here)."
                     if gain >= FITTER_MIN_GAIN_MM else f"below the {FITTER_MIN_GAIN_MM} mm bar, so not a candidate.")),
                 ""]
    # family 2: an HC correction on the shipped setting, fitted out of fold
    corrected = {kind: cross_fitted_correction(kind, base_o, ref_o, fold) for kind in CORRECTIONS}
    best = min(corrected, key=lambda k: np.abs(corrected[k] - ref_o).mean())
    text += ["## HC correction", "", "Out of fold, each fold corrected by the fit on the other folds (the choice is "
             "made here):", "", header, rule,
             *(_row(f"{kind}: {CORRECTIONS[kind]}", corrected[kind] - ref_o, ref_o) for kind in CORRECTIONS), "",
             f"Chosen: `{best}`" + (f"; out-of-fold gain {_gain(base_o - ref_o, corrected[best] - ref_o, groups_o)}."
                                    if best != "none" else "."), ""]
    # the final candidate: the best out of fold of the shipped setting, each family's choice and both together
    candidates = {SHIPPED + ("none",): base_o, chosen + ("none",): preds[chosen],
                  SHIPPED + (best,): corrected[best],
                  chosen + (best,): cross_fitted_correction(best, preds[chosen], ref_o, fold)}
    final = min(candidates, key=lambda k: np.abs(candidates[k] - ref_o).mean())
    text += ["## Final candidate", "", "Out of fold:", "", header, rule,
             *(_row(_label(k), p - ref_o, ref_o) for k, p in candidates.items()), "",
             f"Chosen: {_label(final)}.", ""]
    if final == SHIPPED + ("none",):
        text.append("Nothing chosen out of fold differs from the shipped setting; validation not needed.")
    else:
        params = fit_correction(final[3], preds[final[:3]], ref_o)  # on every out-of-fold head
        if final[3] != "none":
            text.append(f"Correction fitted on every out-of-fold head: {', '.join(f'{p:.5g}' for p in params)}.")
        final_v = apply_correction(final[3], params, predictions(val, *_vls(final[:3])))
        after, before = np.abs(final_v - ref_v).mean(), np.abs(base_v - ref_v).mean()
        text += ["", "## Validation (measured once)", "", header, rule, _row("shipped setting", base_v - ref_v, ref_v),
                 _row(_label(final), final_v - ref_v, ref_v), "",
                 f"Decision: {'adopted' if after < before else 'not adopted'} (validation {before:.3f} -> {after:.3f} "
                 f"mm; gain {_gain(base_v - ref_v, final_v - ref_v, groups_v)})."]
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


# ---- the HC interval (``fetalscope.biometry.uncertainty``), calibrated out of fold -----------------------------
INTERVAL_COVERAGE = 0.9
INTERVAL_OVERALL, INTERVAL_WITHIN = 0.88, 0.85  # eligibility, fixed before the results (see interval_report)
INTERVAL_SHIP = 0.85  # the chosen rule ships only if validation coverage reaches this
INTERVAL_CANDIDATES = ("constant", "relative", "spread:0.002", "spread:0.005", "spread:0.01",
                       # added after the first table (rule U1b): between constant and relative, and per size band
                       "affine:50", "affine:100", "affine:200", "affine:400", "banded:100,200",
                       # rule U1c, after the second: per size band, wide where the views disagree
                       "banded:100,200:0.005", "banded:100,200:0.01")


def view_values(meta: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """HC (mm) of the shipped measurement and the standard deviation (mm) of its views' HCs, per cached head."""
    from fetalscope.biometry.ellipse import mean_ellipse
    from fetalscope.biometry.uncertainty import views_sd

    views, level, sharpness = _vls(SHIPPED)
    hc, sd = [], []
    for m in meta:
        fits = [f for f in (view_fit(m, v, level, sharpness) for v in views) if f is not None]
        hc.append(mean_ellipse(fits).circumference() * m["px"])
        sd.append(views_sd([f.circumference() * m["px"] for f in fits]))
    return np.array(hc), np.array(sd)


def _candidate(spec: str):
    from fetalscope.train.segmenter.interval_calibration import Candidate

    form, _, arg = spec.partition(":")
    if form == "affine":
        return Candidate(form, offset=float(arg))
    if form == "banded":
        edges, _, floor = arg.partition(":")
        return Candidate(form, float(floor or 0.0), edges=tuple(float(e) for e in edges.split(",")))
    return Candidate(form, float(arg or 0.0))


def interval_report(folds: list[str], bundle: str, out: Path, adopt: bool = False) -> None:
    """The HC interval out of fold, by a rule written before the results (also in the output): each candidate form
    is cross-fitted on the fold models' out-of-fold heads (fold k's intervals from the other folds' quantile);
    eligible forms cover >= 0.88 overall and >= 0.85 in each size band, in the fifth of heads whose views disagree
    most (SD / HC) and in the rest; the narrowest eligible form is chosen (if none, ``relative`` if it covers
    overall), its quantile fitted on every out-of-fold head and its coverage measured once on validation by the
    bundle; with ``adopt`` it is written into the bundle's card (``inference.hc_interval``) if that coverage is
    >= 0.85."""
    from fetalscope.biometry.uncertainty import coverage_and_width
    from fetalscope.train.segmenter.interval_calibration import calibrate, choose, cross_fitted, table_lines

    oof = load_oof(folds)
    ref = np.array([m["hc_ref_mm"] for m in oof])
    fold = np.array([m["fold"] for m in oof])
    hc, sd = view_values(oof)
    rel = sd / hc
    top = rel >= np.quantile(rel, 0.8)
    groups = {name: (ref >= lo) & (ref < hi) for lo, hi, name in SIZES}
    groups |= {"views disagree most (top fifth of SD / HC)": top, "the other four fifths": ~top}
    results = [cross_fitted(_candidate(c), hc, sd, ref, fold, INTERVAL_COVERAGE, groups)
               for c in INTERVAL_CANDIDATES]
    chosen = choose(results, INTERVAL_OVERALL, INTERVAL_WITHIN) or next(
        (r for r in results if r.candidate.form == "relative" and r.coverage() >= INTERVAL_OVERALL), None)
    text = ["# An interval for each HC, calibrated out of fold", "",
            f"Written by `scripts/tune_head_measure.py interval` for bundle `{Path(bundle).name}`. Each head's HC is "
            f"the mean of the ellipses of {len(_vls(SHIPPED)[0])} views ({', '.join(_vls(SHIPPED)[0])}); where "
            "they disagree, the measurement is less sure. An interval `HC +- q x scale` is calibrated "
            f"(split-conformal, nominal coverage {INTERVAL_COVERAGE:.0%}) on the out-of-fold heads of a "
            f"{len(folds)}-fold cross-validation ({len(oof)} heads; each measured by the one fold model that never "
            "trained on it, shipped post-processing). Forms of `scale` (`fetalscope.biometry.uncertainty`): "
            "`constant` (1 mm), `relative` (HC), `spread` (SD of the views' HCs + floor x HC), `affine` (HC + "
            "offset), `banded` (its own quantile per band of the measured HC, optionally of the `spread` scale).", "",
            "Rule, written before the results: every form is cross-fitted (fold k's intervals use the quantile of "
            f"the other folds). A form is eligible if it covers >= {INTERVAL_OVERALL} of all heads and >= "
            f"{INTERVAL_WITHIN} within each group below; the eligible form with the narrowest mean interval is "
            "chosen (if none is eligible: `relative`, if it covers overall). Its quantile is then fitted on every "
            "out-of-fold head and its coverage measured once on the validation split by the bundle; it ships "
            f"(the card's `inference.hc_interval`) if that coverage is >= {INTERVAL_SHIP}.", "",
            "The candidates grew twice, each time after the table had shown the earlier ones failing and before "
            "the new ones were scored (rules kept with the session's notes): first `constant`, `relative` and "
            "`spread`; then `affine` and `banded` (a quantile per band of the measured HC); then `banded` with the "
            "`spread` scale inside each band. Under the first rule alone the fallback `relative` would have shipped "
            "(see the last section), although out of fold it covers heads under 100 mm worst of all.", "",
            f"Groups: HC size bands; the heads whose views disagree most (SD / HC >= {np.quantile(rel, 0.8):.4f}, "
            f"the top fifth) and the rest. Median SD of the views' HCs: {np.median(sd):.2f} mm.", "",
            "## Out of fold, cross-fitted", "",
            "Cells: coverage (mean interval width, mm).", "",
            *table_lines(results, INTERVAL_OVERALL, INTERVAL_WITHIN)]
    text.append("")
    if chosen is None:
        return write_report(out, [*text, "No form met the rule; nothing ships."])
    basis = (f"split-conformal on the out-of-fold HCs of {len(oof)} HC18 heads (a {len(folds)}-fold "
             "cross-validation over the train and early-stop splits, one network per fold); docs/head_interval.md")
    rule = calibrate(chosen.candidate, hc, sd, ref, INTERVAL_COVERAGE, unit="mm", basis=basis)
    val = load(bundle, "validation")
    ref_v = np.array([m["hc_ref_mm"] for m in val])
    hc_v, sd_v = view_values(val)
    cov_v, width_v = coverage_and_width(rule, hc_v, sd_v, ref_v, unit="mm")
    ships = cov_v >= INTERVAL_SHIP
    qs = ", ".join(f"{q:.4g}" for q in rule.band_q) if rule.form == "banded" else f"{rule.q:.4g}"
    text += [f"Chosen: `{chosen.candidate.label}`; quantile{'s per band' if rule.form == 'banded' else ''} fitted "
             f"on all {len(oof)} out-of-fold heads: {qs}.", "",
             "## Validation (measured once, the bundle)", "",
             f"{len(val)} heads: coverage {cov_v:.3f}, mean interval width {width_v:.2f} mm "
             f"(median SD of the views' HCs {np.median(sd_v):.2f} mm), from the cached views (ONNX Runtime, crops "
             "around the plain fit at level 0.5).", "",
             *_report_interval_line(bundle),
             f"Decision: {'ships' if ships else 'does not ship'} (coverage {cov_v:.3f} "
             f"{'>=' if ships else '<'} {INTERVAL_SHIP})."]
    if chosen.candidate.form != "relative":  # what the first rule's fallback would have given (scored then)
        first = next(r for r in results if r.candidate.form == "relative")
        fallback = calibrate(first.candidate, hc, sd, ref, INTERVAL_COVERAGE)
        cov_f, width_f = coverage_and_width(fallback, hc_v, sd_v, ref_v)
        text += ["", "## The first rule's fallback, `relative`", "",
                 f"Out of fold (cross-fitted) it covers {first.coverage():.3f} of all heads but "
                 + ", ".join(f"{first.coverage(w):.3f} of {g}" for g, w in groups.items()) + "; on validation "
                 f"{cov_f:.3f} (mean width {width_f:.2f} mm). It met the first rule's bar but not the eligibility "
                 "within groups, and is not used."]
    write_report(out, text)
    print(json.dumps(rule.to_dict()))
    if adopt and ships:
        write_card_inference(bundle, "hc_interval", rule.to_dict())


def _report_interval_line(bundle: str) -> list[str]:
    """The interval's coverage in the bundle's validation report (the Measurer itself), when it has one."""
    path = Path(bundle) / "report.json"
    iv = json.loads(path.read_text()).get("summary", {}).get("hc_interval") if path.is_file() else None
    if not iv:
        return []
    c = iv["coverage"]
    return [f"The bundle's validation report (`train_biometry.py evaluate`, the Measurer with the card's rule, "
            f"PyTorch): coverage {c['estimate']:.3f} (95% CI {c['lower']:.3f} to {c['upper']:.3f}), mean width "
            f"{iv['mean_width']['estimate']:.2f} mm; by reference size "
            + ", ".join(f"{b['reference']} {b['coverage']:.2f} ({b['n']})" for b in iv["by_reference"]
                        if b["coverage"] is not None) + ".", ""]


def _vls(variant: tuple) -> tuple[list[str], float, float]:
    return VIEW_SETS[variant[0]], variant[1], variant[2]


def _label(candidate: tuple) -> str:
    views, level, sharpness, correction = candidate
    return (f"views `{views}`, level {level}, sharpness {sharpness}"
            + (f" + `{correction}` correction" if correction != "none" else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["cache", "sweep", "report", "oof", "interval", "recipes", "input-scale",
                                          "combine"])
    p.add_argument("--folds", nargs="+", action="append", default=[],
                   help="oof, interval, input-scale: the cross-validation models' bundle folders, in fold order "
                        "(each cached with `cache --bundle DIR --splits fold`); recipes: repeat once per recipe, "
                        "the shipped recipe first; combine: twice, network a's folds then network b's")
    p.add_argument("--out", type=Path, default=None, help="the report written (default: docs/head_postprocessing.md "
                   "for report, docs/head_oof.md for oof, docs/head_interval.md for interval, "
                   "docs/head_oof_recipes.md for recipes, docs/head_oof_input_scale.md for input-scale, "
                   "docs/head_oof_combination.md for combine)")
    p.add_argument("--bundle", default=BUNDLE)
    p.add_argument("--splits", nargs="+", default=["early_stop", "validation"])
    p.add_argument("--split", default="early_stop")
    p.add_argument("--levels", nargs="+", type=float, default=[0.45, 0.5, 0.55, 0.6])
    p.add_argument("--views", nargs="+", default=list(VIEW_SETS), choices=list(VIEW_SETS))
    p.add_argument("--sharpness", nargs="+", type=float, default=[0.3, 0.5, 0.7, 0.8, 0.9, 1.0],
                   help="min outline sharpness values (sweep and report: beside 0; oof: on the shipped views and "
                        "level)")
    p.add_argument("--fitters", nargs="*", default=[], choices=list(FITTERS),
                   help="oof: ellipse fitters to compare on the shipped setting (beside the shipped opencv)")
    p.add_argument("--of-folds", type=int, default=5, help="recipes: the cross-validation's number of folds (fewer "
                   "--folds than this make a partial report)")
    p.add_argument("--scale", type=float, default=2.0, help="input-scale: the views' input size over the bundle's")
    p.add_argument("--adopt", action="store_true", help="interval: write the chosen rule into the bundle's card "
                   "when its validation coverage passes")
    args = p.parse_args(argv)
    if args.command == "sweep":
        variants = [(v, level, s) for v in args.views for level in args.levels for s in [0.0, *args.sharpness]]
        print("\n".join(sweep(args.bundle, args.split, variants)[0]))
        return 0
    if args.command == "report":
        report(args.bundle, args.out or Path("docs/head_postprocessing.md"), args.levels, args.views, args.sharpness)
        return 0
    if args.command == "oof":
        oof_report(need_one_fold_set(p, args.folds, "oof"), args.bundle, args.out or Path("docs/head_oof.md"),
                   args.levels, args.views, args.sharpness, args.fitters)
        return 0
    if args.command == "interval":
        interval_report(need_one_fold_set(p, args.folds, "interval"), args.bundle,
                        args.out or Path("docs/head_interval.md"), args.adopt)
        return 0
    if args.command == "input-scale":
        import torch

        torch.set_num_threads(2)
        scale_report(need_one_fold_set(p, args.folds, "input-scale"), args.scale,
                     args.out or Path("docs/head_oof_input_scale.md"))
        return 0
    if args.command == "combine":
        import torch

        torch.set_num_threads(2)
        combine_report(need_fold_sets(p, args.folds, "combine", "network"),
                       args.out or Path("docs/head_oof_combination.md"))
        return 0
    if args.command == "recipes":
        recipes_report(need_fold_sets(p, args.folds, "recipes", "recipe"), args.out or Path("docs/head_oof_recipes.md"),
                       args.of_folds)
        return 0
    import torch

    torch.set_num_threads(1)
    cache(args.splits, args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
