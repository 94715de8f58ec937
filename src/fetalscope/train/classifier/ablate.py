"""`fetalscope ablate`: named variants of one training config on the same split, one table out."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.train.classifier.config import TrainConfig

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


def run_ablation(base: TrainConfig, variants: list[str], out: str | Path) -> dict[str, Any]:
    """Train every variant into ``out/<variant>/`` and write ``ablation.json`` + ``ablation.md``."""
    from fetalscope.train.classifier.trainer import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resolved = [(v, *resolve_variant(v)) for v in variants]  # fail fast on a typo, before any training
    rows = []
    for name, description, make in resolved:
        safe = name.replace("=", "-").replace("/", "-")
        cfg = replace(make(base), out=str(out / safe), name=f"ablation-{safe}")
        result = train(cfg)
        summary = result.report.get("summary", {})
        rows.append({
            "variant": name,
            "description": description,
            "model": cfg.model,
            "accuracy": summary.get("accuracy"),
            "accuracy_ci": summary.get("accuracy_ci"),
            "weighted_f1": summary.get("weighted_f1"),
            "weighted_f1_ci": summary.get("weighted_f1_ci"),
            "macro_f1": summary.get("macro_f1"),
            "ece": summary.get("ece"),
            "train_seconds": round(result.seconds, 1),
            "bundle": str(result.bundle),
        })
    table = {"base_config": base.to_dict(), "variants": rows, "test_split": "same split for every variant"}
    (out / "ablation.json").write_text(json.dumps(table, indent=2))
    (out / "ablation.md").write_text(render_ablation_md(table))
    return table


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.1f}%"
    if ci and len(ci) == 2 and None not in ci:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def render_ablation_md(table: dict[str, Any]) -> str:
    lines = ["# Ablation study", "",
             f"Base model: `{table['base_config'].get('model')}`, task `{table['base_config'].get('task')}`, "
             f"data `{table['base_config'].get('data')}`. Every variant uses the same split.", "",
             "| variant | what changes | accuracy (95% CI) | weighted F1 (95% CI) | macro F1 | ECE | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in table["variants"]:
        ece = "n/a" if r.get("ece") is None else f"{r['ece']:.3f}"
        macro = "n/a" if r.get("macro_f1") is None else f"{100 * r['macro_f1']:.1f}%"
        lines.append(f"| {r['variant']} | {r['description']} | {_fmt(r['accuracy'], r.get('accuracy_ci'))} | "
                     f"{_fmt(r['weighted_f1'], r.get('weighted_f1_ci'))} | {macro} | {ece} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n"
