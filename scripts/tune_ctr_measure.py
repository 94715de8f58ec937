#!/usr/bin/env python
"""Explore the heart/thorax ellipse post-processing of ``focus-ctr`` on cached network outputs.

    python scripts/tune_ctr_measure.py cache [--splits early_stop validation]
    python scripts/tune_ctr_measure.py report [--out docs/ctr_postprocessing.md]

The cache (``/tmp/fetalscope-ctr-tune``) holds per image the flip-averaged heart and thorax probability
maps of the whole image and of crops around the thorax ellipse (margins 0.1, 0.2, 0.35) with the crop
offsets, so that variants of the ellipse step can be scored in seconds; settings are chosen on early_stop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("FETALSCOPE_TUNE_CACHE", "/tmp/fetalscope-ctr-tune"))
MARGINS = (0.1, 0.2, 0.35)


def crop_box(around, margin: float, input_size: tuple[int, int]) -> tuple[float, float, int, int]:
    h0, w0 = input_size
    bh = bw = 2.0 * around.major * (1.0 + margin)
    bw, bh = (bh * w0 / h0, bh) if bw / bh < w0 / h0 else (bw, bw * h0 / w0)
    x0, y0 = around.cx - bw / 2.0, around.cy - bh / 2.0
    return x0, y0, max(8, int(round(bw))), max(8, int(round(bh)))


def cache(splits: list[str], bundle: str) -> None:
    import cv2

    from fetalscope.biometry.ellipse import Ellipse
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import validation_samples

    folder = Path(bundle)
    m = Measurer("cardiothoracic", str(folder), runtime="onnx")
    CACHE.mkdir(parents=True, exist_ok=True)
    for split in splits:
        meta = []
        for s in validation_samples(folder, "cardiothoracic", split):
            image = load_image(s.path)
            probs = m.probabilities(image, flip=True)
            thorax = m.ellipses(image, probs)["thorax"]
            arrays = {f"plain_{k}": v for k, v in probs.items()}
            crops = {}
            for margin in MARGINS:
                x0, y0, w, h = crop_box(thorax, margin, m.bundle.preprocess.input_size)
                shift = np.array([[1, 0, -x0], [0, 1, -y0]], np.float32)
                crop = cv2.warpAffine(image.pixels, shift, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
                for k, v in m.probabilities(replace(image, pixels=crop), flip=True).items():
                    arrays[f"zoom{margin}_{k}"] = v
                crops[str(margin)] = [x0, y0, w, h]
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
}
CURRENT = "current (image, level 0.5)"


def load(split: str) -> list[dict]:
    meta = json.loads((CACHE / f"{split}.json").read_text())
    for m in meta:
        m["arr"] = dict(np.load(CACHE / f"{m['name']}.npz"))
    return meta


def fit_view(m: dict, view: str, heart_level: float, thorax_level: float) -> tuple:
    """(heart, thorax) ellipses of one cached view in image pixels, post-processed as the Measurer does."""
    import cv2

    from fetalscope.biometry.ellipse import fill_holes, fit_ellipse_points, largest_component, outline_points

    thorax_p, heart_p = m["arr"][f"{view}_thorax"], m["arr"][f"{view}_heart"]
    big_h, big_w = m["shape"]
    h, w = thorax_p.shape
    if view == "plain":
        x0 = y0 = 0.0
        sx, sy = big_w / w, big_h / h
    else:
        x0, y0, cw, ch = m["crops"][view[4:]]
        sx, sy = cw / w, ch / h
    region = fill_holes(largest_component(thorax_p >= thorax_level))
    if not region.any():
        return None, None
    near = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    fits = []
    for p, level in ((np.where(near, heart_p, 0.0), heart_level), (thorax_p, thorax_level)):
        pts, on = outline_points(p, level=level)
        if len(pts) < 6:
            fits.append(None)
            continue
        if on.any() and (~on).sum() >= max(6, int(0.25 * len(pts))):
            pts = pts[~on]
        fits.append(fit_ellipse_points(np.stack([(pts[:, 0] + 0.5) * sx - 0.5 + x0,
                                                 (pts[:, 1] + 0.5) * sy - 0.5 + y0], axis=1)))
    return fits[0], fits[1]


def score(meta: list[dict], variant: str) -> dict[str, float]:
    from fetalscope.biometry.cardiothoracic import ctr_ratios
    from fetalscope.biometry.ellipse import Ellipse, ellipse_overlap, mean_ellipse

    views_h, views_t, lh, lt = VARIANTS[variant]
    errs, iou_h, iou_t = [], [], []
    for m in meta:
        fits = {v: fit_view(m, v, lh, lt) for v in {*views_h, *views_t}}
        heart = mean_ellipse([fits[v][0] for v in views_h if fits[v][0] is not None])
        thorax = mean_ellipse([fits[v][1] for v in views_t if fits[v][1] is not None])
        ref_h, ref_t = Ellipse.from_dict(m["ref"]["heart"]), Ellipse.from_dict(m["ref"]["thorax"])
        errs.append(ctr_ratios(heart, thorax)["circumference"] - ctr_ratios(ref_h, ref_t)["circumference"])
        iou_h.append(ellipse_overlap(heart, ref_h, tuple(m["shape"]))["iou"])
        iou_t.append(ellipse_overlap(thorax, ref_t, tuple(m["shape"]))["iou"])
    e = np.array(errs)
    return {"mae": float(np.abs(e).mean()), "bias": float(e.mean()), "iou_heart": float(np.mean(iou_h)),
            "iou_thorax": float(np.mean(iou_t)), "n": len(e)}


def table(split: str, variants: list[str]) -> tuple[list[str], dict]:
    meta = load(split)
    lines = [f"focus-ctr, {split} ({len(meta)} images)", "",
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
    es_lines, es = table("early_stop", list(VARIANTS))
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["cache", "report"])
    p.add_argument("--out", type=Path, default=Path("docs/ctr_postprocessing.md"))
    p.add_argument("--splits", nargs="+", default=["early_stop", "validation"])
    p.add_argument("--bundle", default="src/fetalscope/models/bundled/focus-ctr")
    args = p.parse_args(argv)
    if args.command == "report":
        report(args.out)
        return 0
    import torch

    torch.set_num_threads(1)
    cache(args.splits, args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
