"""Out-of-fold pooling shared by the post-processing tuners (tune_head_measure.py, tune_ctr_measure.py): the
cached held-out images of a cross-validation's fold models become one list, each tagged with its fold; a fold
set's training recipe in a few words; the paired bootstrap both tuners compare recipes with; a measurement's
correction (HC or CTR) fitted on other folds."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def pool_folds(per_fold: list[list[dict]]) -> list[dict]:
    """``per_fold[k]``: fold model k's cached held-out records (``name`` each); one list with ``fold: k`` added.
    An image held out by two fold models is refused: the folds are not one cross-validation."""
    pooled = [{**m, "fold": k} for k, records in enumerate(per_fold) for m in records]
    twice = [name for name, n in Counter(m["name"] for m in pooled).items() if n > 1]
    if twice:
        raise SystemExit(f"{twice[0]} is held out by two fold models: are these folds of one cross-validation?")
    return pooled


def write_report(out: Path, text: list[str]) -> None:
    """Write a Markdown report (lines) and print it."""
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


def write_card_inference(bundle: str | Path, key: str, value: dict[str, Any]) -> None:
    """Set the bundle card's ``inference.<key>`` and rewrite card.json and card.md."""
    from fetalscope.biometry.segbundle import render_seg_card_md
    from fetalscope.models.bundle import write_card_files

    folder = Path(bundle)
    card = json.loads((folder / "card.json").read_text())
    card.setdefault("inference", {})[key] = value
    write_card_files(folder, card, render_seg_card_md(card))
    print(f"wrote inference.{key} into {folder / 'card.json'}")


def recipe_name(card: dict) -> str:
    """A fold set's recipe in a few words, from its card: encoder, input size, extra loss terms, augmentation
    zoom, weight averaging, pixel-size weighting, the bundle it started from (``--init-from``) and seed."""
    from fetalscope.train.segmenter.trainer import DEFAULT_SCALE_RANGE

    cfg = card["training"]["config"]
    h, w = cfg["input_size"]
    losses = "".join(f", {label} {cfg[key]:g}" for key, label in (("boundary_weight", "boundary weight"),
                                                                   ("circumference_weight", "circumference weight"))
                     if cfg.get(key))
    scales = tuple(cfg.get("scale_range") or DEFAULT_SCALE_RANGE)
    zoom = f", zoom {scales[0]:g}-{scales[1]:g}" if scales != DEFAULT_SCALE_RANGE else ""
    averaged = f", mean of the last {cfg['average_last']} epochs" if (cfg.get("average_last") or 0) > 1 else ""
    start = f", started from {Path(cfg['init_from']).name}" if cfg.get("init_from") else ""
    weighted = f", pixel-size weight {cfg['pixel_size_weight']:g}" if cfg.get("pixel_size_weight") else ""
    return (f"{cfg.get('encoder', 'efficientnet_lite0')}, {h}x{w}{losses}{zoom}{averaged}{weighted}{start}, "
            f"seed {cfg['seed']}")


def opencv_fitter(function_name: str):
    """An OpenCV ellipse fitter (``fitEllipseAMS``, ``fitEllipseDirect``) of ``N x 2`` points, returning an
    :class:`~fetalscope.biometry.ellipse.Ellipse` or None."""
    def fit(xy: np.ndarray):
        import cv2

        from fetalscope.biometry.ellipse import Ellipse

        (cx, cy), (w, h), angle = getattr(cv2, function_name)(xy.astype(np.float32))
        if not (np.isfinite(w) and np.isfinite(h)) or w <= 0 or h <= 0:
            return None
        return Ellipse(float(cx), float(cy), float(w) / 2, float(h) / 2, float(angle)).normalised()
    return fit


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(a) - mean(b) over images resampled with replacement (the same images for both)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    diffs = a[idx].mean(1) - b[idx].mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def need_one_fold_set(parser: ArgumentParser, folds: list[list[str]], command: str) -> list[str]:
    """The single ``--folds`` set (one cross-validation's fold bundles) that ``command`` needs, or a usage error."""
    if len(folds) != 1:
        parser.error(f"{command} needs one --folds DIR DIR ...")
    return folds[0]


def need_fold_sets(parser: ArgumentParser, folds: list[list[str]], command: str, each: str) -> list[list[str]]:
    """At least two ``--folds`` sets of as many folds, one per ``each`` (a recipe, a seed), or a usage error."""
    if len(folds) < 2 or len({len(f) for f in folds}) != 1:
        parser.error(f"{command} needs --folds DIR ... once per {each} (at least two), each with the same number of "
                     "folds")
    return folds


def fold_set_recipe(folds: list[str]) -> str:
    """The recipe name (:func:`recipe_name`) of a fold set, from its first fold model's card."""
    return recipe_name(json.loads((Path(folds[0]) / "card.json").read_text()))


def recipe_names(metas: list[list[dict]], sets: list[list[str]], what: str) -> list[str]:
    """The recipe name of each fold set (``metas[i]``: set ``i``'s pooled held-out records sorted by name), after
    checking that every set holds out the same ``what`` (one ``--split-seed``) and that no recipe comes twice."""
    if any([m["name"] for m in meta] != [m["name"] for m in metas[0]] for meta in metas[1:]):
        raise SystemExit(f"the fold sets hold out different {what}: were they trained with one --split-seed?")
    names = [fold_set_recipe(f) for f in sets]
    if len(set(names)) != len(names):
        raise SystemExit(f"two --folds sets have the same recipe: {names}")
    return names


def fit_correction(kind: str, pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Parameters of correction ``kind`` of predictions ``pred`` fitted against references ``ref``: ``none``;
    ``scale``, x (1 - mean relative difference); ``offset``, + (mean reference - mean prediction); ``linear``,
    x - (a + b x) with a and b by least squares on the difference (the regression of reference on prediction)."""
    if kind == "none":
        return np.zeros(0)
    if kind == "scale":
        return np.array([float(np.mean((pred - ref) / pred))])
    if kind == "offset":
        return np.array([float(np.mean(ref - pred))])
    if kind != "linear":
        raise ValueError(f"unknown correction {kind!r}: none, scale, offset or linear")
    if np.ptp(pred) == 0:  # one value predicted: no slope to fit, the line is the offset
        return np.array([float(np.mean(pred - ref)), 0.0])
    slope, intercept = np.polyfit(pred, pred - ref, 1)
    return np.array([intercept, slope])


def apply_correction(kind: str, params: np.ndarray, pred: np.ndarray) -> np.ndarray:
    if kind == "none":
        return pred
    if kind == "scale":
        return pred * (1.0 - params[0])
    if kind == "offset":
        return pred + params[0]
    return pred - (params[0] + params[1] * pred)


def cross_fitted_correction(kind: str, pred: np.ndarray, ref: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Corrected ``pred`` where each fold's correction is fitted on the other folds only."""
    out = pred.copy()
    for k in np.unique(fold):
        sel = fold == k
        out[sel] = apply_correction(kind, fit_correction(kind, pred[~sel], ref[~sel]), pred[sel])
    return out
