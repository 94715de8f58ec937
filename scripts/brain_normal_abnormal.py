"""Normal vs abnormal fetal brain: transfer learning, explanations, and a measured shortcut check.

Works on any binary image-level dataset:

- a YOLO detection export whose boxes carry the image's class (the Roboflow layout; default:
  ``../shared/data/brain_normal_abnormal_roboflow``, one whole-head box per image),
- a YOLO *classification* layout / split folders (``train|val|test/<class>/*.jpg``),
- a folder per class (``root/<class>/*.png``), e.g. a user's own ventriculomegaly set.

Steps, all written to ``--out`` (``report.json`` + ``report.md`` + plots) and, with ``--bundle``,
into a model bundle whose card says "demonstration, confounded data":

1. patient-grouped, class-stratified split (``fetalscope.data.splits.patient_split``); augmented copies
   stay with their source; validation and test keep one image per source;
2. two-phase transfer learning with the project trainer (``fetalscope.train.trainer.train``);
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
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from fetalscope import config
from fetalscope.data.folders import has_split_folders, load_class_folders, load_split_folders
from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.data.splits import Split, assert_patient_disjoint, patient_split
from fetalscope.data.transforms import normalise, prepare_array
from fetalscope.data.yolo import read_yolo_dataset, yolo_classification_set
from fetalscope.errors import DataError
from fetalscope.evaluate.shortcut import (
    FEATURE_GROUPS,
    box_in_model_space,
    feature_matrix,
    mass_inside,
    nuisance_features,
    shortcut_auc,
)
from fetalscope.imaging.loader import load_image
from fetalscope.imaging.sector import find_sector

DEMO_WARNING = (
    "Demonstration only, confounded data: in the training set every normal image comes from FETAL_PLANES_DB "
    "(two Barcelona hospitals) and every abnormal image from other, mostly web, sources, so class and image "
    "source coincide. The model may recognise the source rather than any pathology. Not a clinical claim; "
    "not a medical device."
)


# ----------------------------------------------------------------------------- data

def load_samples(data: Path) -> LabelledSet:
    """A binary LabelledSet from a YOLO export, split folders or class folders (see module docstring)."""
    if (data / "data.yaml").is_file() or data.suffix in (".yaml", ".yml"):
        return yolo_classification_set(read_yolo_dataset(data))
    if has_split_folders(data):
        parts = load_split_folders(data)
        first = next(iter(parts.values()))
        return LabelledSet([s for p in parts.values() for s in p.samples], first.classes, f"split-folders:{data}")
    return load_class_folders(data)


def source_key(sample: Sample) -> str:
    """Copies of one source image share this key (Roboflow source, else the file stem)."""
    return str(sample.meta.get("source") or sample.path.stem)


def one_per_source(samples: list[Sample]) -> list[Sample]:
    seen: set[str] = set()
    out = []
    for s in sorted(samples, key=lambda s: str(s.path)):
        if source_key(s) not in seen:
            seen.add(source_key(s))
            out.append(s)
    return out


def make_split(full: LabelledSet, seed: int) -> Split:
    split = patient_split(full, val_fraction=0.15, test_fraction=0.2, seed=seed)
    split = Split(split.train, one_per_source(split.val), one_per_source(split.test))
    assert_patient_disjoint(split.train, split.val, split.test, names=["train", "val", "test"])
    return split


def materialise(split: Split, classes: tuple[str, ...], root: Path) -> Path:
    """Symlink the split as ``root/{train,val,test}/<class>/`` (the trainer's split-folder layout)."""
    if root.exists():
        shutil.rmtree(root)
    for part, samples in split.parts().items():
        used: set[str] = set()
        for s in samples:
            folder = root / part / classes[s.label]
            folder.mkdir(parents=True, exist_ok=True)
            name = s.path.name
            k = 1
            while name in used:
                name = f"{s.path.stem}__{k}{s.path.suffix}"
                k += 1
            used.add(name)
            (folder / name).symlink_to(s.path.resolve())
    return root


# ----------------------------------------------------------------------------- model checks

def head_box_px(sample: Sample, width: int, height: int) -> list[float] | None:
    box = sample.meta.get("box_norm")
    if not box:
        return None
    return [box[0] * width, box[1] * height, box[2] * width, box[3] * height]


def model_inputs(sample: Sample, preprocess: Any, mode: str) -> tuple[torch.Tensor, list[float] | None]:
    """Input tensor of ``sample`` for ``mode`` in {plain, no_head, head_only} and its head box in model pixels.

    The crop rectangle is always the one found on the unmodified image, so masking never moves it.
    """
    image = load_image(sample.path)
    rgb = image.pixels.copy()
    box = head_box_px(sample, image.width, image.height)
    sector = find_sector(rgb) if preprocess.crop_sector else None
    rect = (sector.y0, sector.y1, sector.x0, sector.x1) if sector else (0, image.height, 0, image.width)
    if mode != "plain":
        if box is None:
            raise DataError(f"{sample.path}: masking checks need a head box")
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if mode == "no_head":
            rgb[max(0, y0):y1, max(0, x0):x1] = 0
        else:
            keep = rgb[max(0, y0):y1, max(0, x0):x1].copy()
            rgb[:] = 0
            rgb[max(0, y0):y1, max(0, x0):x1] = keep
    crop = rgb[rect[0]:rect[1], rect[2]:rect[3]]
    cfg = preprocess.replace(crop_sector=False)
    x = normalise(prepare_array(crop, cfg), cfg)
    model_box = box_in_model_space(box, rect, tuple(preprocess.input_size)) if box else None
    return x, model_box


@torch.inference_mode()
def probabilities(model: torch.nn.Module, samples: list[Sample], preprocess: Any, mode: str,
                  temperature: float = 1.0) -> np.ndarray:
    out = []
    for start in range(0, len(samples), 16):
        xs = torch.stack([model_inputs(s, preprocess, mode)[0] for s in samples[start:start + 16]])
        out.append(torch.softmax(model(xs) / temperature, dim=1).numpy())
    return np.concatenate(out)


def attribution_mass(model: torch.nn.Module, samples: list[Sample], preprocess: Any, method: str,
                     **params: Any) -> list[dict[str, Any]]:
    from fetalscope.explain import explain

    rows = []
    for s in samples:
        x, box = model_inputs(s, preprocess, "plain")
        if box is None:
            continue
        e = explain(model, x, method, target=s.label, preprocess=preprocess, **params)
        m = mass_inside(e.map, box)
        rows.append({"image": s.path.name, "label": s.label, **{k: round(v, 4) for k, v in m.items()}})
    return rows


def summarise_mass(rows: list[dict[str, Any]], classes: tuple[str, ...]) -> dict[str, Any]:
    def agg(rs: list[dict[str, Any]]) -> dict[str, Any]:
        if not rs:
            return {"images": 0}
        inside = np.array([r["inside"] for r in rs])
        area = np.array([r["area"] for r in rs])
        return {"images": len(rs), "mass_inside_mean": round(float(np.nanmean(inside)), 4),
                "box_area_mean": round(float(area.mean()), 4),
                "ratio_mean": round(float(np.nanmean(inside / area)), 4),
                "fraction_images_mass_mostly_outside": round(float((inside < 0.5).mean()), 4)}

    return {"all": agg(rows), **{c: agg([r for r in rows if r["label"] == i]) for i, c in enumerate(classes)}}


# ----------------------------------------------------------------------------- report

def render_md(r: dict[str, Any]) -> str:
    pos = r["positive_class"]
    lines = [f"# Normal vs abnormal: shortcut report ({r['name']})", "", f"**{r['warning']}**", "",
             "## Data and split", "", f"- data: `{r['data']['path']}` ({r['data']['source']})",
             f"- classes: {', '.join(r['data']['classes'])} (positive: {pos})",
             f"- images per split: {json.dumps(r['data']['counts'])}",
             f"- patients/sources per split: {json.dumps(r['data']['groups'])}",
             f"- split: {r['data']['split']}"]
    if r["data"].get("official_split_leak"):
        lines.append(f"- note: {r['data']['official_split_leak']}")
    if r["data"].get("source_by_class"):
        lines.append(f"- image source by class: {json.dumps(r['data']['source_by_class'])}")
    m = r["model"]
    lines += ["", "## Model", "", f"- architecture {m['architecture']} (base weights: {m['base_weights']}), "
              f"input {m['input_size']}; training {m['train_seconds']} s",
              f"- test ROC AUC ({pos} vs rest): **{m['test_auc']}**, accuracy {m['test_accuracy']} "
              f"on {m['test_images']} images", ""]
    lines += ["## Shortcut check 1: classes from non-anatomical statistics alone", "",
              "Logistic regression, out-of-fold over patient-grouped stratified folds, on one image-wide feature "
              "group at a time (0.5 = chance; 95% interval by patient bootstrap):", "",
              "| features | n features | AUC | 95% CI | accuracy |", "| --- | --- | --- | --- | --- |"]
    for name, v in r["shortcut"]["nuisance_auc"].items():
        lines.append(f"| {name} | {v['n_features']} | {v['auc']} | {v.get('ci_low')}-{v.get('ci_high')} | "
                     f"{v['accuracy']} |")
    mk = r["shortcut"]["masking"]
    lines += ["", "## Shortcut check 2: the trained model without the anatomy", "",
              "| test input | ROC AUC |", "| --- | --- |",
              f"| unmodified | {mk['plain_auc']} |", f"| head box blanked (no anatomy) | {mk['no_head_auc']} |",
              f"| only the head box kept | {mk['head_only_auc']} |", ""]
    lines += ["## Shortcut check 3: where the explanations put their mass", "",
              "Share of positive attribution inside the annotated head box vs the box's share of the model input "
              "(a uniform map would have ratio 1):", "",
              "| method | class | images | mass inside | box area | ratio | images with most mass outside |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for method, summary in r["shortcut"]["attribution"].items():
        for cls, v in summary.items():
            if v.get("images"):
                lines.append(f"| {method} | {cls} | {v['images']} | {v['mass_inside_mean']} | {v['box_area_mean']} | "
                             f"{v['ratio_mean']} | {v['fraction_images_mass_mostly_outside']} |")
    lines += ["", "## Reading", ""] + [f"- {x}" for x in r["conclusions"]] + [""]
    return "\n".join(lines)


def conclusions(r: dict[str, Any]) -> list[str]:
    out = []
    best = max(r["shortcut"]["nuisance_auc"].items(), key=lambda kv: kv[1]["auc"])
    out.append(f"Without any anatomy, {best[0]} statistics alone separate the classes with AUC {best[1]['auc']} "
               f"(model on whole images: {r['model']['test_auc']}).")
    mk = r["shortcut"]["masking"]
    out.append(f"With the head blanked out the trained model still reaches AUC {mk['no_head_auc']} on the test "
               "split: " + ("it uses information outside the head." if (mk["no_head_auc"] or 0) >= 0.7 else
                            "little of its separation survives without the head."))
    gc = r["shortcut"]["attribution"].get("gradcam", {}).get("all", {})
    if gc.get("images"):
        out.append(f"Grad-CAM puts {100 * gc['mass_inside_mean']:.0f}% of its mass inside the head box, which covers "
                   f"{100 * gc['box_area_mean']:.0f}% of the input (ratio {gc['ratio_mean']}).")
    if mk.get("head_only_auc") is not None:
        out.append(f"With only the head box kept the model reaches AUC {mk['head_only_auc']}; the head region itself "
                   "carries the source's texture, noise and compression, so this does not show that it learned "
                   "pathology.")
    out.append("Any accuracy on this set therefore measures source recognition as much as pathology; use a set where "
               "normal and abnormal images come from the same scanners and sites before any claim.")
    return out


def write_outputs(report: dict[str, Any], out: Path, trained_card: dict[str, Any], model_dir: Path,
                  dest: Path | None) -> None:
    """``report.json`` / ``report.md`` into ``out``; with ``dest`` the bundle: the trainer's card extended
    with the demonstration status, warning and shortcut numbers, weights, the trainer's evaluation report and
    the shortcut report."""
    from fetalscope.models.bundle import render_card_md

    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_md(report), encoding="utf-8")
    if dest is None:
        return
    dest.mkdir(parents=True, exist_ok=True)
    sc = report["shortcut"]
    card = dict(trained_card)
    card.update({
        "name": report["name"],
        "status": "demonstration, confounded data",
        "warning": report["warning"],
        "intended_use": "Demonstration of the normal/abnormal pipeline only (confounded data). Research and "
                        "education; not a medical device; makes no clinical claim.",
        "classes_not_covered": ["any specific anomaly (ventriculomegaly, cysts, Chiari ...) as such",
                                "normal images from non-FETAL_PLANES_DB sources"],
        "shortcut_check": {"nuisance_auc": {k: v["auc"] for k, v in sc["nuisance_auc"].items()},
                           "masking": sc["masking"],
                           "gradcam_mass_inside_head": sc["attribution"].get("gradcam", {}).get("all")},
        "limitations": [report["warning"]] + report["conclusions"],
        "citations": ["Roboflow Universe, fetal-abnormality-object-detection v1 (cv-pyvkz), CC BY 4.0.",
                      "Burgos-Artizzu XP et al. FETAL_PLANES_DB. Sci Rep 10:10200 (2020), CC BY 4.0."],
    })
    card["metrics"] = {**(card.get("metrics") or {}), "test_auc": sc["masking"]["plain_auc"],
                       "test_auc_head_blanked": sc["masking"].get("no_head_auc")}
    (dest / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    shortcut_md = "## Shortcut check 1" + render_md(report).split("## Shortcut check 1", 1)[1]
    (dest / "card.md").write_text(f"**{report['warning']}**\n\n" + render_card_md(card) + "\n" + shortcut_md,
                                  encoding="utf-8")
    if (model_dir / "model.safetensors").resolve() != (dest / "model.safetensors").resolve():
        shutil.copyfile(model_dir / "model.safetensors", dest / "model.safetensors")
    if (model_dir / "report.json").is_file():
        shutil.copyfile(model_dir / "report.json", dest / "report.json")
    slim = {k: v for k, v in report.items() if k != "per_image_attribution"}
    (dest / "shortcut_report.json").write_text(json.dumps(slim, indent=2) + "\n", encoding="utf-8")
    (dest / "shortcut_report.md").write_text(render_md(report), encoding="utf-8")


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(config.shared_data_dir() / "brain_normal_abnormal_roboflow"))
    p.add_argument("--out", default="runs/brain-normal-abnormal")
    p.add_argument("--bundle", default=None, help="copy the bundle (card says demonstration) here")
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
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    full = load_samples(Path(args.data))
    if len(full.classes) != 2:
        raise DataError(f"{args.data}: the normal/abnormal pipeline needs exactly 2 classes, "
                        f"found {list(full.classes)}")
    if args.positive not in full.classes:
        raise DataError(f"positive class '{args.positive}' not in {list(full.classes)}; pass --positive")
    pos = full.classes.index(args.positive)
    split = make_split(full, args.seed)
    leak = None
    official = {s.meta.get("split") for s in full.samples} - {None}
    if len(official) > 1:
        try:
            assert_patient_disjoint(*[[s for s in full.samples if s.meta.get("split") == o] for o in sorted(official)],
                                    names=sorted(official))
        except DataError as exc:
            leak = ("the dataset's own split shares patients between its parts, so it was replaced by a "
                    f"patient-grouped split ({str(exc).split(':')[0]})")

    # 2. transfer learning with the project trainer
    from fetalscope.models.bundle import load_bundle
    from fetalscope.train.config import TrainConfig
    from fetalscope.train.trainer import train

    tree = materialise(split, full.classes, out / "data")
    model_dir = out / "model"
    cfg = TrainConfig(data=str(tree), data_format="split_folders", model=args.model, pretrained=True,
                      out=str(model_dir), image_size=args.image_size, batch_size=args.batch_size,
                      phase1_epochs=args.phase1_epochs, phase2_epochs=args.phase2_epochs, seed=args.seed,
                      tensorboard=False, name=args.name, task="brain-normal-abnormal", amp="off")
    start = time.perf_counter()
    result = train(cfg)
    train_seconds = round(time.perf_counter() - start, 1)
    bundle = load_bundle(model_dir)
    model, pre = bundle.model.eval(), bundle.preprocess
    # class order of the bundle (split-folder names, sorted) may differ from the dataset's
    remap = {i: bundle.classes.index(c) for i, c in enumerate(full.classes)}
    test = [Sample(s.path, remap[s.label], s.patient, s.meta) for s in split.test]
    pos_b = bundle.classes.index(full.classes[pos])
    y = np.array([int(s.label == pos_b) for s in test])

    # 3a. nuisance statistics (one image per source, all splits)
    uniq = one_per_source(list(full.samples))
    records = []
    for s in uniq:
        img = load_image(s.path)
        records.append(nuisance_features(img.pixels, head_box_px(s, img.width, img.height)))
    yy = [int(s.label == pos) for s in uniq]
    groups = [s.patient for s in uniq]
    nuisance: dict[str, Any] = {}
    for group in FEATURE_GROUPS:
        x, names = feature_matrix(records, group)
        if names:
            res = shortcut_auc(x, yy, groups, seed=args.seed)
            res.pop("oof", None)
            nuisance[group] = res
    x_all = np.hstack([feature_matrix(records, g)[0] for g in FEATURE_GROUPS])
    nuisance["all non-anatomical"] = {k: v for k, v in shortcut_auc(x_all, yy, groups, seed=args.seed).items()
                                      if k != "oof"}

    # 3b. the trained model with and without anatomy
    masking: dict[str, Any] = {}
    has_boxes = all(s.meta.get("box_norm") for s in test)
    for mode in ("plain", "no_head", "head_only") if has_boxes else ("plain",):
        prob = probabilities(model, test, pre, mode, bundle.temperature)[:, pos_b]
        masking[f"{mode}_auc"] = round(float(roc_auc_score(y, prob)), 4)
        if mode == "plain":
            plain_prob = prob
    masking.setdefault("no_head_auc", None)
    masking.setdefault("head_only_auc", None)

    # 3c. explanation mass inside the head box
    attribution: dict[str, Any] = {}
    rows_all: dict[str, list] = {}
    if has_boxes:
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(test))
        gc_rows = attribution_mass(model, [test[i] for i in order[: args.gradcam]], pre, "gradcam")
        attribution["gradcam"] = summarise_mass(gc_rows, tuple(bundle.classes))
        rows_all["gradcam"] = gc_rows
        if args.lime:
            lime_rows = attribution_mass(model, [test[i] for i in order[: args.lime]], pre, "lime")
            attribution["lime"] = summarise_mass(lime_rows, tuple(bundle.classes))
            rows_all["lime"] = lime_rows

    source_by_class: dict[str, dict[str, int]] = {}
    for s in full.samples:
        src = str(s.meta.get("source_dataset") or "unknown")
        source_by_class.setdefault(full.classes[s.label], {}).setdefault(src, 0)
        source_by_class[full.classes[s.label]][src] += 1
    report: dict[str, Any] = {
        "name": args.name,
        "status": "demonstration, confounded data",
        "warning": DEMO_WARNING,
        "positive_class": full.classes[pos],
        "data": {"path": str(args.data), "source": full.source, "classes": list(full.classes),
                 "counts": {k: len(v) for k, v in split.parts().items()},
                 "groups": {k: len({s.patient for s in v}) for k, v in split.parts().items()},
                 "split": "patient-grouped stratified split (15% val, 20% test); val/test keep one image per source",
                 "official_split_leak": leak, "source_by_class": source_by_class},
        "model": {"architecture": args.model, "base_weights": bundle.card.get("base_weights", {}).get("name"),
                  "input_size": list(pre.input_size), "train_seconds": train_seconds,
                  "test_auc": masking["plain_auc"],
                  "test_accuracy": round(float(((plain_prob >= 0.5) == y).mean()), 4),
                  "test_images": len(test), "trainer_summary": result.report.get("summary", {})},
        "shortcut": {"nuisance_auc": nuisance, "nuisance_images": len(uniq), "masking": masking,
                     "attribution": attribution},
        "per_image_attribution": rows_all,
    }
    report["conclusions"] = conclusions(report)
    write_outputs(report, out, bundle.card, model_dir, Path(args.bundle) if args.bundle else None)
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
