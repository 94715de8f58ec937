#!/usr/bin/env python
"""How much a head ensemble's measurement moves when its weights are stored as int8 instead of as shipped.

    python scripts/storage_fidelity.py [--bundle src/fetalscope/models/bundled/hc18-head] [--split early_stop] \
        [--out docs/int8_storage.md] [--about "where this revision of the bundle is kept"]

Label-free: it compares the head circumference (HC, through the Measurer and ONNX Runtime, the shipped views)
of the bundle as it is with the same networks stored otherwise, on one split's images; the references are not
read. The candidates:

- the bundle re-stored by ``train_biometry.py ensemble BUNDLE --storage int8`` (the real files: int8 where
  :data:`fetalscope.biometry.segbundle.INT8_LAYERS` matches, groups of up to 64 values per scale);
- two emulations that quantise every weight matrix and keep the result as float16 (which adds float16's own
  rounding, far finer than int8's): one scale per output channel, and groups of up to 64 values.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_setup import add_shared_option, apply_shared_option  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "fetalscope" / "models" / "bundled" / "hc18-head"


def emulated(bundle_dir: Path, out: Path, per_channel: bool) -> Path:
    """``bundle_dir``'s networks with every weight matrix passed through int8 and back, saved as float16."""
    import shutil

    from fetalscope.biometry.segbundle import load_seg_bundle, save_seg_bundle
    from fetalscope.models.weight_storage import MIN_ELEMENTS, dequantize_int8, quantize_int8

    bundle = load_seg_bundle(bundle_dir)
    state = bundle.model.state_dict()
    for key, value in state.items():
        if value.is_floating_point() and value.dim() >= 2 and value.numel() >= MIN_ELEMENTS:
            group = value.numel() // value.shape[0] if per_channel else None
            state[key] = dequantize_int8(*quantize_int8(value, group))
    bundle.model.load_state_dict(state)
    card = {k: v for k, v in bundle.card.items() if k not in ("storage", "storage_int8_layers")}
    save_seg_bundle(bundle.model, out, bundle.preprocess, card, onnx=True, storage="float16")
    shutil.copyfile(bundle_dir / "splits.json", out / "splits.json")
    return out


def head_circumferences(bundle_dir: Path, split: str) -> tuple[np.ndarray, list[str]]:
    """HC in mm of every image of ``split`` measured by ``bundle_dir`` (ONNX Runtime, the shipped views)."""
    from fetalscope.biometry.measure import Measurer
    from fetalscope.biometry.segbundle import load_seg_bundle
    from fetalscope.imaging.loader import load_image
    from fetalscope.train.segmenter.measurement_report import split_samples

    measurer = Measurer("head", load_seg_bundle(bundle_dir), runtime="onnx")
    samples = split_samples(bundle_dir, "head").get(split, [])
    if not samples:
        raise SystemExit(f"{bundle_dir} has no {split} images")
    hcs = []
    for sample in samples:
        image = load_image(sample.path)
        ellipse, _ = measurer.head_views(image, measurer.probabilities(image))
        hcs.append(np.nan if ellipse is None else ellipse.circumference() * float(sample.meta["pixel_size_mm"]))
    return np.array(hcs), [s.name for s in samples]


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report(bundle_dir: Path, split: str, log: Callable[[str], None], about: str = "") -> str:
    from fetalscope.biometry.segbundle import INT8_LAYERS, load_seg_bundle
    from fetalscope.train.segmenter.ensemble import build_ensemble

    bundle = load_seg_bundle(bundle_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        candidates = {
            f"int8 files as written by `ensemble --storage int8` (layers matching `{INT8_LAYERS}`, groups of up "
            "to 64 values)": build_ensemble([bundle_dir], root / "int8", name=bundle.name, storage="int8", log=log),
            "emulated: int8 in every weight matrix, one scale per output channel": emulated(bundle_dir,
                                                                                            root / "channel", True),
            "emulated: int8 in every weight matrix, groups of up to 64 values": emulated(bundle_dir,
                                                                                         root / "group", False),
        }
        sizes = {name: {f: (folder / f).stat().st_size for f in ("model.safetensors", "model.onnx")}
                 for name, folder in candidates.items()}
        t0 = time.perf_counter()
        reference, names = head_circumferences(bundle_dir, split)
        log(f"reference measured in {time.perf_counter() - t0:.0f} s")
        rows = []
        for name, folder in candidates.items():
            hcs, _ = head_circumferences(folder, split)
            d = np.abs(hcs - reference)
            rows.append((name, d))
            log(f"{name}: mean |dHC| {np.nanmean(d):.4f} mm")
    members = len(getattr(bundle.model, "members", [bundle.model]))
    lines = [
        f"# Storing {bundle.name}'s weights as int8: how far the measurement moves",
        "",
        f"Written by `scripts/storage_fidelity.py --bundle {_shown(bundle_dir)} --split {split}`. The {members} "
        f"networks of `{bundle.name}` revision {bundle.card.get('revision', 1)} (created "
        f"{bundle.card.get('created', '?')}, stored as {bundle.card.get('storage', 'float32')}) measure the head "
        "circumference of the "
        f"{len(names)} {split} images through the Measurer (ONNX Runtime, the shipped views); the same networks "
        "stored otherwise measure them again. The references are not read: this is the storage's own error.",
        *(["", about] if about else []),
        "",
        "| weights | mean abs. HC change (mm) | median | 95th percentile | max | model.safetensors (MB) | "
        "model.onnx (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, d in rows:
        size = sizes[name]
        lines.append(f"| {name} | {np.nanmean(d):.4f} | {np.nanmedian(d):.4f} | {np.nanpercentile(d, 95):.4f} | "
                     f"{np.nanmax(d):.4f} | {size['model.safetensors'] / 1e6:.2f} | {size['model.onnx'] / 1e6:.2f} |")
    lines += ["", f"As stored ({bundle.card.get('storage', 'float32')}): model.safetensors "
              f"{(bundle_dir / 'model.safetensors').stat().st_size / 1e6:.2f} MB, model.onnx "
              f"{(bundle_dir / 'model.onnx').stat().st_size / 1e6:.2f} MB. The emulations' files hold float16 and "
              "are listed for completeness.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=BUNDLED, help="a head segmentation bundle")
    parser.add_argument("--split", default="early_stop", help="split of the bundle's splits.json to measure")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report (default: print it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--about", default="", help="a sentence printed under the introduction (e.g. where the "
                                                     "bundle's revision can be found)")
    add_shared_option(parser, "data/hc18/")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    text = report(args.bundle, args.split, log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True),
                  about=args.about)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"written {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
