"""The study's outputs: ``report.json`` / ``report.md`` and, when asked, a model bundle whose card carries
the status, warning and shortcut numbers.

The card's words depend on the data (:data:`CARD_PRESETS`): ``roboflow-demo`` is the text of the shipped
``brain-normal-abnormal-demo`` bundle (normal and abnormal images from different sources); ``own-data``
is for a user's own set, whose provenance this code cannot know.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CardText:
    """The words a study writes into its report and bundle card."""

    status: str
    warning: str
    intended_use: str
    classes_not_covered: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    confounded: bool = False  # the data are known to confound class and source


ROBOFLOW_DEMO = CardText(
    status="demonstration, confounded data",
    warning=("Demonstration only, confounded data: in the training set every normal image comes from "
             "FETAL_PLANES_DB (two Barcelona hospitals) and every abnormal image from other, mostly web, sources, "
             "so class and image source coincide. The model may recognise the source rather than any pathology. "
             "Not a clinical claim; not a medical device."),
    intended_use=("Demonstration of the normal/abnormal pipeline only (confounded data). Research and "
                  "education; not a medical device; makes no clinical claim."),
    classes_not_covered=["any specific anomaly (ventriculomegaly, cysts, Chiari ...) as such",
                         "normal images from non-FETAL_PLANES_DB sources"],
    citations=["Roboflow Universe, fetal-abnormality-object-detection v1 (cv-pyvkz), CC BY 4.0.",
               "Burgos-Artizzu XP et al. FETAL_PLANES_DB. Sci Rep 10:10200 (2020), CC BY 4.0."],
    confounded=True,
)
OWN_DATA = CardText(
    status="research, unvalidated",
    warning=("Research model trained on a user-supplied set; not validated. If normal and abnormal images come "
             "from different scanners, sites or sources, the model may recognise the source rather than any "
             "pathology: read the shortcut checks in its report. Not a clinical claim; not a medical device."),
    intended_use="Research and education on the user's own data; not a medical device; makes no clinical claim.",
)
CARD_PRESETS = {"roboflow-demo": ROBOFLOW_DEMO, "own-data": OWN_DATA}
SOURCE_SHORTCUT_AUC = 0.75  # nuisance AUC from which the report calls the source a usable shortcut


def _auc(value: float | None) -> str:
    return "n/a (no head boxes)" if value is None else str(value)


def render_md(r: dict[str, Any]) -> str:
    """``report.md`` of a study report."""
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
              f"| unmodified | {mk['plain_auc']} |", f"| head box blanked (no anatomy) | {_auc(mk['no_head_auc'])} |",
              f"| only the head box kept | {_auc(mk['head_only_auc'])} |", ""]
    if mk.get("no_head_auc") is None:
        lines += ["The data have no anatomy box per image, so checks 2 and 3 could not mask the head or measure "
                  "where explanations put their mass (a YOLO export with one head box per image enables them).", ""]
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
    """Plain sentences read off the numbers of a study report."""
    out = []
    best = max(r["shortcut"]["nuisance_auc"].items(), key=lambda kv: kv[1]["auc"])
    out.append(f"Without any anatomy, {best[0]} statistics alone separate the classes with AUC {best[1]['auc']} "
               f"(model on whole images: {r['model']['test_auc']}).")
    mk = r["shortcut"]["masking"]
    if mk.get("no_head_auc") is not None:
        out.append(f"With the head blanked out the trained model still reaches AUC {mk['no_head_auc']} on the test "
                   "split: " + ("it uses information outside the head." if mk["no_head_auc"] >= 0.7 else
                                "little of its separation survives without the head."))
    gc = r["shortcut"]["attribution"].get("gradcam", {}).get("all", {})
    if gc.get("images") and gc.get("mass_inside_mean") is not None:
        out.append(f"Grad-CAM puts {100 * gc['mass_inside_mean']:.0f}% of its mass inside the head box, which covers "
                   f"{100 * gc['box_area_mean']:.0f}% of the input (ratio {gc['ratio_mean']}).")
    if mk.get("head_only_auc") is not None:
        out.append(f"With only the head box kept the model reaches AUC {mk['head_only_auc']}; the head region itself "
                   "carries the source's texture, noise and compression, so this does not show that it learned "
                   "pathology.")
    if best[1]["auc"] >= SOURCE_SHORTCUT_AUC:
        out.append("Any accuracy on this set therefore measures source recognition as much as pathology; use a set "
                   "where normal and abnormal images come from the same scanners and sites before any claim.")
    else:
        out.append(f"Non-anatomical statistics separate the classes only weakly (best AUC {best[1]['auc']} < "
                   f"{SOURCE_SHORTCUT_AUC}); this lowers, but does not rule out, the risk of a source shortcut.")
    return out


def write_report(report: dict[str, Any], out: Path) -> None:
    """``report.json`` and ``report.md`` into ``out``."""
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_md(report), encoding="utf-8")


def write_bundle(report: dict[str, Any], text: CardText, trained_card: dict[str, Any], model_dir: Path,
                 dest: Path) -> None:
    """The bundle in ``dest``: the trainer's card extended with the status, warning and shortcut numbers,
    the weights, the trainer's evaluation report and the shortcut report."""
    from fetalscope.models.bundle import render_card_md, write_card_files

    dest.mkdir(parents=True, exist_ok=True)
    sc = report["shortcut"]
    card = dict(trained_card)
    card.update({
        "name": report["name"],
        "status": text.status,
        "warning": report["warning"],
        "intended_use": text.intended_use,
        "classes_not_covered": list(text.classes_not_covered),
        "shortcut_check": {"nuisance_auc": {k: v["auc"] for k, v in sc["nuisance_auc"].items()},
                           "masking": sc["masking"],
                           "gradcam_mass_inside_head": sc["attribution"].get("gradcam", {}).get("all")},
        "limitations": [report["warning"]] + report["conclusions"],
        "citations": list(text.citations),
    })
    card["metrics"] = {**(card.get("metrics") or {}), "test_auc": sc["masking"]["plain_auc"],
                       "test_auc_head_blanked": sc["masking"].get("no_head_auc")}
    shortcut_md = "## Shortcut check 1" + render_md(report).split("## Shortcut check 1", 1)[1]
    write_card_files(dest, card, f"**{report['warning']}**\n\n" + render_card_md(card) + "\n" + shortcut_md)
    if (model_dir / "model.safetensors").resolve() != (dest / "model.safetensors").resolve():
        shutil.copyfile(model_dir / "model.safetensors", dest / "model.safetensors")
    if (model_dir / "report.json").is_file():
        shutil.copyfile(model_dir / "report.json", dest / "report.json")
    slim = {k: v for k, v in report.items() if k != "per_image_attribution"}
    (dest / "shortcut_report.json").write_text(json.dumps(slim, indent=2) + "\n", encoding="utf-8")
    (dest / "shortcut_report.md").write_text(render_md(report), encoding="utf-8")
