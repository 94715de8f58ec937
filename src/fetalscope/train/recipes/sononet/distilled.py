"""The v2 ``sononet-planes``: SonoNet-16 fine-tuned by label-corrected self-distillation (:mod:`.distil`) under
the perturbations of :mod:`fetalscope.imaging.perturb`, then built like v1 (:func:`.build.build_planes_bundle`).

Splits (all by patient / subject / duplicate group): the v1 *test* split stays untouched; the v1
*calibration* split is cut by a second fixed hash (:func:`.distil.fit_or_hold`) into *fit* (training) and
*hold* (temperature, the crop-or-whole-image choice, the int8 check's calibration images are drawn from the
whole calibration split as in v1). Every number in the card is computed here: the student's training
history and time, the view choice on the hold images, and the test-split comparison per source with
group-bootstrap intervals of the plain SonoNet-16 mapping (whole image, T = 1), v1 (sector crop, its
temperature) and v2. ``scripts/train_sononet_planes.py`` calls :func:`build_distilled_bundle`.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.torch import load_model, save_model

from fetalscope import config
from fetalscope.data.real_sets import RealImage, all_real_images
from fetalscope.evaluate.bootstrap import bootstrap_ci
from fetalscope.imaging import load_image
from fetalscope.imaging import perturb as perturb_module
from fetalscope.models import create_model
from fetalscope.models.sononet import PLANES_COVERED, SONONET_PREPROCESS, SonoNetClassifier
from fetalscope.models.weights.common import file_sha256
from fetalscope.models.weights.sononet_npz import sononet16_npz_path
from fetalscope.train.recipes.sononet import distil as distil_module
from fetalscope.train.recipes.sononet.build import build_planes_bundle
from fetalscope.train.recipes.sononet.common import calibration_and_test, count_table, image_list_sha256
from fetalscope.train.recipes.sononet.distil import (
    DistilItem,
    DistilSettings,
    distil,
    fit_or_hold,
    kl_to_teacher,
    teacher_logits,
)
from fetalscope.train.recipes.sononet.outputs import mapped_probs, sononet_outputs

VERSION = "2.0.0"
MAX_SIDE = 480  # training images are kept at most this long (the model sees 224 x 288)
MAX_STRENGTH = 0.6  # random_perturbation's strength ceiling during training
# every perturbation but the video codec round trip (an FFmpeg encode per draw: too slow for CPU training)
AUGMENTATION = tuple(n for n in perturb_module.AUGMENTATION_NAMES if n != "video_codec")


def small_rgb(path: Path, max_side: int = MAX_SIDE) -> np.ndarray:
    rgb = load_image(path).pixels
    scale = max_side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def split_calibration(images: list[RealImage]) -> tuple[list[RealImage], list[RealImage], list[RealImage]]:
    """``(fit, hold, test)``: v1's calibration split cut by :func:`fit_or_hold`; v1's test split as it is."""
    cal, test = calibration_and_test(images)
    fit = [im for im in cal if fit_or_hold(im.group) == "fit"]
    hold = [im for im in cal if fit_or_hold(im.group) == "hold"]
    return fit, hold, test


def train_student(fit: list[RealImage], settings: DistilSettings, cache: Path,
                  log: Any = print) -> tuple[SonoNetClassifier, dict[str, Any]]:
    """The distilled student (cached in ``cache`` under a key of the images, settings, weights and code)."""
    npz_sha = file_sha256(sononet16_npz_path())
    code = hashlib.sha256(inspect.getsource(distil_module).encode() + inspect.getsource(perturb_module).encode())
    key = hashlib.sha256(json.dumps({"images": image_list_sha256(fit), "settings": settings.to_dict(),
                                     "weights": npz_sha, "code": code.hexdigest(), "max_side": MAX_SIDE,
                                     "max_strength": MAX_STRENGTH, "names": AUGMENTATION},
                                    sort_keys=True).encode()).hexdigest()[:20]
    weights, record_path = cache / f"student-{key}.safetensors", cache / f"student-{key}.json"
    teacher = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()
    student = copy.deepcopy(teacher)
    if weights.is_file() and record_path.is_file():
        load_model(student, str(weights))
        return student.eval(), json.loads(record_path.read_text())
    log(f"training on {len(fit)} images: {count_table([(im.source, im.plane) for im in fit])}")
    items = [DistilItem(small_rgb(im.path), PLANES_COVERED.index(im.plane), source=im.source) for im in fit]
    teacher_logits(teacher, items, SONONET_PREPROCESS)
    perturb = partial(perturb_module.random_perturbation, max_strength=MAX_STRENGTH, names=AUGMENTATION)
    result = distil(student, items, SONONET_PREPROCESS, settings, perturb=perturb, log=log)
    result["images"] = {"n": len(fit), "counts": count_table([(im.source, im.plane) for im in fit]),
                        "max_side": MAX_SIDE}
    result["augmentation"] = (f"fetalscope.imaging.perturb.random_perturbation (1-3 of {', '.join(AUGMENTATION)}; "
                              f"strength up to {MAX_STRENGTH}) on {settings.perturb_share:.0%} of draws; whole image "
                              f"resized on {settings.whole_image_share:.0%}, sector crop on the rest")
    result["fit_clean_kl_to_teacher"] = {
        str(crop): kl_to_teacher(student, items[:: max(1, len(items) // 64)], SONONET_PREPROCESS, crop)
        for crop in (True, False)}
    cache.mkdir(parents=True, exist_ok=True)
    save_model(student, str(weights))
    record_path.write_text(json.dumps(result, indent=1))
    return student.eval(), result


def _accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float((y == pred).mean())


def per_source_table(images: list[RealImage], preds: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Accuracy with group-bootstrap 95% intervals of each contender, per source and overall."""
    y = np.array([PLANES_COVERED.index(im.plane) for im in images])
    src = np.array([im.source for im in images])
    groups = np.array([im.group for im in images])
    rows = []
    for s in [*dict.fromkeys(src), "all"]:
        m = np.ones(len(y), bool) if s == "all" else src == s
        row: dict[str, Any] = {"source": s, "n": int(m.sum())}
        for name, pred in preds.items():
            ci = bootstrap_ci(_accuracy, y[m], pred[m], groups=groups[m])
            row[name] = {"correct": int((pred[m] == y[m]).sum()), "accuracy": ci["estimate"],
                         "ci_low": ci["lower"], "ci_high": ci["upper"]}
        rows.append(row)
    return rows


def _cell(r: dict[str, Any], n: int) -> str:
    return f"{r['correct']}/{n} ({r['accuracy']:.1%}, {r['ci_low']:.1%}-{r['ci_high']:.1%})"


def distilled_markdown(training: dict[str, Any], view: dict[str, Any], comparison: dict[str, Any]) -> str:
    """The report.md section of the v2 model: training, view choice and the test-split comparison."""
    s = training["settings"]
    counts = ", ".join(f"{k}: {v}" for k, v in training["images"]["counts"].items())
    lines = ["", "## v2: fine-tuned by label-corrected self-distillation", "",
             f"Trained on {training['images']['n']} images ({counts}) "
             f"in {training['seconds']:.0f} s on CPU: {s['epochs']} epochs x {training['steps_per_epoch']} steps of "
             f"{s['batch_size']}, AdamW lr {s['lr']}, trained {', '.join(training['trained_modules'])} "
             f"(earlier stages and every BatchNorm statistic frozen), label mix {s['label_mix']}. "
             f"Augmentation: {training['augmentation']}.", "",
             "| epoch | KL to target | top-1 agreement with target | seconds |", "| --- | --- | --- | --- |"]
    lines += [f"| {h['epoch']} | {h['kl']:.4f} | {h['top1_agreement']:.3f} | {h['seconds']:.0f} |"
              for h in training["history"]]
    acc = view["hold_accuracy"]
    def fmt(v: float | None) -> str:
        return "not measured" if v is None else f"{v:.1%}"

    lines += ["", f"View, chosen on {view['n_hold']} held calibration images (not the test split): sector crop "
              f"{fmt(acc['sector_crop'])}, whole image {fmt(acc['whole_image'])}, mean of both "
              f"{fmt(acc['tta_mean'])}; chosen: {view['chosen']}.", "", f"### Test split: {comparison['what']}", ""]
    names = list(comparison["contenders"])
    lines += [f"- `{k}`: {v}" for k, v in comparison["contenders"].items()]
    lines += ["", "| source | n | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    lines += [f"| {r['source']} | {r['n']} | " + " | ".join(_cell(r[k], r["n"]) for k in names) + " |"
              for r in comparison["rows"]]
    return "\n".join(lines) + "\n"


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    head = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=False).head.mapping
    head.fit(torch.from_numpy(z), torch.from_numpy(y))
    return head.temperature


def build_distilled_bundle(out_dir: Path, cache: Path | None = None, settings: DistilSettings | None = None,
                           bench_runs: int = 30, int8: bool = True, threads: int = 1, both_views: bool = True,
                           log: Any = print, name: str = "sononet-planes",
                           min_temperature: float | None = None) -> dict[str, Any]:
    """Train (or read from ``cache``) the student and write the v2 ``sononet-planes`` bundle into ``out_dir``.
    ``both_views=False`` scores the student with the sector crop only (half the evaluation time; the view
    stays the sector crop and no test-time average is measured). ``name``: the bundle's folder and card name;
    ``min_temperature``: a lower bound on the fitted temperature (1 forbids sharpening), its unbounded fit then
    stays in the comparison as ``v2_unbounded_temperature``."""
    from fetalscope.train.recipes.sononet.int8 import quantize_sononet_planes

    cache = cache or (config.cache_dir() / "sononet_build")
    settings = settings or DistilSettings()
    images = all_real_images(config.shared_data_dir())
    fit, hold, test = split_calibration(images)
    student, training = train_student(fit, settings, cache, log)
    student.requires_grad_(True)  # distil leaves it frozen; the temperature fit needs its gradient
    student_sha = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in student.state_dict().values())
                                 ).hexdigest()
    npz_sha = file_sha256(sononet16_npz_path())
    teacher = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()
    kept = set(hold) | set(test)
    evaluated = [im for im in images if im in kept]  # hold + test, in the order of the image list
    index = {im: i for i, im in enumerate(images)}
    rows = np.array([index[im] for im in evaluated])
    t_outs = {crop: sononet_outputs(teacher, images, SONONET_PREPROCESS.replace(crop_sector=crop), cache, npz_sha)
              for crop in (False, True)}
    s_outs = {crop: sononet_outputs(student, evaluated, SONONET_PREPROCESS.replace(crop_sector=crop), cache,
                                    student_sha) for crop in ((False, True) if both_views else (True,))}
    if not both_views:
        s_outs[False] = s_outs[True]  # the sector-crop study then compares the crop with itself
    y = np.array([PLANES_COVERED.index(im.plane) for im in evaluated])
    is_hold = np.array([im in set(hold) for im in evaluated])
    # the view: the one more accurate on the hold images (never the test split); ties keep the sector crop
    hold_acc = {crop: float((mapped_probs(s_outs[crop]["native"][is_hold]).argmax(1) == y[is_hold]).mean())
                for crop in (True, False)}
    crop = hold_acc[True] >= hold_acc[False] or not both_views
    hold_tta = float((((mapped_probs(s_outs[True]["native"][is_hold]) + mapped_probs(s_outs[False]["native"][
        is_hold])) / 2).argmax(1) == y[is_hold]).mean())
    # test-split comparison: plain mapping (whole image, T = 1), v1 (crop, T fitted on v1's calibration), v2
    cal_all = [index[im] for im in images if im in set(fit) | set(hold)]
    y_all = np.array([PLANES_COVERED.index(im.plane) for im in images])
    t_v1 = fit_temperature(t_outs[True]["native"][cal_all], y_all[cal_all])
    test_rows = rows[~is_hold]
    test_imgs = [im for im, h in zip(evaluated, is_hold, strict=True) if not h]
    t_fitted = fit_temperature(s_outs[crop]["native"][is_hold], y[is_hold])
    t_v2 = t_fitted if min_temperature is None else max(min_temperature, t_fitted)
    preds = {
        "sononet16_whole_image": mapped_probs(t_outs[False]["native"][test_rows]).argmax(1),
        "v1_sector_crop": mapped_probs(t_outs[True]["native"][test_rows], t_v1).argmax(1),
        "v2": mapped_probs(s_outs[crop]["native"][~is_hold], t_v2).argmax(1),
    }
    if t_v2 != t_fitted:
        preds["v2_unbounded_temperature"] = mapped_probs(s_outs[crop]["native"][~is_hold], t_fitted).argmax(1)
    if both_views:
        preds["v2_tta_crop_and_whole"] = ((mapped_probs(s_outs[True]["native"][~is_hold], t_v2)
                                           + mapped_probs(s_outs[False]["native"][~is_hold], t_v2)) / 2).argmax(1)
    comparison = {
        "what": "accuracy on the v1 test split (untouched by training), group-bootstrap 95% intervals",
        "contenders": {
            "sononet16_whole_image": "SonoNet-16 as published, 14 outputs mapped, whole image resized, T = 1",
            "v1_sector_crop": f"sononet-planes 1.0.0: SonoNet-16 mapped, sector crop, T = {t_v1:.3f}",
            "v2": f"this model ({'sector crop' if crop else 'whole image resized'}, T = {t_v2:.3f})",
            **({"v2_unbounded_temperature": f"this model with its unbounded temperature fit T = {t_fitted:.3f} "
                                            f"(measured, not shipped: T is bounded below by {min_temperature})"}
               if t_v2 != t_fitted else {}),
            **({"v2_tta_crop_and_whole": "this model, mean of the sector-crop and whole-image probabilities "
                                         "(measured, not shipped: the bundle runs one view)"} if both_views else {}),
        },
        "rows": per_source_table(test_imgs, preds),
    }
    view = {"hold_accuracy": {"sector_crop": hold_acc[True], "whole_image": hold_acc[False] if both_views else None,
                              "tta_mean": hold_tta if both_views else None},
            "chosen": "sector crop" if crop else "whole image resized", "n_hold": int(is_hold.sum())}
    log(f"view: {view}")

    def update(card: dict[str, Any]) -> None:
        card["version"] = VERSION
        card["data"]["source"] = (
            f"Fine-tuned: {training['images']['n']} real images (the 'fit' part of v1's calibration split) by "
            "label-corrected self-distillation of SonoNet-16 under perturbations (card 'training'); "
            f"{int(is_hold.sum())} held images (the rest of the calibration split) fitted the temperature and "
            "chose the view; the test split is v1's, untouched.")
        card["data"]["fit_counts"] = training["images"]["counts"]
        card["calibration"]["fitted_on"] = (f"{int(is_hold.sum())} held real images (never trained on; "
                                            "a quarter of the calibration split's groups)")
        card["training"] = {**training, "view_choice": view, "teacher": "SonoNet-16 as published (frozen)"}
        card["comparison"] = comparison
        card["metrics"]["training_seconds"] = training["seconds"]
        if min_temperature is not None:
            card["calibration"]["temperature_lower_bound"] = min_temperature
            card["calibration"]["temperature_unbounded_fit"] = t_fitted

    planes = build_planes_bundle(out_dir, evaluated, s_outs, npz_sha, bench_runs, model=student,
                                 preprocess=SONONET_PREPROCESS.replace(crop_sector=crop), card_update=update,
                                 bundle_name=name, min_temperature=min_temperature)
    with open(out_dir / name / "report.md", "a", encoding="utf-8") as fh:
        fh.write(distilled_markdown(training, view, comparison))
    if int8:
        quantize_sononet_planes(out_dir / name, bench_runs=bench_runs, threads=threads)
    return {"view": view, "comparison": comparison, "training_seconds": training["seconds"],
            "accuracy": planes["report"]["metrics"]["accuracy"]}
