"""``fetalscope explain-eval``: are the maps faithful, and do they depend on the model at all?

For a set of images (a dataset split, a folder, or tensors) and a model, every method explains
every image; then

- faithfulness: deletion and insertion curves with their AUCs, per method, against random
  pixel orders on the same images (:mod:`fetalscope.explain.faithfulness`);
- sanity: cascading model-parameter randomisation with Spearman rank correlations per method
  and stage, flagging methods whose maps survive randomisation (:mod:`fetalscope.explain.sanity`);
- the cost of each method and the Integrated Gradients completeness error.

Everything lands in ``out_dir``: ``report.json`` (all numbers), ``report.md`` (tables rendered
from the same numbers), ``faithfulness.png``, ``sanity.png`` and ``examples.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fetalscope.errors import BadInputError
from fetalscope.explain import faithfulness, sanity
from fetalscope.explain.common import inference_setup, model_device, optimise_for_cpu, predict_probs
from fetalscope.explain.methods import DEFAULT_METHODS, explain_batch, method_spec, parse_methods
from fetalscope.explain.overlay import overlay
from fetalscope.explain.runner import ModelView, as_model_view, prepare, split_params
from fetalscope.imaging import iter_image_paths, load_image


@dataclass
class _Item:
    name: str
    rgb: np.ndarray
    x: torch.Tensor
    label: int | None


def _display_from_tensor(x: torch.Tensor) -> np.ndarray:
    g = x.float().mean(dim=0).numpy()
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    return np.repeat((g * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def _items(data: Any, view: ModelView, n_images: int | None, seed: int) -> list[_Item]:
    """Pick up to ``n_images`` (at random, fixed seed; in their original order) and load them."""
    if isinstance(getattr(data, "samples", None), (list, tuple)):
        data = data.samples  # a LabelledSet or an ImageDataset: load the files (no augmentation)
    if isinstance(data, (str, Path)):
        data = list(iter_image_paths(data))
    entries = list(data) if not isinstance(data, torch.utils.data.Dataset) else [data[i] for i in range(len(data))]
    if not entries:
        raise BadInputError("explain-eval got no images")
    idx = np.arange(len(entries))
    if n_images is not None and n_images < len(entries):
        if n_images < 1:
            raise BadInputError(f"n_images must be >= 1, got {n_images}")
        idx = np.sort(np.random.default_rng(seed).choice(len(entries), size=n_images, replace=False))
    items = []
    for i in idx:
        e = entries[int(i)]
        if isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], torch.Tensor):
            x = e[0]
            items.append(_Item(f"item{int(i)}", _display_from_tensor(x), x, int(e[1])))
            continue
        path = Path(getattr(e, "path", e))
        label = getattr(e, "label", None)
        rgb, x = prepare(load_image(path), view.preprocess)
        items.append(_Item(str(path), rgb, x, None if label is None else int(label)))
    return items


def explain_eval(data: Any, bundle: Any, methods: str | Sequence[str] = DEFAULT_METHODS, out_dir: str | Path = ".",
                 *, n_images: int | None = 16, sanity_images: int = 2, target: str = "predicted", steps: int = 20,
                 n_random: int = 3, deletion_baseline: str = "blur", insertion_baseline: str = "blur",
                 threshold: float = sanity.DEFAULT_THRESHOLD,
                 first_stage_threshold: float = sanity.DEFAULT_FIRST_STAGE_THRESHOLD, max_stages: int | None = None,
                 params: dict[str, Any] | None = None, method_params: dict[str, dict[str, Any]] | None = None,
                 sanity_method_params: dict[str, dict[str, Any]] | None = None, batch_size: int = 8,
                 seed: int = 0) -> dict[str, Any]:
    """Faithfulness and sanity report for ``methods`` on ``data``; writes report files to ``out_dir``.

    ``data``: a ``LabelledSet`` or list of samples (``.path``, ``.label``), image paths or a folder,
    or a torch dataset / list of ``(tensor, label)``. ``target``: ``predicted`` (default) or
    ``label`` (the true class). ``sanity_images`` of the chosen images go through the cascade
    (``0`` skips it); ``sanity_method_params`` may lighten costly methods there (e.g. fewer LIME
    samples). Returns the report dictionary also written as ``report.json``.
    """
    if target not in ("predicted", "label"):
        raise BadInputError(f"target must be 'predicted' or 'label', got '{target}'")
    view = as_model_view(bundle)
    optimise_for_cpu(view.model)
    names = parse_methods(methods)
    per = split_params(names, params, method_params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = _items(data, view, n_images, seed)
    model = view.model
    xs = torch.stack([it.x for it in items]).to(model_device(model))
    with inference_setup(model):
        probs = predict_probs(model, xs).cpu()
    preds = probs.argmax(dim=1)
    if target == "label":
        if any(it.label is None for it in items):
            raise BadInputError("target='label' needs labelled samples; these images have no labels")
        targets = torch.tensor([it.label for it in items], dtype=torch.long)
    else:
        targets = preds.clone()

    maps: dict[str, list[np.ndarray]] = {m: [] for m in names}
    seconds: dict[str, list[float]] = {m: [] for m in names}
    completeness: list[dict[str, Any]] = []
    for m in names:
        for s in range(0, len(items), batch_size):
            es = explain_batch(model, xs[s:s + batch_size], m, targets[s:s + batch_size],
                               preprocess=view.preprocess, **per[m])
            maps[m].extend(e.map for e in es)
            seconds[m].extend(e.seconds for e in es)
            if m == "integrated_gradients":
                completeness.extend(e.extra["completeness"] for e in es)

    per_image = []
    for i in range(len(items)):
        per_image.append(faithfulness.evaluate_maps(
            model, xs[i:i + 1], int(targets[i]), {m: maps[m][i] for m in names}, steps=steps, n_random=n_random,
            deletion_baseline=deletion_baseline, insertion_baseline=insertion_baseline,
            preprocess=view.preprocess, seed=seed + i))
    faith = faithfulness.summarise(per_image)

    sanity_dict: dict[str, Any] | None = None
    if sanity_images > 0:
        k = min(sanity_images, len(items))
        sp = {m: {**per[m], **(sanity_method_params or {}).get(m, {})} for m in names}
        reference = None if sanity_method_params else {m: maps[m][:k] for m in names}
        t0 = time.perf_counter()
        res = sanity.cascading_randomisation(model, xs[:k], names, target=targets[:k].tolist(),
                                             preprocess=view.preprocess, method_params=sp, seed=seed,
                                             threshold=threshold, first_stage_threshold=first_stage_threshold,
                                             max_stages=max_stages, reference=reference)
        sanity_dict = {**res.to_dict(), "n_images": k, "seconds": time.perf_counter() - t0,
                       "method_params": sp}

    report: dict[str, Any] = {
        "kind": "explain-eval",
        "model": view.to_dict(),
        "methods": names,
        "params": per,
        "n_images": len(items),
        "images": [{"image": it.name, "label": it.label, "predicted": int(preds[i]), "target": int(targets[i]),
                    "target_probability": float(probs[i, targets[i]])} for i, it in enumerate(items)],
        "target": target,
        "faithfulness": {"steps": steps, "n_random_orders": n_random, "deletion_baseline": deletion_baseline,
                         "insertion_baseline": insertion_baseline, **faith},
        "sanity": sanity_dict,
        "timing": {m: {"mean_seconds": float(np.mean(v)), "max_seconds": float(np.max(v))} for m, v in seconds.items()},
        "integrated_gradients_completeness": _completeness_summary(completeness),
        "torch_threads": torch.get_num_threads(),
    }
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    files = _plots(report, items, maps, names, out)
    report["files"] = ["report.json", "report.md", *files]
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _completeness_summary(checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not checks:
        return None
    rel = np.array([c["relative_error"] for c in checks])
    return {"n": len(checks), "mean_relative_error": float(rel.mean()), "max_relative_error": float(rel.max()),
            "per_image": checks}


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


# ------------------------------------------------------------------------------------- output

def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: every number comes from ``report`` (nothing typed in by hand)."""
    f = report["faithfulness"]
    lines = [
        "# Explanation check",
        "",
        f"Model **{report['model']['name']}** ({len(report['model']['classes'])} classes, input "
        f"{report['model']['input_size'][0]}x{report['model']['input_size'][1]}), {report['n_images']} images, "
        f"explaining the {report['target']} class. Generated by `fetalscope.explain.evaluation`.",
        "",
        "## Faithfulness (deletion / insertion)",
        "",
        f"Pixels removed (replaced by the {f['deletion_baseline']} baseline) or inserted (onto the "
        f"{f['insertion_baseline']} baseline) in the map's order, {f['steps']} steps; the curve is the target "
        f"class probability. Deletion AUC: lower is better; insertion AUC: higher is better. Random: mean of "
        f"{f['n_random_orders']} random pixel orders on the same images.",
        "",
        "| method | deletion AUC | random | insertion AUC | random | images better than random (del / ins) "
        "| beats random |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m, r in f["methods"].items():
        lines.append(f"| {m} | {_fmt(r['deletion_auc'])} ± {_fmt(r['deletion_auc_std'])} | "
                     f"{_fmt(r['random_deletion_auc'])} | "
                     f"{_fmt(r['insertion_auc'])} ± {_fmt(r['insertion_auc_std'])} | "
                     f"{_fmt(r['random_insertion_auc'])} | {r['deletion_wins']}/{r['n_images']} / "
                     f"{r['insertion_wins']}/{r['n_images']} | {_fmt(r['beats_random'])} |")
    lines += ["", "![faithfulness curves](faithfulness.png)", ""]
    s = report.get("sanity")
    lines += ["## Sanity check (cascading parameter randomisation)", ""]
    if s:
        lines += [
            f"Layers re-initialised from the output down ({len(s['stages'])} stages: {', '.join(s['stages'])}), "
            f"on {s['n_images']} images. Spearman rank correlation between the trained and the randomised "
            f"model's maps (the larger of raw and absolute-value maps). A method is flagged **insensitive to "
            f"weights** when the correlation stays above {_fmt(s['first_stage_threshold'], 2)} once the first "
            f"stage is random, or above {_fmt(s['threshold'], 2)} once every stage is random.",
            "",
            "| method | after first stage | after full cascade | flagged |",
            "| --- | --- | --- | --- |",
        ]
        for m, r in s["methods"].items():
            flag = "**insensitive to weights**: " + "; ".join(r["reasons"]) if r["flagged"] else "no"
            lines.append(f"| {m} | {_fmt(r['first'])} | {_fmt(r['final'])} | {flag} |")
        flagged = s["flagged"]
        lines += ["", (f"Flagged: {', '.join(flagged)}." if flagged else "No method was flagged."), "",
                  "![sanity check](sanity.png)", ""]
    else:
        lines += ["Not run (sanity_images = 0).", ""]
    lines += ["## Cost per image", "", "| method | mean seconds | max seconds |", "| --- | --- | --- |"]
    for m, t in report["timing"].items():
        lines.append(f"| {m} | {_fmt(t['mean_seconds'])} | {_fmt(t['max_seconds'])} |")
    lines.append(f"\nMeasured with {report['torch_threads']} torch threads.")
    c = report.get("integrated_gradients_completeness")
    if c:
        lines += ["", "## Integrated Gradients completeness", "",
                  f"Sum of attributions vs output difference F(x) - F(baseline) over {c['n']} images: mean relative "
                  f"error {_fmt(c['mean_relative_error'], 4)}, max {_fmt(c['max_relative_error'], 4)}."]
    lines += ["", "![examples](examples.png)", ""]
    return "\n".join(lines)


def _plots(report: dict[str, Any], items: list[_Item], maps: dict[str, list[np.ndarray]], names: list[str],
           out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    f = report["faithfulness"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for m, r in f["methods"].items():
            ax.plot(r["curves"]["fractions"], r["curves"][kind], label=f"{m} (AUC {r[kind + '_auc']:.3f})")
        rnd = f["random"]
        ax.plot(rnd["curves"]["fractions"], rnd["curves"][kind], "k--", label=f"random (AUC {rnd[kind + '_auc']:.3f})")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.set_ylabel("target probability")
        ax.set_title(kind)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "faithfulness.png", dpi=110)
    plt.close(fig)
    written.append("faithfulness.png")

    s = report.get("sanity")
    if s:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(s["stages"]) + 3), 4.2))
        xs = np.arange(len(s["stages"]))
        for m, r in s["methods"].items():
            pairs = zip(r["spearman"], r["spearman_abs"], strict=True)
            ys = [np.nan if a is None and b is None else max(v for v in (a, b) if v is not None) for a, b in pairs]
            ax.plot(xs, ys, marker="o", label=m + (" (flagged)" if r["flagged"] else ""))
        ax.axhline(s["threshold"], color="grey", ls=":", label="full-cascade threshold")
        ax.plot([0], [s["first_stage_threshold"]], "k_", markersize=18, label="first-stage threshold")
        ax.set_xticks(xs)
        ax.set_xticklabels(s["stages"], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("rank correlation with the trained model's map")
        ax.set_xlabel("randomised down to (cascading)")
        ax.set_ylim(-1.02, 1.02)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "sanity.png", dpi=110)
        plt.close(fig)
        written.append("sanity.png")

    k = min(4, len(items))
    signed = {m: method_spec(m).signed for m in names}
    fig, axes = plt.subplots(k, len(names) + 1, figsize=(2.1 * (len(names) + 1), 2.1 * k), squeeze=False)
    for i in range(k):
        axes[i, 0].imshow(items[i].rgb)
        axes[i, 0].set_title(Path(items[i].name).name[:22], fontsize=7)
        for j, m in enumerate(names):
            axes[i, j + 1].imshow(overlay(items[i].rgb, maps[m][i], alpha=0.5, signed=signed[m]))
            if i == 0:
                axes[i, j + 1].set_title(m, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "examples.png", dpi=100)
    plt.close(fig)
    written.append("examples.png")
    return written


__all__ = ["explain_eval", "render_markdown"]
