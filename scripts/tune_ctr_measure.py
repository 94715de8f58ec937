#!/usr/bin/env python
"""Explore the heart/thorax ellipse post-processing of ``focus-ctr`` on cached network outputs.

    python scripts/tune_ctr_measure.py cache [--splits early_stop validation]

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["cache"])
    p.add_argument("--splits", nargs="+", default=["early_stop", "validation"])
    p.add_argument("--bundle", default="src/fetalscope/models/bundled/focus-ctr")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cache(args.splits, args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
