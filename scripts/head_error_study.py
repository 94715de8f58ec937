#!/usr/bin/env python
"""Where the head-circumference error of an HC18 bundle comes from, on its early-stopping split only
(the validation split stays untouched by these choices).

For each bundle: HC mean absolute difference and bias (all heads and HC >= 200 mm) with the shipped
post-processing, with test-time averaging over sub-pixel shifts and over scales, and with each OpenCV
ellipse fitter at outline levels 0.4 / 0.5 / 0.6. With two bundles, also the correlation of their
per-image HC errors (high: the errors belong to the images, not to one model).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/head_error_study.py src/fetalscope/models/bundled/hc18-head \
        [OTHER_BUNDLE] [--split early_stop] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from fetalscope.biometry.ellipse import outline_points, ramanujan_circumference
from fetalscope.biometry.measure import Measurer
from fetalscope.imaging.loader import load_image
from fetalscope.train.segmenter.measurement_report import validation_samples

SHIFTS = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]  # in model pixels
SCALES = [1.0, 0.93, 1.07]
FITTERS = {"least squares": cv2.fitEllipse, "AMS": cv2.fitEllipseAMS, "direct": cv2.fitEllipseDirect}


def circumference(prob: np.ndarray, shape: tuple[int, int], level: float = 0.5,
                  fitter: str = "least squares") -> float:
    """Ellipse circumference (original pixels) fitted to the outline of ``prob`` at ``level``, outline
    points on the image frame dropped as the shipped fitter does."""
    pts, on_frame = outline_points(prob, level=level)
    if on_frame.any() and (~on_frame).sum() >= max(6, int(0.25 * len(pts))):
        pts = pts[~on_frame]
    h, w = prob.shape
    sx, sy = shape[1] / w, shape[0] / h
    pts = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1).astype(np.float32)
    (_, _), (width, height), _ = FITTERS[fitter](pts)
    return ramanujan_circumference(width / 2, height / 2)


def warped_probability(m: Measurer, image, dx: float, dy: float, scale: float) -> np.ndarray:
    """The model's head probability on ``image`` shifted by (dx, dy) model pixels and scaled about its centre."""
    h0, w0 = m.bundle.preprocess.input_size
    H, W = image.height, image.width
    tx, ty = dx * W / w0, dy * H / h0
    matrix = np.array([[scale, 0, (1 - scale) * W / 2 + tx], [0, scale, (1 - scale) * H / 2 + ty]], np.float32)
    pixels = cv2.warpAffine(image.pixels, matrix, (W, H), flags=cv2.INTER_LINEAR)
    return m.probabilities(replace(image, pixels=pixels))["head"]


def study(bundle: Path, split: str) -> dict:
    m = Measurer("head", bundle=bundle, runtime="auto")
    rows = []
    for s in validation_samples(bundle, "head", split):
        image = load_image(s.path)
        shape, px, ref = (image.height, image.width), float(s.meta["pixel_size_mm"]), float(s.meta["hc_mm"])
        plain = m.probabilities(image)["head"]
        row = {"image": s.name, "hc_ref_mm": ref}
        for level in (0.4, 0.5, 0.6):
            for fitter in FITTERS:
                row[f"{fitter} @ {level}"] = circumference(plain, shape, level, fitter) * px - ref
        row["shift average"] = np.mean([circumference(plain if (dx, dy) == (0, 0) else
                                                      warped_probability(m, image, dx, dy, 1.0), shape)
                                        for dx, dy in SHIFTS]) * px - ref
        row["scale average"] = np.mean([circumference(plain if k == 1.0 else warped_probability(m, image, 0, 0, k),
                                                      shape) / k for k in SCALES]) * px - ref
        rows.append(row)
    ref = np.array([r["hc_ref_mm"] for r in rows])
    variants = [k for k in rows[0] if k not in ("image", "hc_ref_mm")]
    summary = {}
    for v in variants:
        d = np.array([r[v] for r in rows])
        big = ref >= 200
        summary[v] = {"mad_mm": float(np.abs(d).mean()), "bias_mm": float(d.mean()),
                      "mad_ge_200_mm": float(np.abs(d[big]).mean()) if big.any() else None}
    return {"bundle": str(bundle), "split": split, "n_images": len(rows), "summary": summary, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", type=Path, nargs="+", help="one or two head bundles (folders with splits.json)")
    p.add_argument("--split", default="early_stop", help="split of splits.json to study (default early_stop)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = [study(b, args.split) for b in args.bundles[:2]]
    for r in results:
        print(f"{r['bundle']} on {r['split']} ({r['n_images']} images)")
        print(f"  {'variant':<26}{'MAD mm':>8}{'bias mm':>9}{'MAD >=200':>11}")
        for v, s in r["summary"].items():
            big = "-" if s["mad_ge_200_mm"] is None else f"{s['mad_ge_200_mm']:.2f}"
            print(f"  {v:<26}{s['mad_mm']:>8.3f}{s['bias_mm']:>+9.3f}{big:>11}")
    out = {"results": results}
    if len(results) == 2:
        a = {r["image"]: r["least squares @ 0.5"] for r in results[0]["rows"]}
        b = {r["image"]: r["least squares @ 0.5"] for r in results[1]["rows"]}
        common = sorted(set(a) & set(b))
        corr = float(np.corrcoef([a[k] for k in common], [b[k] for k in common])[0, 1])
        out["error_correlation"] = corr
        print(f"correlation of per-image HC errors between the two bundles: {corr:.3f} ({len(common)} images)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
