"""The robustness report of a plane bundle on the sononet-planes test split (``fetalscope robustness`` and
``scripts/robustness_report.py``): which images, which models, then :mod:`fetalscope.evaluate.robustness`.

Images: the test split of the real labelled images in the shared folder (:func:`.common.calibration_and_test`:
patient / subject / duplicate-group disjoint from the calibration half; the abnormal web brains are test-only),
or any folder of class sub-folders (``data``; the folder name is the source, the file's patient as the
class-folder loader reads it is the group).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fetalscope import config
from fetalscope.data.folders import load_class_folders
from fetalscope.data.real_sets import all_real_images
from fetalscope.errors import BadInputError
from fetalscope.evaluate.bootstrap import N_BOOT
from fetalscope.evaluate.robustness import (
    DEFAULT_LIMIT,
    Contender,
    ProgressHook,
    RobustItem,
    bundle_contender,
    plain_sononet_baseline,
    robustness_report,
)
from fetalscope.evaluate.robustness_report import update_report_section, write_robustness
from fetalscope.imaging.perturb import get_perturbation
from fetalscope.train.recipes.sononet.common import SPLIT_SALT, calibration_and_test

BASELINES = ("sononet16", "none")


def real_test_items(shared: str | Path | None = None) -> tuple[list[RobustItem], str]:
    """The sononet-planes test split of the shared folder's real images, and a description of it."""
    data = Path(shared).expanduser() / "data" if shared is not None else config.shared_data_dir()
    if not data.is_dir():
        raise BadInputError(f"{data}: no shared data folder; pass --shared pointing at the folder that holds "
                            "data/ (HC18, FETAL_PLANES_DB, FOCUS ...), or --data with class folders")
    _, test = calibration_and_test(all_real_images(data))
    items = [RobustItem(im.path, im.plane, im.source, im.group) for im in test]
    return items, (f"the sononet-planes test split of the real images in {data} (groups hashed with "
                   f"{SPLIT_SALT!r}; patient / subject / duplicate-group disjoint from the calibration half)")


def folder_items(data: str | Path) -> tuple[list[RobustItem], str]:
    """Every image of a folder of class sub-folders (``<data>/<class>/<images>``)."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder; --data needs one sub-folder of images per class")
    labelled = load_class_folders(root)
    items = [RobustItem(s.path, labelled.classes[s.label], root.name, f"{root.name}:{s.patient}")
             for s in labelled.samples]
    return items, f"every image of the class folders in {root}"


def baseline_contender(baseline: str, runtime: str = "onnx") -> Contender | None:
    if baseline not in BASELINES:
        raise BadInputError(f"unknown baseline {baseline!r}; choose from {', '.join(BASELINES)}")
    return None if baseline == "none" else plain_sononet_baseline("torch" if runtime == "torch" else "onnx")


def run_robustness(bundle: str | Path = "sononet-planes", *, shared: str | Path | None = None,
                   data: str | Path | None = None, out_dir: str | Path | None = None, limit: int = DEFAULT_LIMIT,
                   baseline: str = "sononet16", runtime: str = "auto", perturbations: Sequence[str] | None = None,
                   seed: int = 0, n_boot: int = N_BOOT, on_progress: ProgressHook | None = None) -> dict[str, Any]:
    """The robustness record of ``bundle`` beside the baseline; written to ``out_dir`` when given."""
    if limit < 1:
        raise BadInputError(f"--limit must be at least 1, got {limit}")
    if baseline not in BASELINES:
        raise BadInputError(f"unknown baseline {baseline!r}; choose from {', '.join(BASELINES)}")
    for name in perturbations or ():
        get_perturbation(name)
    items, described = folder_items(data) if data is not None else real_test_items(shared)
    shipped = bundle_contender(bundle, runtime)
    report = robustness_report(items, shipped, baseline_contender(baseline, runtime), perturbations=perturbations,
                               limit=limit, seed=seed, n_boot=n_boot, data_described=described,
                               on_progress=on_progress)
    if out_dir is not None:
        write_robustness(report, out_dir)
    return report


def write_into_bundle(report: dict[str, Any], bundle_dir: str | Path) -> None:
    """``robustness.json`` / ``robustness.md`` in the bundle folder and the Robustness section of its report.md."""
    folder = Path(bundle_dir)
    write_robustness(report, folder)
    update_report_section(folder / "report.md", report)
    for name in ("robustness.json", "robustness.md", "report.md"):
        (folder / name).chmod(0o644)
