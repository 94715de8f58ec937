"""`fetalscope ablate`: named variants of one training config on the same split, one table out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.models.cards import read_card_file
from fetalscope.train.classifier.config import TrainConfig
from fetalscope.train.classifier.progress import ProgressHook

Variant = Callable[[TrainConfig], TrainConfig]


def _with_kwargs(cfg: TrainConfig, **kw: Any) -> TrainConfig:
    return replace(cfg, model_kwargs={**cfg.model_kwargs, **kw})


VARIANTS: dict[str, tuple[str, Variant]] = {
    "baseline": ("the configuration as given", lambda c: c),
    "no_se": ("without the squeeze-and-excitation block (fetalnet)", lambda c: _with_kwargs(c, se=False)),
    "frozen_only": ("phase 1 only: frozen backbone, no fine-tuning", lambda c: replace(c, phase2_epochs=0)),
    "no_augment": ("fine-tuning without augmentation", lambda c: replace(c, augment="none")),
    "no_pretrain": ("random initialisation instead of pretrained weights", lambda c: replace(c, pretrained=False)),
    "no_balance": ("no class-imbalance handling", lambda c: replace(c, balance="none")),
    "label_smoothing": ("label smoothing 0.1", lambda c: replace(c, label_smoothing=0.1)),
}


def resolve_variant(name: str) -> tuple[str, Variant]:
    """``backbone=<model>`` swaps the architecture; other names come from :data:`VARIANTS`."""
    if name.startswith("backbone="):
        arch = name.split("=", 1)[1]
        if not arch:
            raise BadInputError("backbone= needs a model name, e.g. backbone=efficientnet_lite0")
        return f"backbone {arch}", lambda c: replace(c, model=arch, model_kwargs={})
    if name not in VARIANTS:
        raise BadInputError(
            f"unknown ablation variant '{name}'. Known: {', '.join(VARIANTS)}, or backbone=<model name>"
        )
    return VARIANTS[name]


def _study(card: dict[str, Any], total_seconds: float, note: str | None) -> dict[str, Any]:
    """What every variant shared, read from the first variant's card: data, split, counts, machine."""
    cfg = card["training"]["config"]
    return {
        "note": note,
        "data_source": card["data"]["source"],
        "split": card["data"]["split"],
        "counts": card["data"]["counts"],
        "classes": card["classes"],
        "model": cfg["model"],
        "image_size": cfg["image_size"],
        "phase1_epochs": cfg["phase1_epochs"],
        "phase2_epochs": cfg["phase2_epochs"],
        "device": card["training"]["device"],
        "cpu_threads": torch_threads(),
        "total_seconds": round(total_seconds, 1),
    }


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def run_ablation(base: TrainConfig, variants: list[str], out: str | Path, *, note: str | None = None,
                 progress: ProgressHook | None = None,
                 on_variant: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every variant into ``out/<variant>/`` and write ``ablation.json``, ``ablation.md`` and
    ``ablation.png`` (weighted F1 with its interval per variant). ``note`` is printed above the table;
    ``progress`` goes to each training; ``on_variant(name)`` is called after each variant."""
    from fetalscope.train.classifier.trainer import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = [(v, *resolve_variant(v)) for v in variants]  # fail fast on a typo, before any training
    rows = []
    study: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name, description, make in resolved:
        safe = name.replace("=", "-").replace("/", "-")
        cfg = replace(make(base), out=str(out / safe), name=f"ablation-{safe}")
        result = train(cfg, progress=progress)
        card = read_card_file(Path(result.bundle))
        study = study or card
        summary = result.report.get("summary", {})
        rows.append({
            "variant": name,
            "description": description,
            "model": cfg.model,
            "pretrained": cfg.pretrained,
            "n_test_images": summary.get("n_test_images"),
            "accuracy": summary.get("accuracy"),
            "accuracy_ci": summary.get("accuracy_ci"),
            "weighted_f1": summary.get("weighted_f1"),
            "weighted_f1_ci": summary.get("weighted_f1_ci"),
            "macro_f1": summary.get("macro_f1"),
            "ci_unit": summary.get("ci_unit"),
            "ece": summary.get("ece"),
            "epochs_run": [sum(1 for r in result.history if r["phase"] == k) for k in (1, 2)],
            "train_seconds": round(result.seconds, 1),
            "bundle": safe,
        })
        if on_variant is not None:
            on_variant(name)
    table = {"base_config": base.to_dict(), "variants": rows, "test_split": "same split for every variant",
             "study": _study(study, time.perf_counter() - t0, note) if study else {"note": note}}
    (out / "ablation.json").write_text(json.dumps(table, indent=2))
    plot_ablation(rows, out / "ablation.png")
    (out / "ablation.md").write_text(render_ablation_md(table))
    return table


def plot_ablation(rows: list[dict[str, Any]], path: Path) -> None:
    """Weighted F1 per variant with its 95% interval, as a horizontal bar chart (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [r["variant"] for r in rows]
    values = [100 * (r["weighted_f1"] or 0.0) for r in rows]
    lows = [v - 100 * r["weighted_f1_ci"][0] if r.get("weighted_f1_ci") else 0.0 for v, r in zip(values, rows,
                                                                                             strict=True)]
    highs = [100 * r["weighted_f1_ci"][1] - v if r.get("weighted_f1_ci") else 0.0 for v, r in zip(values, rows,
                                                                                              strict=True)]
    fig = Figure(figsize=(6.0, 0.5 * len(rows) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), values, xerr=[lows, highs], color="#4c78a8", capsize=3)
    ax.set_yticks(range(len(rows)), labels=names)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("weighted F1 on the test split, % (bars: 95% interval)")
    fig.savefig(path, dpi=100, bbox_inches="tight")


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.1f}%"
    if ci and len(ci) == 2 and None not in ci:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def _study_md(study: dict[str, Any]) -> list[str]:
    if "split" not in study:
        return []
    counts = "; ".join(f"{part} " + ", ".join(f"{c} {n}" for c, n in per.items())
                       for part, per in study["counts"].items())
    size = f"{study['image_size']} px" if study.get("image_size") else "the model's default size"
    return [f"- **Data**: {study['data_source']}; classes {', '.join(study['classes'])}.",
            f"- **Split**: {study['split']}. Images per split: {counts}.",
            f"- **Model**: `{study['model']}` at {size}; up to {study['phase1_epochs']} frozen-backbone epochs "
            f"then up to {study['phase2_epochs']} fine-tuning epochs (early stopping on validation weighted F1).",
            f"- **Machine**: {study['device']}, {study['cpu_threads']} thread(s); all variants took "
            f"{study['total_seconds']:.0f} s.", ""]


def render_ablation_md(table: dict[str, Any]) -> str:
    study = table.get("study") or {}
    lines = ["# Ablation study", ""]
    if study.get("note"):
        lines += [study["note"], ""]
    lines += _study_md(study)
    lines += [f"Base model: `{table['base_config'].get('model')}`, task `{table['base_config'].get('task')}`, "
              f"data `{table['base_config'].get('data')}`. Every variant uses the same split.", "",
              "| variant | what changes | accuracy (95% CI) | weighted F1 (95% CI) | macro F1 | ECE | train s |",
              "|---|---|---|---|---|---|---|"]
    for r in table["variants"]:
        ece = "n/a" if r.get("ece") is None else f"{r['ece']:.3f}"
        macro = "n/a" if r.get("macro_f1") is None else f"{100 * r['macro_f1']:.1f}%"
        lines.append(f"| {r['variant']} | {r['description']} | {_fmt(r['accuracy'], r.get('accuracy_ci'))} | "
                     f"{_fmt(r['weighted_f1'], r.get('weighted_f1_ci'))} | {macro} | {ece} | {r['train_seconds']} |")
    units = {r.get("ci_unit") for r in table["variants"] if r.get("ci_unit")}
    if units:
        lines += ["", f"Intervals: 95% bootstrap over test {'/'.join(sorted(units))}s."]
    if any(r.get("weighted_f1") is not None for r in table["variants"]):
        lines += ["", "![weighted F1 per variant](ablation.png)"]
    return "\n".join(lines) + "\n"
