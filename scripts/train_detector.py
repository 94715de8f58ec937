"""Train, evaluate and bundle the brain-structure detector (torchvision default or Ultralytics extra).

Example (the shipped bundle; about 30-40 min on one CPU thread)::

    OMP_NUM_THREADS=1 python scripts/train_detector.py \
        --data ../shared/data/yolo_brain_structures --out runs/detect-brain \
        --bundle src/fetalscope/models/bundled/brain-structures --epochs 24

Writes ``report.json`` + ``report.md`` + plots into ``--out`` and, with ``--bundle``, the model bundle.
With ``--backend yolo`` (needs ``pip install fetalscope[yolo]``, AGPL-3.0) an Ultralytics model is
trained from a model yaml, fully offline, and evaluated with the same metrics; it is not bundled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fetalscope import config
from fetalscope.detect.torchvision_backend import DetectorConfig
from fetalscope.train.detector.trainer import DetectTrainConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        default=str(config.shared_data_dir() / "yolo_brain_structures"),
        help="YOLO dataset folder or data.yaml",
    )
    p.add_argument("--out", default="runs/detect-brain", help="report folder")
    p.add_argument("--bundle", default=None, help="write the model bundle into this folder")
    p.add_argument("--name", default="brain-structures")
    p.add_argument("--backend", choices=("torchvision", "yolo"), default="torchvision")
    p.add_argument("--yolo-model", default="yolov8n.yaml", help="Ultralytics model yaml (--backend yolo)")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--min-size", type=int, default=320, help="shorter image side fed to the detector")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of training groups held out")
    p.add_argument("--eval-every", type=int, default=2)
    p.add_argument(
        "--no-pretrained", action="store_true", help="random backbone instead of ImageNet MobileNetV2"
    )
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.backend == "yolo":
        from fetalscope.train.detector.yolo import train_and_evaluate_yolo

        train_and_evaluate_yolo(
            args.data,
            args.out,
            model=args.yolo_model,
            epochs=args.epochs,
            imgsz=max(args.min_size, 320),
            batch=args.batch_size,
            holdout_fraction=args.holdout,
            seed=args.seed,
        )
        return 0
    from fetalscope.train.detector.protocol import train_and_evaluate

    train_and_evaluate(
        args.data,
        args.out,
        bundle_dir=args.bundle,
        name=args.name,
        detector_cfg=DetectorConfig(min_size=args.min_size),
        train_cfg=DetectTrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            eval_every=args.eval_every,
            seed=args.seed,
        ),
        holdout_fraction=args.holdout,
        pretrained=not args.no_pretrained,
        bootstrap=args.bootstrap,
    )
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
