"""Normal vs abnormal fetal brain: transfer learning, explanations, and a measured shortcut check.

A thin wrapper of :func:`fetalscope.train.recipes.brain_findings.run_brain_study` (also the CLI verb
``fetalscope brain-findings DATA --out DIR``). Works on any binary image-level dataset:

- a YOLO detection export whose boxes carry the image's class (the Roboflow layout; default:
  ``../shared/data/brain_normal_abnormal_roboflow``, one whole-head box per image),
- a YOLO *classification* layout / split folders (``train|val|test/<class>/*.jpg``),
- a folder per class (``root/<class>/*.png``), e.g. a user's own ventriculomegaly set.

Steps, all written to ``--out`` (``report.json`` + ``report.md``) and, with ``--bundle``, into a model
bundle whose card carries the status and warning ("demonstration, confounded data" for the Roboflow set):

1. patient-grouped, class-stratified split; augmented copies stay with their source; validation and
   test keep one image per source;
2. two-phase transfer learning with the project trainer (``fetalscope.train.classifier.trainer.train``);
3. shortcut checks: logistic regressions on non-anatomical statistics only (image border, noise /
   JPEG statistics, pixels outside the head box, image size), out-of-fold AUC with patient folds;
   the trained model's test AUC with the head box blanked (anatomy removed) and with everything but
   the head box blanked; Grad-CAM (and LIME on a few images) mass inside the head box against the
   box's share of the image.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/brain_normal_abnormal.py --out runs/brain-na \
        --bundle src/fetalscope/models/bundled/brain-normal-abnormal-demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fetalscope.train.recipes.brain_findings import CARD_PRESETS, BrainStudyOptions, default_data, run_brain_study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(default_data()))
    p.add_argument("--out", default="runs/brain-normal-abnormal")
    p.add_argument("--bundle", default=None, help="copy the bundle (card says demonstration) here; an existing "
                                                  "bundle there is replaced")
    p.add_argument("--name", default="brain-normal-abnormal-demo")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--phase1-epochs", type=int, default=15)
    p.add_argument("--phase2-epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--positive", default="abnormal", help="class treated as positive for AUCs")
    p.add_argument("--lime", type=int, default=6, help="test images explained with LIME (slow)")
    p.add_argument("--gradcam", type=int, default=60, help="test images explained with Grad-CAM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preset", default="roboflow-demo", choices=["auto", *CARD_PRESETS],
                   help="words of the card and report (status, warning, citations)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    opts = BrainStudyOptions(
        data=Path(args.data), out=Path(args.out), bundle=Path(args.bundle) if args.bundle else None, name=args.name,
        model=args.model, image_size=args.image_size, phase1_epochs=args.phase1_epochs,
        phase2_epochs=args.phase2_epochs, batch_size=args.batch_size, positive=args.positive, pretrained=None,
        lime=args.lime, gradcam=args.gradcam, seed=args.seed, preset=args.preset, overwrite=True)
    run_brain_study(opts)
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
