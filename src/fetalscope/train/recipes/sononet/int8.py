"""The int8 ONNX twin of the bundled ``sononet-planes``, measured on real held-out images
(``scripts/quantize_bundle.py`` and :func:`.build.build_sononet_bundles` call :func:`quantize_sononet_planes`).

1. Calibration images: real images of the bundle's *calibration* split (the split that fitted the
   temperature in :mod:`.build`; patient / subject / duplicate-group disjoint from the test split), up to
   ``per_source`` per source, drawn with a fixed seed. Their list goes to ``int8_calibration.json`` in the
   bundle.
2. ``model.int8.onnx`` from the bundle's fp32 ``model.onnx`` (:func:`fetalscope.models.quantize.quantize_bundle`;
   the fp32 model is read, never rewritten).
3. Fidelity on every image of the bundle's *test* split (the split report.json scores): top-1 agreement
   and absolute probability differences int8 vs fp32 ONNX (overall and per source), and accuracy of both
   against the labels.
4. Latency (optional, ``bench_runs``): :mod:`fetalscope.models.latency` on test images.

Everything goes into the card's ``int8`` field (card.md re-rendered). Numbers are computed here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope import config
from fetalscope.data.real_sets import RealImage, all_real_images
from fetalscope.models.bundle import (
    CARD,
    CARD_MD,
    load_bundle,
    read_card_file,
    render_card_md,
    write_card_files,
)
from fetalscope.models.latency import bundle_latency
from fetalscope.models.quantize import (
    QuantizeSettings,
    compare_probabilities,
    preprocess_images,
    quantize_bundle,
)
from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor
from fetalscope.train.recipes.sononet.common import calibration_and_test

CALIBRATION_LIST = "int8_calibration.json"
# the recipe (QuantizeSettings' defaults, spelled out): QDQ, per-channel int8 weights, uint8 activations,
# 99.999th-percentile activation ranges, first and last convolution float
SETTINGS = QuantizeSettings(fmt="qdq", per_channel=True, activation_type="uint8", method="percentile",
                            percentile=99.999, float_first=1, float_last=1)
CHUNK = 32
GENERATED_BY = "scripts/quantize_bundle.py"


def pick_calibration(cal: list[RealImage], per_source: int, seed: int) -> list[RealImage]:
    """Up to ``per_source`` images of each source (fixed seed), so no one source sets the int8 ranges."""
    rng = np.random.default_rng(seed)
    chosen: list[RealImage] = []
    for source in sorted({im.source for im in cal}):
        pool = sorted((im for im in cal if im.source == source), key=lambda im: str(im.path))
        idx = sorted(rng.choice(len(pool), min(per_source, len(pool)), replace=False))
        chosen += [pool[i] for i in idx]
    return chosen


def probabilities(predictor: OnnxPredictor, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([predictor.predict_proba(inputs[i:i + CHUNK]) for i in range(0, len(inputs), CHUNK)])


def fidelity(images: list[RealImage], classes: list[str], p32: np.ndarray, p8: np.ndarray) -> dict[str, Any]:
    """Agreement int8 vs fp32 (all images and per source) and accuracy of both against the labels."""
    src = np.array([im.source for im in images])
    y = np.array([classes.index(im.plane) for im in images])
    whole = compare_probabilities(p32, p8)
    disagree = [
        {"image": images[i].path.name, "source": images[i].source, "label": images[i].plane,
         "fp32": classes[int(p32[i].argmax())], "int8": classes[int(p8[i].argmax())],
         "fp32_top1_margin": float(np.sort(p32[i])[-1] - np.sort(p32[i])[-2])}
        for i in whole.pop("disagreeing_indices")
    ]
    per_source = {}
    for s in dict.fromkeys(src):
        m = src == s
        row = compare_probabilities(p32[m], p8[m])
        row.pop("disagreeing_indices")
        row["accuracy_fp32"] = float((p32[m].argmax(1) == y[m]).mean())
        row["accuracy_int8"] = float((p8[m].argmax(1) == y[m]).mean())
        per_source[str(s)] = row
    per_image_max = np.abs(p32 - p8).max(1)
    return {
        **whole,
        "p95_per_image_max_abs_prob_diff": float(np.percentile(per_image_max, 95)),
        "accuracy_fp32": float((p32.argmax(1) == y).mean()),
        "accuracy_int8": float((p8.argmax(1) == y).mean()),
        "correct_fp32": int((p32.argmax(1) == y).sum()),
        "correct_int8": int((p8.argmax(1) == y).sum()),
        "per_source": per_source,
        "disagreements": disagree,
    }


def latency(bundle_dir: Path, image_paths: list[Path], runs: int, threads: int) -> dict[str, Any]:
    """Batch-1 p50/p95 and batch-8 throughput of eager / ONNX fp32 / ONNX int8 (:mod:`fetalscope.models.latency`)."""
    result = bundle_latency(bundle_dir, image_paths, threads=threads, runs=runs, batch=8, batch_runs=3, int8=True)
    return {
        "threads": threads,
        "runs": runs,
        "batch1_p50_ms": {k: v["batch1_p50_ms"] for k, v in result["results"].items()},
        "batch1_p95_ms": {k: v["batch1_p95_ms"] for k, v in result["results"].items()},
        "images_per_s_batch8": {k: v["batch8_images_per_s"] for k, v in result["results"].items()},
        "speedup_batch1_p50_vs_eager": result["speedup_batch1_p50_vs_eager"],
        "load_average_1min": result["load_average_1min"],
        "machine": result["machine"],
        "measured_by": "fetalscope.models.latency, as benchmarks/bench_inference.py (shared machine; rerun on "
        "a quiet one for final numbers)",
    }


def quantize_sononet_planes(bundle_path: Path, per_source: int = 40, seed: int = 0, bench_runs: int = 30,
                            threads: int = 1) -> dict[str, Any]:
    """Quantise ``bundle_path`` (a sononet-planes bundle), measure it and write the card's ``int8``
    (returned)."""
    data = config.shared_data_dir()
    images = all_real_images(data)
    cal, test = calibration_and_test(images)
    chosen = pick_calibration(cal, per_source, seed)
    bundle = load_bundle(bundle_path)
    print(f"{len(chosen)} calibration images of {len(cal)} in the calibration split; "
          f"{len(test)} test images", flush=True)

    t0 = time.time()
    record = quantize_bundle(bundle, [im.path for im in chosen], SETTINGS)
    seconds = time.time() - t0
    rel = [str(im.path.relative_to(data)) if im.path.is_relative_to(data) else str(im.path) for im in chosen]
    (bundle.path / CALIBRATION_LIST).write_text(json.dumps(
        {"shared_data_dir_relative": rel, "sources": [im.source for im in chosen]}, indent=1) + "\n",
        encoding="utf-8")
    print(f"wrote {record['file']} ({record['size_bytes'] / 1e6:.2f} MB) in {seconds:.0f}s", flush=True)

    inputs = preprocess_images([im.path for im in test], bundle.preprocess)
    p32 = probabilities(OnnxPredictor(bundle.onnx_path, bundle.temperature, intra_op_threads=threads), inputs)
    p8 = probabilities(OnnxInt8Predictor(bundle.int8_onnx_path, bundle.temperature, intra_op_threads=threads),
                       inputs)
    fid = fidelity(test, bundle.classes, p32, p8)
    print(f"held-out: top-1 agreement {fid['top1_agreement']:.4f} ({fid['top1_disagreements']} of "
          f"{fid['n_images']} differ), max |dp| {fid['max_abs_prob_diff']:.4f}, mean |dp| "
          f"{fid['mean_abs_prob_diff']:.5f}; accuracy fp32 {fid['accuracy_fp32']:.4f} int8 "
          f"{fid['accuracy_int8']:.4f}", flush=True)

    card = read_card_file(bundle.path)
    int8: dict[str, Any] = {
        "what": "static int8 ONNX Runtime model (opt-in runtime 'onnx-int8'); model.onnx stays the fp32 "
        "parity path",
        **record,
        "quantise_seconds": round(seconds, 1),
        "calibration": {
            "n_images": len(chosen),
            "per_source": dict(sorted(Counter(im.source for im in chosen).items())),
            "drawn_from": f"the bundle's calibration split ({len(cal)} images; disjoint by patient / subject / "
            f"duplicate group from the test split), up to {per_source} per source, seed {seed}",
            "list": CALIBRATION_LIST,
            "list_sha256": hashlib.sha256("\n".join(rel).encode()).hexdigest(),
            "preprocess": "the bundle's own PreprocessConfig (fetalscope.data.transforms.to_tensor)",
        },
        "fidelity_test_split": {
            "reference": "fp32 model.onnx (equal to PyTorch within 1e-4, see onnx.parity)",
            "images": f"every image of the bundle's test split ({len(test)}), the split report.json scores",
            **fid,
        },
        "generated_by": GENERATED_BY,
    }
    if bench_runs > 0:
        sample = [im for im in test if im.source != "web-abnormal-rf"][:: max(1, len(test) // 8)][:8]
        int8["latency"] = latency(bundle.path, [im.path for im in sample], bench_runs, threads)
    card["int8"] = int8
    write_card_files(bundle.path, card, render_card_md(card))
    for path in (bundle.path / CARD, bundle.path / CARD_MD, bundle.path / CALIBRATION_LIST, bundle.int8_onnx_path):
        path.chmod(0o644)
    return int8
