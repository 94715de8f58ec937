#!/usr/bin/env python3
"""Write the int8 ONNX twin of the bundled ``sononet-planes`` and measure it on real held-out images.

    .venv/bin/python scripts/quantize_bundle.py --shared ../shared

1. Calibration images: real images of the bundle's *calibration* split (the split that fitted the
   temperature in scripts/build_sononet_bundle.py; patient / subject / duplicate-group disjoint from the
   test split), up to ``--per-source`` per source, drawn with a fixed seed. Their list goes to
   ``int8_calibration.json`` in the bundle.
2. ``model.int8.onnx`` from the bundle's fp32 ``model.onnx`` (:func:`fetalscope.models.quantize.quantize_bundle`;
   the fp32 model is read, never rewritten).
3. Fidelity on every image of the bundle's *test* split (the split report.json scores): top-1 agreement
   and absolute probability differences int8 vs fp32 ONNX (overall and per source), and accuracy of both
   against the labels.
4. Latency (optional, ``--bench-runs``): benchmarks/bench_inference.py on test images, one thread.

Everything goes into the card's ``int8`` field (card.md re-rendered). Numbers are computed here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from script_setup import (  # noqa: E402
    SCRIPTS,
    add_shared_option,
    apply_shared_option,
    load_bench_module,
    load_module,
)
from sononet_real_sets import RealImage, all_real_images  # noqa: E402

from fetalscope import config  # noqa: E402
from fetalscope.models.bundle import (  # noqa: E402
    CARD,
    CARD_MD,
    load_bundle,
    read_card_file,
    render_card_md,
    write_card_files,
)
from fetalscope.models.quantize import (  # noqa: E402
    QuantizeSettings,
    compare_probabilities,
    preprocess_images,
    quantize_bundle,
)
from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor  # noqa: E402

CALIBRATION_LIST = "int8_calibration.json"
# the recipe (QuantizeSettings' defaults, spelled out): QDQ, per-channel int8 weights, uint8 activations,
# 99.999th-percentile activation ranges, first and last convolution float
SETTINGS = QuantizeSettings(fmt="qdq", per_channel=True, activation_type="uint8", method="percentile",
                            percentile=99.999, float_first=1, float_last=1)
CHUNK = 32


def _build_module() -> Any:
    return load_module(SCRIPTS / "build_sononet_bundle.py", "build_sononet_bundle")


def splits(images: list[RealImage]) -> tuple[list[RealImage], list[RealImage]]:
    """The bundle's calibration and test images, exactly as build_sononet_bundle.py splits them."""
    build = _build_module()
    cal = [im for im in images if im.source in build.CALIBRATION_SOURCES and build.split_of(im.group) == "calibration"]
    in_cal = set(cal)
    test = [im for im in images if im not in in_cal]
    overlap = {im.group for im in cal} & {im.group for im in test}
    if overlap:
        raise SystemExit(f"calibration and test share groups: {sorted(overlap)[:5]}")
    return cal, test


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
    """Batch-1 p50/p95 and batch-8 throughput of eager / ONNX fp32 / ONNX int8 (benchmarks/bench_inference.py)."""
    bench = load_bench_module()
    out = config.cache_dir() / "quantize_bundle" / f"bench-{bundle_dir.name}.json"
    bench.main([str(bundle_dir), "--images", *map(str, image_paths), "--threads", str(threads),
                "--runs", str(runs), "--batch", "8", "--batch-runs", "3", "--json", str(out)])
    result = json.loads(out.read_text())
    return {
        "threads": threads,
        "runs": runs,
        "batch1_p50_ms": {k: v["batch1_p50_ms"] for k, v in result["results"].items()},
        "batch1_p95_ms": {k: v["batch1_p95_ms"] for k, v in result["results"].items()},
        "images_per_s_batch8": {k: v["batch8_images_per_s"] for k, v in result["results"].items()},
        "speedup_batch1_p50_vs_eager": result["speedup_batch1_p50_vs_eager"],
        "load_average_1min": result["load_average_1min"],
        "machine": result["machine"],
        "measured_by": "benchmarks/bench_inference.py (shared machine; rerun on a quiet one for final numbers)",
    }


def run(bundle_path: Path, per_source: int = 40, seed: int = 0, bench_runs: int = 30,
        threads: int = 1) -> dict[str, Any]:
    """Quantise ``bundle_path`` (a sononet-planes bundle), measure it and write the card's ``int8``."""
    data = config.shared_data_dir()
    images = all_real_images(data)
    cal, test = splits(images)
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
        "generated_by": "scripts/quantize_bundle.py",
    }
    if bench_runs > 0:
        sample = [im for im in test if im.source != "web-abnormal-rf"][:: max(1, len(test) // 8)][:8]
        int8["latency"] = latency(bundle.path, [im.path for im in sample], bench_runs, threads)
    card["int8"] = int8
    write_card_files(bundle.path, card, render_card_md(card))
    for path in (bundle.path / CARD, bundle.path / CARD_MD, bundle.path / CALIBRATION_LIST, bundle.int8_onnx_path):
        path.chmod(0o644)
    return int8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_option(parser)
    parser.add_argument("--bundle", type=Path, default=config.bundled_models_dir() / "sononet-planes",
                        help="the sononet-planes bundle folder")
    parser.add_argument("--per-source", type=int, default=40, help="calibration images per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench-runs", type=int, default=30, help="timed batch-1 calls (0: no latency)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    import torch

    torch.set_num_threads(args.threads)
    int8 = run(args.bundle, args.per_source, args.seed, args.bench_runs, args.threads)
    summary = {k: int8[k] for k in ("file", "size_bytes")}
    summary["fidelity"] = {k: v for k, v in int8["fidelity_test_split"].items()
                           if k not in ("per_source", "disagreements", "reference", "images")}
    if "latency" in int8:
        summary["latency"] = {k: int8["latency"][k] for k in ("batch1_p50_ms", "speedup_batch1_p50_vs_eager")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
