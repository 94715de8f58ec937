"""Train, evaluate and bundle a brain-structure detector from a YOLO dataset, writing a report.

Protocol (what :func:`train_and_evaluate` does):

1. read and validate the YOLO dataset; group augmented copies with their source (and subject);
2. hold out ``holdout_fraction`` of the *training* groups; train on the rest;
3. keep the epoch with the best hold-out mAP@0.5:0.95, choose the score threshold that maximises
   hold-out micro F1, decide whether the filter drops outside-skull boxes (only if that costs no
   hold-out true positives);
4. evaluate once on the test split (the dataset's ``valid`` or ``test``), never used for any choice,
   with group-bootstrap intervals;
5. write ``report.json`` + ``report.md`` + plots, and the bundle (card + weights + card.md + report).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fetalscope import config
from fetalscope.data.yolo import YoloDataset, YoloItem, assert_groups_disjoint, group_split, read_yolo_dataset
from fetalscope.detect import plausibility
from fetalscope.detect.bundle_io import load_detector, save_detector_bundle
from fetalscope.detect.skull import METHOD as SKULL_METHOD
from fetalscope.detect.skull import ellipse_iou, estimate_skull
from fetalscope.detect.torchvision_backend import (
    BACKBONE_LICENCE,
    CODE_LICENCE,
    DetectorConfig,
    TorchvisionDetector,
    build_detector,
)
from fetalscope.detect.types import Detector
from fetalscope.errors import DataError
from fetalscope.evaluate.detection import bootstrap_map, choose_threshold, precision_recall
from fetalscope.imaging.loader import load_image
from fetalscope.train.detector.detection_report import plot_examples, plot_threshold_curve, write_report
from fetalscope.train.detector.evaluation import evaluate_detector, predict_items, skulls_for, truth_boxes
from fetalscope.train.detector.trainer import DetectTrainConfig, fit_detector

BRAIN_DATA_CARD = {
    "source": "Roboflow Universe project 'ultrasound-fetal-brain-image-detection' v2 "
    "(workspace fozan-azhar-kjmti): "
    "HC18 head images resized to 640x432 with MIDLINE_FALX / CSP / CHOROID_PLEXUS boxes",
    "licence": "CC BY 4.0",
}
BRAIN_CITATIONS = [
    "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B. Automated measurement of fetal head "
    "circumference using 2D ultrasound images. PLoS ONE 13(8):e0200412 (2018). HC18 images, CC BY 4.0.",
    "Roboflow Universe, ultrasound-fetal-brain-image-detection v2 (fozan-azhar-kjmti), "
    "CC BY 4.0 box annotations.",
    "Sandler M et al. MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018.",
    "Ren S et al. Faster R-CNN. NeurIPS 2015; Lin T-Y et al. Feature Pyramid Networks. CVPR 2017.",
]


def split_summary(items: Sequence[YoloItem], classes: Sequence[str]) -> dict[str, Any]:
    counts = {c: 0 for c in classes}
    for it in items:
        for b in it.boxes:
            counts[classes[b.cls]] += 1
    return {"images": len(items), "groups": len({it.group for it in items}), "boxes": counts}


def validate_skull_estimator(hc18_dir: Path, n: int = 150, seed: int = 0) -> dict[str, Any] | None:
    """Compare :func:`estimate_skull` with HC18 filled head masks on ``n`` random HC18 images."""
    labels = hc18_dir / "labels.csv"
    if not labels.is_file():
        return None
    with labels.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("mask_filled")]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    ious, found = [], 0
    for i in pick:
        row = rows[int(i)]
        image = load_image(hc18_dir / row["filename"])
        mask = load_image(hc18_dir / row["mask_filled"]).gray > 127
        ellipse = estimate_skull(image.pixels)
        if ellipse is not None:
            found += 1
            ious.append(ellipse_iou(ellipse, mask))
    arr = np.asarray(ious) if ious else np.zeros(0)
    return {
        "method": SKULL_METHOD,
        "images": len(pick),
        "found_fraction": round(found / max(1, len(pick)), 4),
        "iou_median": round(float(np.median(arr)), 4) if len(arr) else None,
        "iou_mean": round(float(arr.mean()), 4) if len(arr) else None,
        "iou_below_0_5_fraction": round(float((arr < 0.5).mean()), 4) if len(arr) else None,
    }


def measure_speed(
    detector: Detector, items: Sequence[YoloItem], threads: int = 1, repeats: int = 1
) -> dict[str, Any]:
    """Mean CPU milliseconds per image for the detector and for the skull estimate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        images = [load_image(it.image) for it in items]
        detector.predict(images[0])  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            for im in images:
                detector.predict(im)
        det_ms = 1000 * (time.perf_counter() - start) / (len(images) * repeats)
        start = time.perf_counter()
        for im in images:
            estimate_skull(im.pixels)
        skull_ms = 1000 * (time.perf_counter() - start) / len(images)
    finally:
        torch.set_num_threads(previous)
    return {
        "detector_ms_per_image": round(det_ms, 1),
        "skull_ms_per_image": round(skull_ms, 1),
        "threads": threads,
        "images": len(images),
        "image_size": f"{images[0].width}x{images[0].height}",
    }


def evaluate_split(
    detector: Detector,
    items: Sequence[YoloItem],
    threshold: float,
    drop_outside: bool,
    split_name: str,
    bootstrap: int = 0,
) -> dict[str, Any]:
    preds = predict_items(detector, items)
    ev = evaluate_detector(detector, items, threshold, predictions=preds, drop_outside_skull=drop_outside)
    out: dict[str, Any] = {"split_name": split_name, "evaluation": ev}
    if bootstrap:
        out["bootstrap"] = bootstrap_map(
            preds,
            truth_boxes(items, detector.classes),
            detector.classes,
            [it.group for it in items],
            n_boot=bootstrap,
        )
    return out


def decide_threshold_and_filter(detector: Detector, holdout: Sequence[YoloItem]) -> dict[str, Any]:
    """Score threshold (best hold-out micro F1 after the singleton filter) and whether dropping
    outside-skull boxes is safe (no hold-out true positive lost)."""
    classes = detector.classes
    preds = predict_items(detector, holdout)
    truths = truth_boxes(holdout, classes)
    skulls = skulls_for(holdout)
    kept = [plausibility.enforce(p, s, drop_outside_skull=False) for p, s in zip(preds, skulls, strict=True)]
    threshold, curve = choose_threshold(kept, truths, classes)
    best_f1 = max(r["f1"] for r in curve)
    keep_drop = [
        plausibility.enforce(p, s, drop_outside_skull=True) for p, s in zip(preds, skulls, strict=True)
    ]
    tp_keep = precision_recall(kept, truths, classes, threshold)["micro"]["tp"]
    fp_keep = precision_recall(kept, truths, classes, threshold)["micro"]["fp"]
    pr_drop = precision_recall(keep_drop, truths, classes, threshold)["micro"]
    drop = pr_drop["tp"] >= tp_keep
    reason = (
        f"on the hold-out split dropping outside-skull boxes keeps {pr_drop['tp']} of {tp_keep} "
        "true positives "
        f"and changes false positives {fp_keep} -> {pr_drop['fp']}"
    )
    return {
        "threshold": threshold,
        "curve": curve,
        "f1": best_f1,
        "drop_outside_skull": drop,
        "reason": reason,
    }


def _splits(
    dataset: YoloDataset, holdout_fraction: float, seed: int, test_split: str | None
) -> tuple[list[YoloItem], list[YoloItem], list[YoloItem], list[YoloItem], str | None]:
    """(all train items, train part, hold-out part, test items, test split name); groups never cross."""
    if "train" not in dataset.splits:
        raise DataError(f"{dataset.yaml_path}: needs a 'train' split to train a detector")
    test_name = test_split or next((s for s in ("test", "valid") if s in dataset.splits), None)
    train_all = dataset.items("train")
    train_items, holdout = group_split(train_all, holdout_fraction, seed=seed)
    test_items = dataset.items(test_name) if test_name else []
    assert_groups_disjoint(train_items, holdout, test_items)
    return train_all, train_items, holdout, test_items, test_name


def build_report(
    detector: TorchvisionDetector,
    dataset: YoloDataset,
    splits: tuple[list[YoloItem], list[YoloItem], list[YoloItem], list[YoloItem], str | None],
    choice: dict[str, Any],
    out: Path,
    *,
    name: str,
    holdout_fraction: float,
    training: dict[str, Any] | None,
    base_weights: str,
    bootstrap: int = 200,
    skull_validation_images: int = 150,
) -> dict[str, Any]:
    """Evaluate ``detector`` at ``choice`` (threshold + filter) on the hold-out and test items, measure the skull
    estimator and the speed, draw the plots into ``out``; returns the report dict (not yet written)."""
    train_all, train_items, holdout, test_items, test_name = splits
    classes = dataset.names
    threshold, drop = choice["threshold"], choice["drop_outside_skull"]
    report: dict[str, Any] = {
        "name": name,
        "task": "detection",
        "backend": f"torchvision Faster R-CNN, MobileNetV2-FPN backbone; code licence {CODE_LICENCE}",
        "base_weights": base_weights,
        "dataset": {
            "yaml": str(dataset.yaml_path),
            "classes": list(classes),
            "splits": {s: split_summary(dataset.splits[s], classes) for s in dataset.splits},
        },
        "protocol": {
            "description": (
                f"train on {100 - round(100 * holdout_fraction)}% of the training groups, choose epoch, "
                f"threshold and filter on the other {round(100 * holdout_fraction)}% (hold-out), report "
                f"on '{test_name}' once; augmented copies and subjects never cross splits"
            ),
            "train_images": len(train_items),
            "holdout_images": len(holdout),
            "test_images": len(test_items),
            "holdout_groups": sorted({it.group for it in holdout}),
        },
        "training": training,
        "threshold": {
            "value": threshold,
            "chosen_on": "the hold-out split (after the singleton filter)",
            "f1": choice["f1"],
            "curve": choice["curve"],
        },
        "plausibility_filter": {
            "drop_outside_skull": drop,
            "reason": choice["reason"],
            "singletons": list(plausibility.SINGLETON_LABELS),
            "skull_margin": plausibility.SKULL_MARGIN,
        },
        "holdout": evaluate_split(detector, holdout, threshold, drop, "hold-out of train"),
        "test": evaluate_split(detector, test_items, threshold, drop, test_name or "", bootstrap=bootstrap)
        if test_items
        else None,
        "notes": [],
    }
    # annotations that break the rules in the training data (e.g. a second CSP box)
    train_truths = truth_boxes(train_all, classes)
    bad = [it.image.name for it, t in zip(train_all, train_truths, strict=True) if not plausibility.check(t).ok]
    report["annotation_rule_violations_train"] = {"images": len(bad), "of": len(train_all), "examples": bad[:5]}
    if bad:
        report["notes"].append(
            f"{len(bad)} of {len(train_all)} training images have annotations breaking the one-falx/one-CSP rule "
            f"(e.g. {bad[0]}: a second CSP box where the choroid plexus lies); they were kept as annotated."
        )
    hc18 = config.shared_data_dir() / "hc18"
    if skull_validation_images and hc18.is_dir():
        report["skull_estimator"] = validate_skull_estimator(hc18, n=skull_validation_images)
    report["speed"] = measure_speed(detector, (test_items or holdout)[:16])
    report["speed"]["model_mb"] = round(
        sum(t.numel() * t.element_size() for t in detector.model.state_dict().values()) / 1e6, 2
    )
    plots: dict[str, str] = {}
    plot_threshold_curve(choice["curve"], threshold, out / "threshold_curve.png")
    plots["threshold_curve"] = "threshold_curve.png"
    if test_items:
        shown = test_items[:8]
        preds = predict_items(detector, shown)
        skulls = skulls_for(shown)
        kept = [
            [b for b in plausibility.enforce(p, s, drop_outside_skull=drop) if b.score >= threshold]
            for p, s in zip(preds, skulls, strict=True)
        ]
        plot_examples(
            [load_image(it.image).pixels for it in shown],
            kept,
            truth_boxes(shown, classes),
            out / "examples.png",
            titles=[it.image.name[:28] for it in shown],
        )
        plots["examples"] = "examples.png"
    report["plots"] = plots
    return report


def train_and_evaluate(
    data: str | Path,
    out_dir: str | Path,
    *,
    bundle_dir: str | Path | None = None,
    name: str = "brain-structures",
    detector_cfg: DetectorConfig | None = None,
    train_cfg: DetectTrainConfig | None = None,
    holdout_fraction: float = 0.2,
    test_split: str | None = None,
    pretrained: bool = True,
    bootstrap: int = 200,
    skull_validation_images: int = 150,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole protocol (module docstring). Returns the report dict (also written to ``out_dir``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset: YoloDataset = read_yolo_dataset(data)
    detector_cfg = detector_cfg or DetectorConfig()
    train_cfg = train_cfg or DetectTrainConfig()
    splits = _splits(dataset, holdout_fraction, train_cfg.seed, test_split)
    _, train_items, holdout, test_items, test_name = splits
    log(f"train {len(train_items)} images, hold-out {len(holdout)}, test ({test_name}) {len(test_items)}")
    detector = TorchvisionDetector(
        build_detector(len(dataset.names), detector_cfg, pretrained=pretrained), dataset.names, detector_cfg
    )
    result = fit_detector(detector, train_items, train_cfg, val_items=holdout, log=log)
    choice = decide_threshold_and_filter(detector, holdout)
    log(f"threshold {choice['threshold']}, drop outside skull {choice['drop_outside_skull']}")
    training = {
        "config": train_cfg.to_dict(),
        "detector": detector_cfg.to_dict(),
        "history": result.history,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "best_map": result.best_map,
        "seconds": result.seconds,
        "device": "cpu",
        "threads": torch.get_num_threads(),
    }
    base = "ImageNet MobileNetV2 1.0/224 (TFLite, offline)" if pretrained else "none (random init)"
    report = build_report(detector, dataset, splits, choice, out, name=name, holdout_fraction=holdout_fraction,
                          training=training, base_weights=base, bootstrap=bootstrap,
                          skull_validation_images=skull_validation_images)
    if bundle_dir is not None:
        report["bundle"] = str(bundle_dir)
        save_detector_bundle(detector, bundle_dir, build_card(report, name), report=_bundle_report(report))
    write_report(report, out)
    return report


def evaluate_bundle(
    bundle: str | Path,
    data: str | Path,
    out_dir: str | Path,
    *,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    test_split: str | None = None,
    bootstrap: int = 200,
    skull_validation_images: int = 150,
    update_bundle: bool = False,
) -> dict[str, Any]:
    """Evaluate a detector bundle on a YOLO dataset with the bundle's own threshold and filter, and write the
    report. The hold-out curve is recomputed for the plot; the training section comes from the bundle's
    ``report.json``. ``update_bundle=True`` rewrites the bundle's card and report (only meaningful on the
    dataset and split the bundle was trained with)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_detector(bundle)
    dataset = read_yolo_dataset(data)
    if tuple(dataset.names) != loaded.classes:
        raise DataError(
            f"{dataset.yaml_path}: classes {list(dataset.names)} differ from the bundle's {list(loaded.classes)}"
        )
    splits = _splits(dataset, holdout_fraction, seed, test_split)
    choice = decide_threshold_and_filter(loaded.detector, splits[2])
    choice["threshold"] = loaded.score_threshold
    choice["drop_outside_skull"] = bool(loaded.card.get("plausibility", {}).get("drop_outside_skull", False))
    previous = loaded.report or {}
    report = build_report(loaded.detector, dataset, splits, choice, out, name=loaded.name,
                          holdout_fraction=holdout_fraction, training=previous.get("training"),
                          base_weights=previous.get("base_weights", str(loaded.card.get("base_weights", ""))),
                          bootstrap=bootstrap, skull_validation_images=skull_validation_images)
    if update_bundle:
        report["bundle"] = str(loaded.path)
        card = build_card(report, loaded.name)
        card["created"] = loaded.card.get("created")
        save_detector_bundle(loaded.detector, loaded.path, card, report=_bundle_report(report))
    write_report(report, out)
    return report


def _bundle_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report without per-image records (kept small inside the package)."""
    slim = dict(report)
    for key in ("holdout", "test"):
        if slim.get(key):
            ev = {k: v for k, v in slim[key]["evaluation"].items() if k != "per_image"}
            slim[key] = {**slim[key], "evaluation": ev}
    return slim


def build_card(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The bundle card of a detector from its report (every number comes from the report)."""
    threshold = report["threshold"]["value"]
    drop = report["plausibility_filter"]["drop_outside_skull"]
    training = report.get("training") or {}
    test = report.get("test") or report["holdout"]
    ev = test["evaluation"]
    metrics: dict[str, Any] = {
        "split": test["split_name"],
        "images": ev["images"],
        "mAP@0.5": ev["map_raw"]["map_50"],
        "mAP@0.5:0.95": ev["map_raw"]["map_50_95"],
        "per_class_AP@0.5": {c: v["map_50"] for c, v in ev["map_raw"]["per_class"].items()},
        "per_class_AP@0.5:0.95": {c: v["map_50_95"] for c, v in ev["map_raw"]["per_class"].items()},
        "precision@threshold (filtered)": ev["pr_filtered"]["micro"]["precision"],
        "recall@threshold (filtered)": ev["pr_filtered"]["micro"]["recall"],
        "raw_output_rule_violations": {
            k: v
            for k, v in ev["plausibility"]["raw_outputs"].items()
            if k.startswith(("duplicate", "outside", "any"))
        },
    }
    if test.get("bootstrap"):
        metrics["mAP@0.5 95% CI"] = [
            test["bootstrap"]["map_50"]["ci_low"],
            test["bootstrap"]["map_50"]["ci_high"],
        ]
        metrics["mAP@0.5:0.95 95% CI"] = [
            test["bootstrap"]["map_50_95"]["ci_low"],
            test["bootstrap"]["map_50_95"]["ci_high"],
        ]
    hold = report["holdout"]["evaluation"]
    metrics["holdout (epoch/threshold choice)"] = {
        "images": hold["images"],
        "mAP@0.5": hold["map_raw"]["map_50"],
        "mAP@0.5:0.95": hold["map_raw"]["map_50_95"],
        "precision@threshold (filtered)": hold["pr_filtered"]["micro"]["precision"],
        "recall@threshold (filtered)": hold["pr_filtered"]["micro"]["recall"],
    }
    if "speed" in report:
        metrics["cpu_ms_per_image (1 thread)"] = report["speed"]["detector_ms_per_image"]
    return {
        "name": name,
        "description": "Detects the midline falx, cavum septi pellucidi and choroid plexus in axial "
        "fetal head ultrasound images (trans-thalamic / trans-ventricular planes).",
        "score_threshold": threshold,
        "plausibility": {
            "rules": "at most one MIDLINE_FALX and one CSP per image (top score kept); box centres inside the "
            "estimated skull ellipse x1.1" + (" (outside boxes dropped)" if drop else " (flagged only)"),
            "drop_outside_skull": drop,
            "singletons": list(plausibility.SINGLETON_LABELS),
        },
        "classes_not_covered": [
            "cerebellum",
            "thalami",
            "lateral ventricle atrium",
            "cisterna magna",
            "any abnormal finding",
        ],
        "base_weights": {
            "name": "MobileNetV2 1.0/224 ImageNet (quantised TFLite, dequantised)",
            "source": "google-coral/test_data@104342d via shared/weights",
            "licence": BACKBONE_LICENCE,
        },
        "code_licence": CODE_LICENCE,
        "data": {
            **BRAIN_DATA_CARD,
            "split": report["protocol"]["description"],
            "counts": {s: v["images"] for s, v in report["dataset"]["splits"].items()},
            "boxes": {s: v["boxes"] for s, v in report["dataset"]["splits"].items()},
            "groups": {s: v["groups"] for s, v in report["dataset"]["splits"].items()},
        },
        "training": {k: training.get(k) for k in ("epochs_run", "best_epoch", "seconds", "config")},
        "metrics": metrics,
        "limitations": [
            f"Tested on only {ev['images']} images ({ev['groups']} subjects): intervals are wide, and a perfect "
            f"mAP@0.5 there does not mean perfect detection (hold-out of {hold['images']} images: mAP@0.5 "
            f"{hold['map_raw']['map_50']}, mAP@0.5:0.95 {hold['map_raw']['map_50_95']}).",
            "All images come from HC18 (one centre, Radboud UMC, trans-thalamic plane); other scanners, "
            "planes and gestational ages are untested.",
            "Boxes only, no segmentation; the skull region used by the plausibility check is a classical "
            "ellipse estimate that can fail on bright maternal tissue (see report.json skull_estimator).",
            "A few training annotations break the one-CSP rule (a choroid plexus labelled CSP); "
            "kept as annotated.",
        ],
        "citations": BRAIN_CITATIONS,
        "intended_use": "Research and education only. Not a medical device: not for diagnosis, "
        "screening or any clinical decision.",
    }
