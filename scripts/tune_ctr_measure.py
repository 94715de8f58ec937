#!/usr/bin/env python
"""Explore the heart/thorax ellipse post-processing of ``focus-ctr`` on cached network outputs.

    python scripts/tune_ctr_measure.py cache [--splits early_stop validation]
    python scripts/tune_ctr_measure.py report [--out docs/ctr_postprocessing.md]
    python scripts/tune_ctr_measure.py cache --bundle runs/ctr-cvK --splits fold   # each cross-validation model
    python scripts/tune_ctr_measure.py oof --folds runs/ctr-cv0 ... [--out docs/ctr_oof.md]  # chosen out of fold
    python scripts/tune_ctr_measure.py seeds --folds runs/ctr-cv0 ... --folds runs/ctr-cv0-s1 ... \
        [--out docs/ctr_oof_seeds.md]   # one network against the mean of seeds, out of fold
    python scripts/tune_ctr_measure.py recipes --folds runs/ctr-cv0 ... --folds runs/ctr-cv0-sono ... \
        [--out docs/ctr_oof_recipes.md]   # training recipes (encoder, input size) against the shipped one, out of fold
    python scripts/tune_ctr_measure.py interval --folds runs/ctr-cv0 ... [--adopt]  # CTR interval, out of fold
    python scripts/tune_ctr_measure.py outline --folds runs/ctr-cv0 ... --folds runs/ctr-cv0-s1 ... \
        [--out docs/ctr_oof_outline.md]   # sharp-outline and fitter options of the ellipse step, out of fold
    python scripts/tune_ctr_measure.py correction --folds runs/ctr-cv0 ... --folds runs/ctr-cv0-s1 ... \
        [--out docs/ctr_oof_correction.md]   # a correction of the measured CTR, fitted out of fold
    python scripts/tune_ctr_measure.py heart-crops --folds runs/ctr-cv0 ... --folds runs/ctr-cv0-s1 ... \
        [--out docs/ctr_oof_heart_crops.md]   # crops around the heart for the heart ellipse, out of fold

The cache (``/tmp/fetalscope-ctr-tune/<bundle>``) holds per image the flip-averaged heart and thorax probability
maps of the whole image and of crops around the thorax ellipse (margins 0.1, 0.2, 0.35) with the crop
offsets, so that variants of the ellipse step can be scored in seconds; settings are chosen on early_stop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_folds import (  # noqa: E402
    apply_correction,
    cross_fitted_correction,
    fit_correction,
    need_fold_sets,
    need_one_fold_set,
    opencv_fitter,
    paired_bootstrap,
    pool_folds,
    recipe_names,
    write_card_inference,
    write_report,
)

CACHE_ROOT = Path(os.environ.get("FETALSCOPE_TUNE_CACHE", "/tmp/fetalscope-ctr-tune"))
BUNDLE = "src/fetalscope/models/bundled/focus-ctr"
MARGINS = (0.1, 0.2, 0.35)


def cache_dir(bundle: str) -> Path:
    return CACHE_ROOT / Path(bundle).resolve().name


def cache(splits: list[str], bundle: str) -> None:
    from fetalscope.biometry.ellipse import Ellipse
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    folder = Path(bundle)
    m = Measurer("cardiothoracic", str(folder), runtime="onnx")
    CACHE = cache_dir(bundle)
    CACHE.mkdir(parents=True, exist_ok=True)
    for split in splits:
        meta = []
        for s in validation_samples(folder, "cardiothoracic", split):
            image = load_image(s.path)
            probs = m.probabilities(image, flip=True)
            thorax = m.ellipses(image, probs, refine=False)["thorax"]  # the crops' centre, as the Measurer's
            arrays = {f"plain_{k}": v for k, v in probs.items()}
            crops = {}
            for margin in MARGINS:
                crop, x0, y0 = m.crop_around(image, thorax, margin)
                for k, v in m.probabilities(crop, flip=True).items():
                    arrays[f"zoom{margin}_{k}"] = v
                crops[str(margin)] = [x0, y0, crop.width, crop.height]
            np.savez_compressed(CACHE / f"{s.name}.npz", **arrays)
            meta.append({"name": s.name, "group": s.group, "shape": [image.height, image.width], "crops": crops,
                         "ref": {k: Ellipse.from_dict(s.ellipses[k]).to_dict(None) for k in ("heart", "thorax")}})
        (CACHE / f"{split}.json").write_text(json.dumps(meta))
        print(split, len(meta), flush=True)


VARIANTS = {  # name: (heart views, thorax views, heart level, thorax level)
    "current (image, level 0.5)": (["plain"], ["plain"], 0.5, 0.5),
    "crop 0.1": (["zoom0.1"], ["zoom0.1"], 0.5, 0.5),
    "crop 0.2": (["zoom0.2"], ["zoom0.2"], 0.5, 0.5),
    "crop 0.35": (["zoom0.35"], ["zoom0.35"], 0.5, 0.5),
    "image + crop 0.2": (["plain", "zoom0.2"], ["plain", "zoom0.2"], 0.5, 0.5),
    "image + all crops": (["plain", "zoom0.1", "zoom0.2", "zoom0.35"], ["plain", "zoom0.1", "zoom0.2", "zoom0.35"],
                          0.5, 0.5),
    "heart from crops, thorax from image": (["zoom0.1", "zoom0.2", "zoom0.35"], ["plain"], 0.5, 0.5),
    "heart level 0.45": (["plain"], ["plain"], 0.45, 0.5),
    "heart level 0.55": (["plain"], ["plain"], 0.55, 0.5),
    "thorax level 0.45": (["plain"], ["plain"], 0.5, 0.45),
    "thorax level 0.55": (["plain"], ["plain"], 0.5, 0.55),
    "thorax level 0.4": (["plain"], ["plain"], 0.5, 0.4),
    "thorax level 0.6": (["plain"], ["plain"], 0.5, 0.6),
}
EARLY_VARIANTS = list(VARIANTS)[:11]  # the variants of the early-stop report (docs/ctr_postprocessing.md)
CURRENT = "current (image, level 0.5)"


def load(split: str, bundle: str = BUNDLE) -> list[dict]:
    folder = cache_dir(bundle)
    meta = json.loads((folder / f"{split}.json").read_text())
    for m in meta:
        m["arr"] = dict(np.load(folder / f"{m['name']}.npz"))
    return meta


class Outline(NamedTuple):
    """How each structure's outline becomes an ellipse: the shipped way (every point, OpenCV ``fitEllipse``), or
    only its sharp points (:func:`~fetalscope.biometry.ellipse.sharp_outline`, as the head does), or another
    fitter for the heart."""

    heart_sharpness: float = 0.0
    thorax_sharpness: float = 0.0
    heart_fitter: str = "fitEllipse"


SHIPPED_OUTLINE = Outline()
OUTLINES = {"shipped (every outline point, fitEllipse)": SHIPPED_OUTLINE,
            **{f"{which} sharpness {s}": Outline(heart_sharpness=s if which != "thorax" else 0.0,
                                                  thorax_sharpness=s if which != "heart" else 0.0)
               for which in ("heart", "thorax", "both") for s in (0.5, 0.6, 0.7, 0.8, 0.9)},
            "heart fitEllipseAMS": Outline(heart_fitter="fitEllipseAMS"),
            "heart fitEllipseDirect": Outline(heart_fitter="fitEllipseDirect")}


def fit_view(m: dict, view: str, heart_level: float, thorax_level: float, outline: Outline = SHIPPED_OUTLINE
             ) -> tuple:
    """(heart, thorax) ellipses of one cached view in image pixels, post-processed as the Measurer does (or as
    ``outline`` says)."""
    import cv2

    from fetalscope.biometry.ellipse import fill_holes, fit_ellipse_points, fit_points, largest_component

    thorax_p, heart_p = m["arr"][f"{view}_thorax"], m["arr"][f"{view}_heart"]
    big_h, big_w = m["shape"]
    h, w = thorax_p.shape
    if view == "plain":
        x0 = y0 = 0.0
        sx, sy = big_w / w, big_h / h
    else:  # zoomM: a crop around the thorax (its margin is the key); other views are keyed by their name
        x0, y0, cw, ch = m["crops"][view[4:] if view.startswith("zoom") else view]
        sx, sy = cw / w, ch / h
    region = fill_holes(largest_component(thorax_p >= thorax_level))
    if not region.any():
        return None, None
    near = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    heart_fit = fit_ellipse_points if outline.heart_fitter == "fitEllipse" else opencv_fitter(outline.heart_fitter)
    fits = []
    for p, level, sharpness, fit in ((np.where(near, heart_p, 0.0), heart_level, outline.heart_sharpness, heart_fit),
                                     (thorax_p, thorax_level, outline.thorax_sharpness, fit_ellipse_points)):
        xy = fit_points(p, level=level, min_sharpness=sharpness, scale_xy=(sx, sy), offset=(x0, y0))
        fits.append(None if xy is None else fit(xy))
    return fits[0], fits[1]


def score(meta: list[dict], variant: str | tuple, outline: Outline = SHIPPED_OUTLINE) -> dict[str, float]:
    """Scores of ``variant`` (a :data:`VARIANTS` name, or its tuple: heart views, thorax views, levels)."""
    from fetalscope.biometry.cardiothoracic import ctr_ratios
    from fetalscope.biometry.ellipse import Ellipse, ellipse_overlap, mean_ellipse

    views_h, views_t, lh, lt = VARIANTS[variant] if isinstance(variant, str) else variant
    errs, refs, iou_h, iou_t, exact_heart, exact_thorax, rel_h, rel_t = ([] for _ in range(8))
    for m in meta:
        fits = {v: fit_view(m, v, lh, lt, outline) for v in {*views_h, *views_t}}
        heart = mean_ellipse([fits[v][0] for v in views_h if fits[v][0] is not None])
        thorax = mean_ellipse([fits[v][1] for v in views_t if fits[v][1] is not None])
        ref_h, ref_t = Ellipse.from_dict(m["ref"]["heart"]), Ellipse.from_dict(m["ref"]["thorax"])
        refs.append(ctr_ratios(ref_h, ref_t)["circumference"])
        errs.append(ctr_ratios(heart, thorax)["circumference"] - refs[-1])
        exact_heart.append(ctr_ratios(ref_h, thorax)["circumference"] - refs[-1])
        exact_thorax.append(ctr_ratios(heart, ref_t)["circumference"] - refs[-1])
        rel_h.append(heart.circumference() / ref_h.circumference() - 1)
        rel_t.append(thorax.circumference() / ref_t.circumference() - 1)
        iou_h.append(ellipse_overlap(heart, ref_h, tuple(m["shape"]))["iou"])
        iou_t.append(ellipse_overlap(thorax, ref_t, tuple(m["shape"]))["iou"])
    e = np.array(errs)
    return {"mae": float(np.abs(e).mean()), "bias": float(e.mean()), "iou_heart": float(np.mean(iou_h)),
            "iou_thorax": float(np.mean(iou_t)), "n": len(e), "references": np.array(refs), "errors": e,
            "errors_exact_heart": np.array(exact_heart), "errors_exact_thorax": np.array(exact_thorax),
            "heart_relative": np.array(rel_h), "thorax_relative": np.array(rel_t),
            "ious_heart": np.array(iou_h), "ious_thorax": np.array(iou_t)}


def table(split: str, variants: list[str], meta: list[dict] | None = None, title: str = "focus-ctr"
          ) -> tuple[list[str], dict]:
    meta = load(split) if meta is None else meta
    lines = [f"{title}, {split} ({len(meta)} images)", "",
             "| variant | circumference-CTR MAE | bias | ellipse IoU heart | ellipse IoU thorax |",
             "| --- | --- | --- | --- | --- |"]
    scores = {}
    for v in variants:
        r = scores[v] = score(meta, v)
        lines.append(f"| {v} | {r['mae']:.4f} | {r['bias']:+.4f} | {r['iou_heart']:.3f} | {r['iou_thorax']:.3f} |")
    return lines, scores


def report(out: Path) -> None:
    """Every variant on early_stop; the lowest MAE is chosen there and scored once on validation beside the current
    setting (skipped when the current setting is chosen)."""
    es_lines, es = table("early_stop", EARLY_VARIANTS)
    chosen = min(es, key=lambda k: es[k]["mae"])
    text = ["# Heart and thorax ellipse post-processing (focus-ctr)", "",
            "Written by `scripts/tune_ctr_measure.py report` from flip-averaged probability maps cached per image "
            f"(the image and crops around its thorax ellipse with margins {', '.join(str(m) for m in MARGINS)}).", "",
            "## Early-stopping split (every choice made here)", "", *es_lines, "",
            f"Chosen on early_stop: {chosen} (MAE {es[chosen]['mae']:.4f}; current {es[CURRENT]['mae']:.4f})."]
    if chosen != CURRENT:
        val_lines, val = table("validation", [CURRENT, chosen])
        adopted = val[chosen]["mae"] < val[CURRENT]["mae"]
        text += ["", "## Validation split (measured once)", "", *val_lines, "",
                 f"Decision: {'adopted' if adopted else 'not adopted'} (validation MAE {val[CURRENT]['mae']:.4f} "
                 f"current, {val[chosen]['mae']:.4f} chosen)."]
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


def oof_report(folds: list[str], bundle: str, out: Path) -> None:
    """Every variant on the out-of-fold predictions of cross-validation models (``train_biometry.py train
    cardiothoracic --cv-fold K N``: each image predicted by the one model that never trained on it). Chosen there:
    the highest thorax IoU among variants whose CTR MAE is at most 0.0005 and heart IoU at most 0.002 worse than
    the current setting's; then it and the current setting are scored once on validation with ``bundle``, and it is
    adopted when validation thorax IoU improves without CTR MAE rising above 0.016 or heart IoU falling below 0.87
    (the targets of issue 14)."""
    oof = load_cached_folds(folds)
    card = json.loads((Path(folds[0]) / "card.json").read_text())
    scored = json.loads((Path(bundle) / "card.json").read_text())
    cfg = card["training"]["config"]
    oof_lines, sc = table("out of fold", list(VARIANTS), meta=oof, title=f"{len(folds)} fold models")
    cur = sc[CURRENT]
    allowed = [v for v in VARIANTS
               if sc[v]["mae"] <= cur["mae"] + 0.0005 and sc[v]["iou_heart"] >= cur["iou_heart"] - 0.002]
    chosen = max(allowed, key=lambda v: sc[v]["iou_thorax"])
    fold = np.array([m["fold"] for m in oof])
    ref = cur["references"]
    constant, const_mae = fold_constant(ref, fold)
    text = ["# Heart and thorax ellipse post-processing chosen out of fold", "",
            "Written by `scripts/tune_ctr_measure.py oof`. The choice is made on the out-of-fold predictions of a "
            f"{len(folds)}-fold cross-validation over the train and early-stop images ({len(oof)} images; "
            f"`scripts/train_biometry.py train cardiothoracic --cv-fold K {len(folds)} --epochs {cfg['epochs']} "
            f"--seed {cfg['seed']} --split-seed {card['data']['split_seed']}`, flip-averaged probability maps): every "
            "image is predicted by the one model that never trained on it. Validation is held out by every fold model "
            f"and by `{Path(bundle).name}` (revision {scored.get('revision', 1)}), and is scored once at the end. "
            "Caution: each fold model is one network trained on about 4/5 of the train and early-stop images for a "
            f"fixed number of epochs; the bundle is {_described(scored)}.", "",
            "Rule (written before the out-of-fold table was seen): choose the highest thorax IoU among variants "
            "whose CTR MAE is at most 0.0005 and heart IoU at most 0.002 worse than the current setting's; adopt it "
            "if on validation its thorax IoU is higher, its CTR MAE at most 0.016 and its heart IoU at least 0.87.",
            "", "## Out of fold (the choice is made here)", "", *oof_lines, "",
            f"Out of fold the current setting's circumference-CTR MAE is {cur['mae']:.4f} against {const_mae:.4f} for "
            "the constant predictor (each fold's training-mean CTR): "
            f"{cur['mae'] / const_mae:.2f}x, for single networks on images none of them trained on.", "",
            f"Chosen: {chosen} (thorax IoU {sc[chosen]['iou_thorax']:.4f}; current {cur['iou_thorax']:.4f})."]
    if chosen != CURRENT:
        val_lines, val = table("validation", [CURRENT, chosen], meta=load("validation", bundle),
                               title=Path(bundle).name)
        v = val[chosen]
        adopted = (v["iou_thorax"] > val[CURRENT]["iou_thorax"] and v["mae"] <= 0.016 and v["iou_heart"] >= 0.87)
        text += ["", "## Validation (measured once)", "", *val_lines, "",
                 f"Decision: {'adopted' if adopted else 'not adopted'} (validation thorax IoU "
                 f"{val[CURRENT]['iou_thorax']:.4f} current, {v['iou_thorax']:.4f} chosen; CTR MAE "
                 f"{val[CURRENT]['mae']:.4f} / {v['mae']:.4f}; heart IoU {val[CURRENT]['iou_heart']:.4f} / "
                 f"{v['iou_heart']:.4f})."]
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


def seed_average(metas: list[list[dict]]) -> list[dict]:
    """One image list whose ``plain`` maps are the mean over the seeds' fold models, as an ensemble averages its
    members' probabilities (the caches' maps are flip-averaged, and the flip average of a mean is the mean of the
    flip averages). Crop views are dropped: each model cropped around its own thorax ellipse."""
    by_name = [{m["name"]: m for m in meta} for meta in metas]
    if any(set(b) != set(by_name[0]) for b in by_name[1:]):
        raise SystemExit("the seeds' fold models hold out different images: were they trained with one --split-seed?")
    out = []
    for m in metas[0]:
        same = [b[m["name"]] for b in by_name]
        arr = {f"plain_{k}": np.mean([s["arr"][f"plain_{k}"] for s in same], axis=0) for k in ("heart", "thorax")}
        out.append({**m, "arr": arr, "crops": {}})
    return out


def pipeline_scores(fold_sets: list[list[str]], metas_by_name: dict[str, dict]) -> dict:
    """The whole measurement out of fold (the Measurer with the first seed set's card: flip, crop views) by the
    mean of the seeds' fold models, built per fold with ``build_ensemble``: the shape of the shipped bundle."""
    import tempfile

    from fetalscope.biometry.cardiothoracic import ctr_ratios
    from fetalscope.biometry.ellipse import Ellipse, ellipse_overlap
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.ensemble import build_ensemble
    from fetalscope.train.segmenter.measurement_report import validation_samples

    errs, refs, iou_h, iou_t, names = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(len(fold_sets[0])):
            members = [folds[k] for folds in fold_sets]
            ens = build_ensemble(members, Path(tmp) / f"fold{k}", log=lambda m: None)
            m = Measurer("cardiothoracic", str(ens), runtime="onnx")
            for sample in validation_samples(Path(members[0]), "cardiothoracic", "fold"):
                got = m.ellipses(load_image(sample.path))
                names.append(sample.name)
                ref = metas_by_name[sample.name]["ref"]
                ref_h, ref_t = Ellipse.from_dict(ref["heart"]), Ellipse.from_dict(ref["thorax"])
                shape = tuple(metas_by_name[sample.name]["shape"])
                refs.append(ctr_ratios(ref_h, ref_t)["circumference"])
                errs.append(ctr_ratios(got["heart"], got["thorax"])["circumference"] - refs[-1])
                iou_h.append(ellipse_overlap(got["heart"], ref_h, shape)["iou"])
                iou_t.append(ellipse_overlap(got["thorax"], ref_t, shape)["iou"])
            print(f"fold {k}: {len(errs)} images", flush=True)
    e = np.array(errs)
    return {"mae": float(np.abs(e).mean()), "bias": float(e.mean()), "iou_heart": float(np.mean(iou_h)),
            "iou_thorax": float(np.mean(iou_t)), "n": len(e), "references": np.array(refs), "errors": e,
            "names": names}


def seeds_report(fold_sets: list[list[str]], out: Path, pipeline: list[list[str]] | None = None) -> None:
    """Out of fold, each seed's network alone against the mean of the seeds' networks (image view, level 0.5):
    does averaging seeds help on images none of the networks trained on? With ``pipeline`` (seed sets whose fold
    bundles are on disk) also the whole measurement, crop views included, of each set alone and of their mean.
    Nothing is chosen here."""
    metas = [sorted(load_cached_folds(folds), key=lambda m: m["name"]) for folds in fold_sets]
    seeds = [json.loads((Path(f[0]) / "card.json").read_text())["training"]["config"]["seed"] for f in fold_sets]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"each --folds set must be one seed's models; seeds {seeds}")
    rows: dict[str, dict] = {}
    for seed, meta in zip(seeds, metas, strict=True):
        rows[f"seed {seed} alone"] = score(meta, CURRENT)
    mean = seed_average(metas)
    rows[f"mean of seeds {', '.join(str(s) for s in seeds)}"] = ens = score(mean, CURRENT)
    fold = np.array([m["fold"] for m in metas[0]])
    ref = ens["references"]
    const_mae = fold_constant(ref, fold)[1]
    single = rows[f"seed {seeds[0]} alone"]
    lo, hi = paired_bootstrap(np.abs(ens["errors"]), np.abs(single["errors"]))
    lines = ["# Averaging seeds, out of fold (focus-ctr recipe)", "",
             "Written by `scripts/tune_ctr_measure.py seeds`. Each seed's 5-fold cross-validation "
             "(`scripts/train_biometry.py train cardiothoracic --cv-fold K 5 --seed S --split-seed 0`, the same folds "
             f"for every seed) predicts each of the {len(mean)} train and early-stop images with networks that never "
             "trained on it. The mean of the seeds' probability maps is what an ensemble bundle computes. Image view "
             "only (flip-averaged), level 0.5: the crop views are left out because each network cropped around its "
             "own thorax ellipse. Nothing is chosen from this table.", "",
             *_networks_table(rows, const_mae)]
    lines += ["", f"Constant predictor (each fold's training-mean CTR): MAE {const_mae:.4f}.", "",
              f"Mean of seeds minus seed {seeds[0]} alone, CTR absolute error: {ens['mae'] - single['mae']:+.4f} "
              f"(95% paired bootstrap interval over images {lo:+.4f} to {hi:+.4f}).", "",
              *_error_agreement([rows[f"seed {s} alone"]["errors"] for s in seeds], "image view")]
    if pipeline:
        by_name = {m["name"]: m for m in metas[0]}
        cards = [json.loads((Path(f[0]) / "card.json").read_text()) for f in pipeline]
        views = ", ".join((cards[0].get("inference") or {}).get("ellipse_average") or ["plain"])
        names = [f"seed {c['training']['config']['seed']}" for c in cards]
        cached = [load_cached_folds(f) for f in pipeline]
        full = {f"{n} alone": score(c, "image + all crops") for n, c in zip(names, cached, strict=True)}
        full[f"mean of {', '.join(names)}"] = mean_full = pipeline_scores(pipeline, by_name)
        lines += ["", "## The whole measurement, out of fold", "",
                  f"The Measurer as shipped (flip-averaged maps; each ellipse the mean of the views {views}, the "
                  "crops centred on the image view's thorax ellipse), run on each fold's held-out images by one "
                  "seed's fold model alone (from the caches) and by the mean of the seeds' fold models (an ensemble "
                  "bundle built per fold). Only seeds whose fold bundles are on disk can be averaged here.", "",
                  *_networks_table(full, const_mae)]
        first = full[f"{names[0]} alone"]
        if mean_full["names"] != [m["name"] for m in cached[0]]:
            raise SystemExit("the fold bundles hold out other images than their caches: rerun `cache --splits fold`")
        lo, hi = paired_bootstrap(np.abs(mean_full["errors"]), np.abs(first["errors"]))
        gain = mean_full["mae"] - first["mae"]
        lines += ["", f"Mean of seeds minus {names[0]} alone, CTR absolute error: {gain:+.4f} "
                  f"(95% paired bootstrap interval over images {lo:+.4f} to {hi:+.4f}).", "",
                  *_error_agreement([full[f"{n} alone"]["errors"] for n in names], "whole measurement")]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def recipes_report(fold_sets: list[list[str]], out: Path) -> None:
    """Training recipes compared out of fold: each ``--folds`` set is one recipe's cross-validation (the same
    folds: one ``--split-seed``), scored from the caches as the shipped measurement (image + all crops) and as the
    image view alone, each paired against the first set (the shipped recipe). Nothing is chosen here; the rule
    that decides is written where the recipe is tried (the model card's ``training.selection`` or limitations)."""
    metas = [sorted(load_cached_folds(folds), key=lambda m: m["name"]) for folds in fold_sets]
    names = recipe_names(metas, fold_sets, "images")
    fold = np.array([m["fold"] for m in metas[0]])
    ref = _reference_ctrs(metas[0])
    constant, const_mae = fold_constant(ref, fold)
    by_view: dict[str, dict[str, dict]] = {}
    lines = ["# Training recipes compared out of fold (focus-ctr)", "",
             "Written by `scripts/tune_ctr_measure.py recipes`. Each recipe's 5-fold cross-validation "
             "(`scripts/train_biometry.py train cardiothoracic --cv-fold K 5 --split-seed 0 ...`, the same folds for "
             f"every recipe) predicts each of the {len(metas[0])} train and early-stop images with a network that "
             "never trained on it; the caches (`cache --splits fold`) hold its flip-averaged maps of the image and of "
             "crops around its own thorax ellipse. The differences are paired over images against the first recipe "
             "(95% bootstrap interval). Nothing is chosen from this table."]
    for title, variant in (("The shipped measurement (image + crops 0.1, 0.2, 0.35)", "image + all crops"),
                           ("Image view alone", CURRENT)):
        rows = by_view[variant] = {n: score(meta, variant) for n, meta in zip(names, metas, strict=True)}
        lines += ["", f"## {title}", "", *_networks_table(rows, const_mae), "",
                  f"Constant predictor (each fold's training-mean CTR): MAE {const_mae:.4f}."]
        f = rows[names[0]]
        for n in names[1:]:
            r = rows[n]
            lo, hi = paired_bootstrap(np.abs(r["errors"]), np.abs(f["errors"]))
            iou = {k: paired_bootstrap(r[f"ious_{k}"], f[f"ious_{k}"]) for k in ("heart", "thorax")}
            lines += ["", f"{n} minus {names[0]}, CTR absolute error: {r['mae'] - f['mae']:+.4f} (95% interval "
                          f"{lo:+.4f} to {hi:+.4f}); IoU heart {r['iou_heart'] - f['iou_heart']:+.3f} "
                          f"({iou['heart'][0]:+.3f} to {iou['heart'][1]:+.3f}), thorax "
                          f"{r['iou_thorax'] - f['iou_thorax']:+.3f} ({iou['thorax'][0]:+.3f} to "
                          f"{iou['thorax'][1]:+.3f})."]
    for meta, n in zip(metas, names, strict=True):
        lines += ["", *_by_focus_folder(meta, by_view["image + all crops"][n], n, constant)]
        lines += ["", *_error_by_ellipse(by_view["image + all crops"][n], n)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


OUTLINE_GAIN, OUTLINE_CONFIRM, OUTLINE_IOU_SLACK = 0.0005, 0.0003, 0.002


def outline_report(fold_sets: list[list[str]], out: Path) -> None:
    """The ellipse step's outline options (:data:`OUTLINES`) out of fold, with the shipped views (image + all
    crops). The first ``--folds`` set chooses: the lowest CTR MAE among options whose heart and thorax IoU are each at
    most ``OUTLINE_IOU_SLACK`` below the shipped way's; it goes on to validation only if it gains at least
    ``OUTLINE_GAIN`` there and at least ``OUTLINE_CONFIRM`` on every other set (networks the choice never saw)."""
    metas = [sorted(load_cached_folds(folds), key=lambda m: m["name"]) for folds in fold_sets]
    names = recipe_names(metas, fold_sets, "images")
    shipped = next(iter(OUTLINES))
    lines = ["# How the heart and thorax outlines become ellipses, out of fold (focus-ctr)", "",
             "Written by `scripts/tune_ctr_measure.py outline`. Each set is one 5-fold cross-validation "
             f"(`train cardiothoracic --cv-fold K 5 --split-seed 0`) whose networks predict the {len(metas[0])} train "
             "and early-stop images they never trained on, measured with the shipped views (image + crops 0.1, 0.2, "
             "0.35). Options: fit only the outline points where the probability map is steep (at least s times the "
             "outline's median gradient, as the head does), for the heart, the thorax or both; or fit the heart with "
             "OpenCV's fitEllipseAMS or fitEllipseDirect. Differences are paired over images against the shipped way "
             "(95% bootstrap interval).", "",
             f"Rule (written before these numbers were seen): on the first set, the lowest CTR MAE among options whose "
             f"heart and thorax IoU are each at most {OUTLINE_IOU_SLACK} below the shipped way's; it goes on to "
             f"validation only if it gains at least {OUTLINE_GAIN} there and at least {OUTLINE_CONFIRM} on every other "
             "set."]
    scores: list[dict[str, dict]] = []
    for name, meta in zip(names, metas, strict=True):
        rows = {o: score(meta, "image + all crops", outline) for o, outline in OUTLINES.items()}
        scores.append(rows)
        base = rows[shipped]
        lines += ["", f"## {name}", "", "| option | circumference-CTR MAE | minus shipped (95% interval) | bias | "
                  "ellipse IoU heart | ellipse IoU thorax |", "| --- | --- | --- | --- | --- | --- |"]
        for o, r in rows.items():
            lo, hi = paired_bootstrap(np.abs(r["errors"]), np.abs(base["errors"]))
            lines.append(f"| {o} | {r['mae']:.4f} | {r['mae'] - base['mae']:+.4f} ({lo:+.4f} to {hi:+.4f}) | "
                         f"{r['bias']:+.4f} | {r['iou_heart']:.3f} | {r['iou_thorax']:.3f} |")
    first, base = scores[0], scores[0][shipped]
    allowed = [o for o in OUTLINES if o != shipped and first[o]["iou_heart"] >= base["iou_heart"] - OUTLINE_IOU_SLACK
               and first[o]["iou_thorax"] >= base["iou_thorax"] - OUTLINE_IOU_SLACK]
    if not allowed:
        return write_report(out, [*lines, "", f"No option kept both IoUs within {OUTLINE_IOU_SLACK} of the shipped "
                                  f"way's on {names[0]}: the shipped way stays."])
    chosen = min(allowed, key=lambda o: first[o]["mae"])
    gains = [rows[shipped]["mae"] - rows[chosen]["mae"] for rows in scores]
    passes = gains[0] >= OUTLINE_GAIN and all(g >= OUTLINE_CONFIRM for g in gains[1:])
    lines += ["", f"Chosen on {names[0]}: {chosen}. Its gain in CTR MAE on each set: "
              + "; ".join(f"{n}: {g:+.4f}" for n, g in zip(names, gains, strict=True)) + ". "
              + ("It goes on to validation." if passes else "Below the bar: validation was not consulted and the "
                                                                "shipped way stays.")]
    write_report(out, lines)


def _by_focus_folder(meta: list[dict], scored: dict, name: str, constant: np.ndarray) -> list[str]:
    """A recipe's shipped measurement by the FOCUS folder an image came from (its ``focus_split``:
    FOCUS's own training and validation folders, possibly annotated apart): reference mean, the model's bias, and
    its MAE against that of the constant predictor ``constant`` (per image) on the same images."""
    from fetalscope.data.focus import load_focus

    folder = {s.path.name: s.meta.get("focus_split", "?") for s in load_focus(with_masks=False)}
    which = np.array([folder.get(m["name"], "?") for m in meta])
    lines = [f"## By FOCUS folder (out of fold: {name}, image + crops)", "",
             "| FOCUS folder | images | reference CTR mean | CTR MAE | constant predictor's MAE | x constant | bias |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for f in sorted(set(which)):
        e, ref = scored["errors"][which == f], scored["references"][which == f]
        const_mae = float(np.abs(constant[which == f] - ref).mean())
        lines.append(f"| {f} | {len(e)} | {ref.mean():.4f} | {np.abs(e).mean():.4f} | {const_mae:.4f} | "
                     f"{np.abs(e).mean() / const_mae:.2f} | {e.mean():+.4f} |")
    return lines


def _error_by_ellipse(scored: dict, name: str) -> list[str]:
    """Which ellipse carries the CTR error: each ellipse's relative circumference error, and the CTR error left
    when one predicted ellipse is swapped for the reference's (the other kept as predicted)."""
    mae = {k: float(np.abs(scored[k]).mean()) for k in ("errors", "errors_exact_heart", "errors_exact_thorax")}
    rows = [("heart", scored["heart_relative"]), ("thorax", scored["thorax_relative"])]
    return [f"## Which ellipse carries the error (out of fold: {name}, image + crops)", "",
            "| ellipse | circumference error, mean absolute | bias | CTR MAE were it exact |",
            "| --- | --- | --- | --- |",
            *(f"| {label} | {100 * np.abs(r).mean():.1f}% | {100 * r.mean():+.1f}% | "
              f"{mae['errors_exact_' + label]:.4f} |" for label, r in rows), "",
            f"CTR MAE as measured: {mae['errors']:.4f}."]


def _error_agreement(errors: list[np.ndarray], view: str) -> list[str]:
    """How alike the seeds' networks err on the same images: the pairwise correlation of their per-image CTR
    errors and the mean spread of their predictions against their mean absolute error. Errors that agree are
    systematic (what the networks learnt against how each image was annotated): averaging seeds cannot remove
    them."""
    e = np.stack(errors)
    corr = [float(np.corrcoef(e[i], e[j])[0, 1]) for i in range(len(e)) for j in range(i + 1, len(e))]
    spread = float(e.std(axis=0, ddof=1).mean())  # errors differ by what the predictions differ by
    mae = float(np.abs(e).mean())
    r = f"{min(corr):.2f}" if f"{min(corr):.2f}" == f"{max(corr):.2f}" else f"{min(corr):.2f} to {max(corr):.2f}"
    pairs = f"{len(corr)} {'pair' if len(corr) == 1 else 'pairs'}"
    return [f"The seeds' per-image CTR errors ({view}) correlate r = {r} (pairwise, {pairs}): their predictions "
            f"of an image differ by {spread:.4f} on average (standard deviation over seeds) while they miss the "
            f"reference by {mae:.4f}. "
            + ("Most of the error is shared by every seed, so more seeds cannot remove it." if min(corr) >= 0.5 else
               "The seeds err largely apart, so averaging more of them can remove part of the error.")]


def _networks_table(rows: dict[str, dict], const_mae: float) -> list[str]:
    """Markdown rows of scores (:func:`score`) by network set, with the MAE as a multiple of the constant's."""
    return ["| networks | circumference-CTR MAE | x constant | bias | ellipse IoU heart | ellipse IoU thorax |",
            "| --- | --- | --- | --- | --- | --- |",
            *(f"| {name} | {r['mae']:.4f} | {r['mae'] / const_mae:.2f} | {r['bias']:+.4f} | {r['iou_heart']:.3f} | "
              f"{r['iou_thorax']:.3f} |" for name, r in rows.items())]


# ---- a correction of the measured CTR (offset or linear), fitted out of fold -----------------------------------
CTR_CORRECTIONS = {"none": "no correction (shipped)",
                   "offset": "CTR + (mean reference - mean prediction)",
                   "linear": "a + b CTR, least squares of the reference on the prediction"}
CORRECTION_GAIN, CORRECTION_CONFIRM, CORRECTION_VAL_SLACK = 0.0005, 0.0003, 0.0003


def correction_report(fold_sets: list[list[str]], bundle: str, out: Path) -> bool:
    """Rule C1 (written before its numbers, also in the output): each candidate of :data:`CTR_CORRECTIONS` is
    cross-fitted (each fold corrected by the fit on the other folds' out-of-fold CTRs, the shipped views). The
    better of offset and linear goes to validation only if it lowers the first cross-validation's CTR MAE by
    >= :data:`CORRECTION_GAIN` with the paired 95% interval below 0 and the second's (a replication) by
    >= :data:`CORRECTION_CONFIRM`; there, fitted on every out-of-fold image of the first, it is applied to
    ``bundle``'s validation CTRs once and passes if their MAE is at most the card's + :data:`CORRECTION_VAL_SLACK`.
    Returns whether it passed; nothing is written into the card here."""
    metas = [sorted(load_cached_folds(folds), key=lambda m: m["name"]) for folds in fold_sets]
    names = recipe_names(metas, fold_sets, "images")
    lines = ["# A correction of the measured CTR, fitted out of fold (focus-ctr)", "",
             "Written by `scripts/tune_ctr_measure.py correction`. Each cross-validation "
             "(`scripts/train_biometry.py train cardiothoracic --cv-fold K 5 --split-seed 0 ...`) predicts each of "
             f"the {len(metas[0])} train and early-stop images with a network that never trained on it, measured as "
             "shipped (image + crops). Each correction is cross-fitted: the images of fold k are corrected by the "
             "line fitted on the other folds' images. Differences are paired over images against no correction "
             "(95% bootstrap interval).", "",
             f"Rule C1 (written before these numbers): the better of `offset` and `linear` (lower MAE on "
             f"{names[0]}) goes to validation only if it lowers {names[0]}'s CTR MAE by >= {CORRECTION_GAIN} with "
             "the interval of the difference below 0"
             + (f", and {names[1]}'s by >= {CORRECTION_CONFIRM} (a replication)" if len(names) > 1 else "")
             + "; there, fitted on every out-of-fold image of the first cross-validation, it is applied once to "
             f"the validation CTRs of `{Path(bundle).name}` and passes if their MAE is at most the card's + "
             f"{CORRECTION_VAL_SLACK}."]
    gains: list[dict[str, float]] = []
    fits: list[tuple[np.ndarray, np.ndarray]] = []  # (prediction, reference) of each cross-validation
    for meta, name in zip(metas, names, strict=True):
        scored = score(meta, SHIPPED_VARIANT)
        ref, fold = scored["references"], np.array([m["fold"] for m in meta])
        pred = ref + scored["errors"]
        fits.append((pred, ref))
        constant, const_mae = fold_constant(ref, fold)
        corrected = {k: cross_fitted_correction(k, pred, ref, fold) for k in CTR_CORRECTIONS}
        base = np.abs(pred - ref)
        lines += ["", f"## {name}", "",
                  "| correction | CTR MAE | x constant | bias | difference to none (95% interval) |",
                  "| --- | --- | --- | --- | --- |"]
        gains.append({})
        for k, c in corrected.items():
            err = np.abs(c - ref)
            lo, hi = paired_bootstrap(err, base)
            gains[-1][k] = float(base.mean() - err.mean())
            gains[-1][f"{k}_hi"] = hi
            lines.append(f"| {k}: {CTR_CORRECTIONS[k]} | {err.mean():.4f} | {err.mean() / const_mae:.2f} | "
                         f"{(c - ref).mean():+.4f} | {err.mean() - base.mean():+.4f} ({lo:+.4f} to {hi:+.4f}) |")
        a, b = fit_correction("linear", pred, ref)
        lines += ["", f"Linear fit on all {len(ref)} images: reference = {-a:+.4f} + {1 - b:.3f} x prediction "
                      f"(slope 1 would mean no shrinkage); constant predictor MAE {const_mae:.4f}."]
        for k in ("offset", "linear"):
            lines += ["", *_by_focus_folder(meta, {"errors": corrected[k] - ref, "references": ref},
                                            f"{name}, {k} correction", constant)]
    best = max(("offset", "linear"), key=lambda k: gains[0][k])
    passes = gains[0][best] >= CORRECTION_GAIN and gains[0][f"{best}_hi"] < 0 and \
        all(g[best] >= CORRECTION_CONFIRM for g in gains[1:])
    lines += ["", "## Decision", "",
              f"Better candidate: `{best}`, gain {gains[0][best]:+.4f} on {names[0]}"
              + "".join(f", {g[best]:+.4f} on {n}" for g, n in zip(gains[1:], names[1:], strict=True))
              + f": {'goes to validation' if passes else 'does not go to validation (rule C1)'}."]
    if passes:
        card = json.loads((Path(bundle) / "card.json").read_text())
        shipped = float(card["metrics"]["ctr_circumference_mae"]["value"])
        val = score(load("validation", bundle), SHIPPED_VARIANT)
        val_ref = val["references"]
        fixed = apply_correction(best, fit_correction(best, *fits[0]), val_ref + val["errors"])
        mae = float(np.abs(fixed - val_ref).mean())
        passes = mae <= shipped + CORRECTION_VAL_SLACK
        lines += ["", f"Validation ({len(val_ref)} images, scored once): CTR MAE {val['mae']:.4f} as shipped (card: "
                      f"{shipped:.4f}), {mae:.4f} corrected: {'passes' if passes else 'fails'} (bar "
                      f"{shipped + CORRECTION_VAL_SLACK:.4f})."]
    write_report(out, lines)
    return passes


# ---- crops around the heart (rule C2, docs/ctr_oof_heart_crops.md) ---------------------------------------------
HEART_MARGINS = (0.25, 0.5, 1.0)  # of the heart's major axis, as the thorax crops' margins are of the thorax's
HEART_CROP_GAIN, HEART_CROP_CONFIRM, HEART_CROP_IOU_SLACK = 0.0005, 0.0003, 0.002  # rule C2's bars


def heart_crop_variants() -> dict[str, list[str]]:
    """Rule C2's heart views (name: views); the thorax keeps the shipped views in every variant."""
    shipped = VARIANTS[SHIPPED_VARIANT][0]
    crops = [f"hcrop{m:g}" for m in HEART_MARGINS]
    return {"shipped": shipped, "H1 shipped + heart crop 0.5": [*shipped, "hcrop0.5"],
            "H2 shipped + heart crops 0.25, 0.5": [*shipped, "hcrop0.25", "hcrop0.5"],
            "H3 shipped + heart crops 0.25, 0.5, 1": [*shipped, *crops], "H4 heart crops only": crops,
            **{f"(probe) heart crop {m:g} alone": [f"hcrop{m:g}"] for m in HEART_MARGINS}}


def heart_crop_cache(folder: str) -> Path:
    """Cache (``<cache>/<fold>-heart``) the flip-averaged maps of crops around the heart ellipse each held-out image
    gets as shipped (the mean over the shipped views), margins :data:`HEART_MARGINS`, with their offsets. Needs the
    fold's cache (``cache --bundle DIR --splits fold``)."""
    from fetalscope.biometry.ellipse import mean_ellipse
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    out = CACHE_ROOT / f"{Path(folder).resolve().name}-heart"
    if (out / "fold.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    m = Measurer("cardiothoracic", folder, runtime="onnx")
    samples = {s.name: s for s in validation_samples(Path(folder), "cardiothoracic", "fold")}
    crops_by_image = {}
    for rec in load("fold", folder):
        hearts = [fit_view(rec, v, *VARIANTS[SHIPPED_VARIANT][2:])[0] for v in VARIANTS[SHIPPED_VARIANT][0]]
        heart = mean_ellipse([h for h in hearts if h is not None])
        if heart is None:
            continue
        image = load_image(samples[rec["name"]].path)
        arrays, crops = {}, {}
        for margin in HEART_MARGINS:
            crop, x0, y0 = m.crop_around(image, heart, margin)
            arrays.update({f"hcrop{margin:g}_{k}": v for k, v in m.probabilities(crop, flip=True).items()})
            crops[f"hcrop{margin:g}"] = [x0, y0, crop.width, crop.height]
        np.savez_compressed(out / f"{rec['name']}.npz", **arrays)
        crops_by_image[rec["name"]] = crops
    (out / "fold.json").write_text(json.dumps(crops_by_image))
    return out


def _with_heart_crops(folder: str) -> list[dict]:
    """The fold's cached held-out images with their heart crops (:func:`heart_crop_cache`) added."""
    cached = heart_crop_cache(folder)
    crops = json.loads((cached / "fold.json").read_text())
    records = load("fold", folder)
    for rec in records:
        if rec["name"] not in crops:
            raise SystemExit(f"{rec['name']}: no heart in the shipped views of {folder}, so no heart crop")
        rec["arr"].update(np.load(cached / f"{rec['name']}.npz"))
        rec["crops"].update(crops[rec["name"]])
    return records


def heart_crops_report(fold_sets: list[list[str]], out: Path) -> bool:
    """Rule C2 (written before its numbers, also in the output): the heart ellipse averaged over crops around the
    heart as well as (or instead of) the shipped views, each cross-validation's networks on their held-out images.
    The best variant on the first cross-validation goes to validation only if it lowers the CTR MAE by
    >= :data:`HEART_CROP_GAIN` there and by >= :data:`HEART_CROP_CONFIRM` on every other, with the heart IoU at
    most :data:`HEART_CROP_IOU_SLACK` lower on each. Returns whether it passed; validation is not looked at here."""
    variants = heart_crop_variants()
    _, thorax, heart_level, thorax_level = VARIANTS[SHIPPED_VARIANT]
    metas = [sorted(pool_folds([_with_heart_crops(folder) for folder in folds]), key=lambda m: m["name"])
             for folds in fold_sets]
    names = recipe_names(metas, fold_sets, "images")
    lines = ["# Crops around the heart for the heart ellipse, out of fold (focus-ctr)", "",
             "Written by `scripts/tune_ctr_measure.py heart-crops`. Each cross-validation "
             "(`scripts/train_biometry.py train cardiothoracic --cv-fold K 5 --split-seed 0 ...`) measures each of "
             f"the {len(metas[0])} train and early-stop images with a network that never trained on it. The shipped "
             "measurement crops only around the thorax, so the heart is seen at the thorax crops' scale at most. "
             "Here the heart ellipse may also average crops around the shipped heart ellipse (margins "
             f"{', '.join(f'{m:g}' for m in HEART_MARGINS)} of its major axis, flip-averaged maps, the heart kept "
             "within the crop's thorax region as in every view); the thorax keeps the shipped views. Differences "
             "are paired over images against the shipped views (95% bootstrap interval).", "",
             f"Rule C2 (written before these numbers): the variant with the lowest CTR MAE on {names[0]} goes to one "
             f"validation look only if it lowers the CTR MAE by >= {HEART_CROP_GAIN} there and by >= "
             f"{HEART_CROP_CONFIRM} on every other cross-validation, its heart IoU at most {HEART_CROP_IOU_SLACK} "
             "lower on each."]
    scored = []
    for meta, name in zip(metas, names, strict=True):
        rows = {k: score(meta, (v, thorax, heart_level, thorax_level)) for k, v in variants.items()}
        scored.append(rows)
        base = np.abs(rows["shipped"]["errors"])
        lines += ["", f"## {name}", "", "| heart views | CTR MAE | bias | IoU heart | heart circumference off | "
                  "difference to shipped (95% interval) |", "| --- | --- | --- | --- | --- | --- |"]
        for k, r in rows.items():
            err = np.abs(r["errors"])
            lo, hi = paired_bootstrap(err, base)
            lines.append(f"| {k} | {r['mae']:.4f} | {r['bias']:+.4f} | {r['iou_heart']:.3f} | "
                         f"{np.abs(r['heart_relative']).mean():.1%} | {err.mean() - base.mean():+.4f} "
                         f"({lo:+.4f} to {hi:+.4f}) |")
    candidates = [k for k in variants if k != "shipped" and not k.startswith("(probe)")]
    best = min(candidates, key=lambda k: scored[0][k]["mae"])
    gains = [rows["shipped"]["mae"] - rows[best]["mae"] for rows in scored]
    iou_ok = all(rows[best]["iou_heart"] >= rows["shipped"]["iou_heart"] - HEART_CROP_IOU_SLACK for rows in scored)
    passes = gains[0] >= HEART_CROP_GAIN and all(g >= HEART_CROP_CONFIRM for g in gains[1:]) and iou_ok
    lines += ["", "## Decision", "",
              f"Best on {names[0]}: {best}; CTR MAE gain " + ", ".join(f"{g:+.4f} on {n}" for g, n in
                                                                       zip(gains, names, strict=True))
              + f": {'goes to validation' if passes else 'not adopted; validation not consulted (rule C2)'}."
              + ("" if passes else " Magnified around the heart, the networks draw it smaller (see the biases): "
                 "they were trained on whole images, where the heart never fills the frame.")]
    write_report(out, lines)
    return passes


def fold_constant(ref: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, float]:
    """The constant predictor out of fold: each image gets the mean reference CTR of the images its fold's model
    trained on (the other folds); with its MAE."""
    constant = np.array([ref[fold != k].mean() for k in fold])
    return constant, float(np.abs(constant - ref).mean())


def load_cached_folds(folds: list[str]) -> list[dict]:
    """The cached held-out images of one cross-validation's fold models, in fold order, each with its ``fold``
    index; an image held out by two of them is refused."""
    return pool_folds([load("fold", folder) for folder in folds])


def _described(card: dict) -> str:
    """What the scored bundle is, from its card: one network or an ensemble, chosen by early stopping or refit."""
    training = card.get("training") or {}
    members = len(training.get("members") or []) or 1
    how = "trained on the train and early-stop images (refit)" if training.get("refit") else \
        "trained on the train images and chosen by early stopping"
    return f"{'one network' if members == 1 else f'the mean of {members} networks'} {how}"


# ---- the circumference-CTR interval (``fetalscope.biometry.uncertainty``), calibrated out of fold ------------------
SHIPPED_VARIANT = "image + all crops"  # the shipped focus-ctr's views (flip-averaged maps, level 0.5)
INTERVAL_COVERAGE, INTERVAL_OVERALL, INTERVAL_WITHIN, INTERVAL_SHIP = 0.9, 0.88, 0.85, 0.85


def view_ctrs(meta: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Circumference CTR of the shipped measurement and the standard deviation of its views' own CTRs, per image."""
    from fetalscope.biometry.cardiothoracic import ctr_ratios
    from fetalscope.biometry.ellipse import mean_ellipse
    from fetalscope.biometry.uncertainty import views_sd

    views, _, lh, lt = VARIANTS[SHIPPED_VARIANT]
    ctr, sd = [], []
    for m in meta:
        fits = [fit_view(m, v, lh, lt) for v in views]
        heart = mean_ellipse([h for h, _ in fits if h is not None])
        thorax = mean_ellipse([t for _, t in fits if t is not None])
        ctr.append(ctr_ratios(heart, thorax)["circumference"])
        sd.append(views_sd([ctr_ratios(h, t)["circumference"] for h, t in fits if h is not None and t is not None]))
    return np.array(ctr), np.array(sd)


def _reference_ctrs(meta: list[dict]) -> np.ndarray:
    from fetalscope.biometry.cardiothoracic import ctr_ratios
    from fetalscope.biometry.ellipse import Ellipse

    return np.array([ctr_ratios(Ellipse.from_dict(m["ref"]["heart"]), Ellipse.from_dict(m["ref"]["thorax"]))
                     ["circumference"] for m in meta])


def interval_report(folds: list[str], bundle: str, out: Path, adopt: bool = False) -> None:
    """The circumference-CTR interval out of fold, by a rule written before the results (also in the output): each
    candidate is cross-fitted on the fold models' out-of-fold images; eligible forms cover >= 0.88 overall and
    >= 0.85 within each tertile of the reference CTR, in the fifth of images whose views disagree most and in the
    rest; the narrowest eligible form is chosen (none eligible: nothing ships), its quantile(s) fitted on every
    out-of-fold image and its coverage measured once on validation by the bundle; with ``adopt`` it is written
    into the bundle's card (``inference.ctr_interval``) if that coverage is >= 0.85."""
    from fetalscope.biometry.uncertainty import coverage_and_width
    from fetalscope.train.segmenter.interval_calibration import (
        Candidate,
        calibrate,
        choose,
        cross_fitted,
        table_lines,
    )

    oof = load_cached_folds(folds)
    ref = _reference_ctrs(oof)
    fold = np.array([m["fold"] for m in oof])
    ctr, sd = view_ctrs(oof)
    t1, t2 = np.quantile(ref, [1 / 3, 2 / 3])
    top = sd >= np.quantile(sd, 0.8)
    groups = {f"reference CTR < {t1:.3f}": ref < t1, f"{t1:.3f}-{t2:.3f}": (ref >= t1) & (ref < t2),
              f">= {t2:.3f}": ref >= t2, "views disagree most (top fifth of SD)": top, "the other four fifths": ~top}
    e1, e2 = (round(float(x), 4) for x in np.quantile(ctr, [1 / 3, 2 / 3]))  # tertiles of the measured CTR
    candidates = [Candidate("constant"), Candidate("relative"), *(Candidate("spread", f) for f in (0.01, 0.02, 0.04)),
                  Candidate("banded", edges=(e1, e2)), Candidate("banded", 0.02, edges=(e1, e2))]
    results = [cross_fitted(c, ctr, sd, ref, fold, INTERVAL_COVERAGE, groups) for c in candidates]
    chosen = choose(results, INTERVAL_OVERALL, INTERVAL_WITHIN)
    text = ["# An interval for each cardiothoracic ratio, calibrated out of fold", "",
            f"Written by `scripts/tune_ctr_measure.py interval` for bundle `{Path(bundle).name}`. Each circumference "
            f"CTR is measured from the mean heart and thorax ellipses of {len(VARIANTS[SHIPPED_VARIANT][0])} views "
            f"({', '.join(VARIANTS[SHIPPED_VARIANT][0])}; flip-averaged maps); the spread is the standard deviation "
            "of the CTRs of the views taken one by one. An interval `CTR +- q x scale` is calibrated "
            f"(split-conformal, nominal coverage {INTERVAL_COVERAGE:.0%}) on the out-of-fold images of a "
            f"{len(folds)}-fold cross-validation ({len(oof)} images, each measured by the one fold model that never "
            "trained on it). Forms of `scale` (`fetalscope.biometry.uncertainty`): `constant`, `relative` (CTR), "
            "`spread` (SD of the views' CTRs + floor x CTR), `banded` (its own quantile per tertile of the "
            "measured CTR, optionally of the `spread` scale).", "",
            "Rule, written before the results (after the head's interval, so its candidate list borrows what worked "
            "there): every form is cross-fitted (fold k's intervals use the quantile of the other folds). A form is "
            f"eligible if it covers >= {INTERVAL_OVERALL} of all images and >= {INTERVAL_WITHIN} within each group "
            "below; the eligible form with the narrowest mean interval is chosen (none eligible: nothing ships). "
            "Its quantile is then fitted on every out-of-fold image and its coverage measured once on the "
            f"validation split by the bundle; it ships (the card's `inference.ctr_interval`) if that coverage is "
            f">= {INTERVAL_SHIP}.", "",
            f"Median SD of the views' CTRs out of fold: {np.median(sd):.4f}; CTR MAE out of fold "
            f"{np.abs(ctr - ref).mean():.4f}.", "",
            "## Out of fold, cross-fitted", "", "Cells: coverage (mean interval width, CTR units).", "",
            *table_lines(results, INTERVAL_OVERALL, INTERVAL_WITHIN, width_digits=4), ""]
    if chosen is None:
        return write_report(out, [*text, "No form met the rule; nothing ships."])
    basis = (f"split-conformal on the out-of-fold circumference CTRs of {len(oof)} FOCUS images (a {len(folds)}-fold "
             "cross-validation over the train and early-stop splits, one network per fold); docs/ctr_interval.md")
    rule = calibrate(chosen.candidate, ctr, sd, ref, INTERVAL_COVERAGE, basis=basis)
    val = load("validation", bundle)
    ref_v = _reference_ctrs(val)
    ctr_v, sd_v = view_ctrs(val)
    cov_v, width_v = coverage_and_width(rule, ctr_v, sd_v, ref_v)
    ships = cov_v >= INTERVAL_SHIP
    text += [f"Chosen: `{chosen.candidate.label}`: {rule.describe(basis=False)}.", "",
             "## Validation (measured once, the bundle)", "",
             f"{len(val)} images: coverage {cov_v:.3f}, mean interval width {width_v:.4f} (median SD of the views' "
             f"CTRs {np.median(sd_v):.4f}; CTR MAE {np.abs(ctr_v - ref_v).mean():.4f}).", "",
             f"Decision: {'ships' if ships else 'does not ship'} (coverage {cov_v:.3f} "
             f"{'>=' if ships else '<'} {INTERVAL_SHIP})."]
    write_report(out, text)
    print(json.dumps(rule.to_dict()))
    if adopt and ships:
        write_card_inference(bundle, "ctr_interval", rule.to_dict())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["cache", "report", "oof", "seeds", "recipes", "interval", "outline",
                                       "correction", "heart-crops"])
    p.add_argument("--folds", nargs="+", action="append", default=[],
                   help="oof: the cross-validation models' bundle folders; seeds: repeat once per seed; "
                        "recipes: repeat once per recipe, the shipped recipe first; outline: repeat once per "
                        "cross-validation, the one that chooses first; correction, heart-crops: repeat once per "
                        "cross-validation, the one that decides first")
    p.add_argument("--pipeline", nargs="+", action="append", default=[],
                   help="seeds: one seed's fold bundle folders (repeat per seed) to also run the whole measurement "
                        "by their mean")
    p.add_argument("--out", type=Path, default=None,
                   help="report file (default docs/ctr_postprocessing.md, docs/ctr_oof.md, docs/ctr_oof_seeds.md, "
                        "docs/ctr_oof_recipes.md, docs/ctr_interval.md, docs/ctr_oof_outline.md, "
                        "docs/ctr_oof_correction.md, docs/ctr_oof_heart_crops.md)")
    p.add_argument("--adopt", action="store_true", help="interval: write the chosen rule into the bundle's card "
                   "when its validation coverage passes")
    p.add_argument("--splits", nargs="+", default=["early_stop", "validation"])
    p.add_argument("--bundle", default=BUNDLE)
    args = p.parse_args(argv)
    if args.command == "report":
        report(args.out or Path("docs/ctr_postprocessing.md"))
        return 0
    if args.command == "oof":
        oof_report(need_one_fold_set(p, args.folds, "oof"), args.bundle, args.out or Path("docs/ctr_oof.md"))
        return 0
    if args.command == "seeds":
        seeds_report(need_fold_sets(p, args.folds, "seeds", "seed"), args.out or Path("docs/ctr_oof_seeds.md"),
                     args.pipeline or None)
        return 0
    if args.command == "interval":
        interval_report(need_one_fold_set(p, args.folds, "interval"), args.bundle,
                        args.out or Path("docs/ctr_interval.md"), args.adopt)
        return 0
    if args.command == "outline":
        outline_report(need_fold_sets(p, args.folds, "outline", "cross-validation"),
                       args.out or Path("docs/ctr_oof_outline.md"))
        return 0
    if args.command == "correction":
        correction_report(need_fold_sets(p, args.folds, "correction", "cross-validation"), args.bundle,
                          args.out or Path("docs/ctr_oof_correction.md"))
        return 0
    if args.command == "heart-crops":
        heart_crops_report(need_fold_sets(p, args.folds, "heart-crops", "cross-validation"),
                           args.out or Path("docs/ctr_oof_heart_crops.md"))
        return 0
    if args.command == "recipes":
        recipes_report(need_fold_sets(p, args.folds, "recipes", "recipe"), args.out or Path("docs/ctr_oof_recipes.md"))
        return 0
    import torch

    torch.set_num_threads(1)
    cache(args.splits, args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
