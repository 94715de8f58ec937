"""How a plane model holds up on other sources and under perturbations, beside a baseline model.

:func:`robustness_report` runs two :class:`Contender` models (the shipped bundle and a baseline, by default
the plain SonoNet-16 label mapping on the whole image resized, :func:`plain_sononet_baseline`) over labelled
images (:class:`RobustItem`) and returns one record:

- ``per_source``: accuracy of each model on every image, all together and per source;
- ``per_perturbation``: accuracy on a fixed, seeded subsample stratified by source (:func:`stratified_subsample`),
  clean and under each perturbation of :mod:`fetalscope.imaging.perturb` at each strength. Each image of
  each row is perturbed once, with a generator seeded by (seed, perturbation, strength, image), and both
  models see the same perturbed pixels (the perturbation acts on the full image, before each model's own
  preprocessing, as a scanner or a video pipeline would).

Each row has both accuracies with group-bootstrap 95 % intervals (:mod:`fetalscope.evaluate.bootstrap`,
resampling whole patients / groups), the paired difference shipped - baseline with its interval (the same
resamples for both models) and ``at_or_above``: the shipped accuracy is at least the baseline's.
:mod:`fetalscope.evaluate.robustness_report` writes it as Markdown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.evaluate.bootstrap import CONFIDENCE, N_BOOT, bootstrap_ci
from fetalscope.imaging import load_image
from fetalscope.imaging.perturb import PERTURBATIONS, REPORT_STRENGTHS, get_perturbation, video_codec
from fetalscope.models.runtime import Predictor

DEFAULT_LIMIT = 120
BATCH = 16


@dataclass(frozen=True)
class RobustItem:
    """One labelled image: file, true plane (a class name), source set and resampling group (patient)."""

    path: Path
    label: str
    source: str
    group: str


@dataclass
class Contender:
    """A model in the comparison: its predictor, its own preprocessing and class names."""

    name: str
    described: str
    predictor: Predictor
    preprocess: PreprocessConfig
    classes: list[str]

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """The predicted class name of each ``H x W x 3`` uint8 image (batched)."""
        with _one_torch_thread():
            batch = torch.stack([to_tensor(im, self.preprocess) for im in images])
        logits = self.predictor.predict_logits(batch)
        return [self.classes[int(i)] for i in np.argmax(logits, axis=1)]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "described": self.described, "runtime": self.predictor.name,
                "crop_sector": self.preprocess.crop_sector, "input_size": list(self.preprocess.input_size)}


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Preprocessing is many small tensor operations: on a busy 2-core machine one torch thread made it 10x
    faster than two (0.03 s against 0.37 s per image); the model itself keeps its threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", str(name)).split()).casefold()


def bundle_contender(bundle: str | Path, runtime: str = "auto") -> Contender:
    """The bundle ``bundle`` (bundled name or folder) as it ships: its preprocessing, its runtime."""
    from fetalscope.models.bundle import load_bundle
    from fetalscope.models.runtime import make_predictor

    loaded = load_bundle(bundle)
    predictor = make_predictor(loaded, runtime)  # type: ignore[arg-type]
    return Contender(loaded.name, f"bundle {loaded.name} ({loaded.card.get('architecture')}, "
                     f"crop_sector={loaded.preprocess.crop_sector}, runtime {predictor.name})",
                     predictor, loaded.preprocess, list(loaded.classes))


def _fast_predictor(model: torch.nn.Module, runtime: str) -> Predictor:
    """ONNX Runtime on a temporary export of ``model`` (about 3x faster on CPU), or PyTorch eager."""
    from fetalscope.models.onnx_export import export_onnx
    from fetalscope.models.runtime import OnnxPredictor, TorchPredictor

    if runtime == "torch":
        return TorchPredictor(model)
    with tempfile.TemporaryDirectory() as tmp:
        return OnnxPredictor(export_onnx(model, Path(tmp) / "baseline.onnx"))  # ORT reads it at once


def plain_sononet_baseline(runtime: str = "onnx", weights: str | Path | None = None) -> Contender:
    """The issue's baseline: SonoNet-16 as published with its 14 outputs mapped onto the planes (no
    temperature, no fine-tuning) on the whole image resized to 224 x 288 (no sector crop).

    Weights: ``SonoNet16.npz`` (``weights`` or the shared folder); without it, the bundled ``sononet-planes-v1``
    when its card says it was not trained (its weights are then SonoNet's own) with its temperature reset.
    """
    from fetalscope.models import create_model
    from fetalscope.models.bundle import load_bundle
    from fetalscope.models.sononet import PLANES_COVERED, SONONET_PREPROCESS

    preprocess = SONONET_PREPROCESS.replace(crop_sector=False)
    try:
        model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True, weights_path=weights)
        source = "SonoNet16.npz"
    except MissingWeightsError as exc:
        bundle = load_bundle("sononet-planes-v1")
        untrained = str((bundle.card.get("data") or {}).get("source", "")).startswith("No training")
        if bundle.card.get("architecture") != "sononet16_planes" or not untrained:
            raise MissingWeightsError(f"the plain SonoNet-16 baseline needs SonoNet16.npz: {exc}") from exc
        model = bundle.model
        model.head.mapping.reset()
        source = "the bundled sononet-planes-v1 weights (SonoNet-16 as published), temperature reset to 1"
    model.eval()
    model.spec = dataclasses.replace(model.spec, preprocess=preprocess)
    predictor = _fast_predictor(model, runtime)
    return Contender("plain SonoNet-16", f"SonoNet-16 14->plane mapping, whole image resized to 224x288, "
                     f"T = 1, weights from {source}, runtime {predictor.name}", predictor, preprocess,
                     list(PLANES_COVERED))


def stratified_subsample(items: Sequence[RobustItem], limit: int, seed: int = 0) -> list[RobustItem]:
    """At most ``limit`` items, shared out evenly over the sources (a source with fewer gives its rest to
    the others), each source's share drawn at random with ``seed``; in a fixed order."""
    if limit < 1:
        raise BadInputError(f"limit must be >= 1, got {limit}")
    by_source: dict[str, list[RobustItem]] = defaultdict(list)
    for item in items:
        by_source[item.source].append(item)
    quota = dict.fromkeys(by_source, 0)
    left = min(limit, len(items))
    while left:
        open_sources = [s for s in sorted(by_source) if quota[s] < len(by_source[s])]
        for s in open_sources[:left]:
            quota[s] += 1
        left -= min(left, len(open_sources))
    rng = np.random.default_rng(seed)
    picked: list[RobustItem] = []
    for s in sorted(by_source):
        pool = sorted(by_source[s], key=lambda it: str(it.path))
        picked += [pool[int(i)] for i in sorted(rng.choice(len(pool), size=quota[s], replace=False))]
    return picked


def _ci(values: np.ndarray, groups: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    out = bootstrap_ci(lambda a, _b: float(np.mean(a)), values, values, groups=list(groups), n_boot=n_boot,
                       seed=seed)
    return {"estimate": out["estimate"], "lower": out["lower"], "upper": out["upper"],
            "too_few_groups": out["too_few_units"]}


def score_row(shipped_correct: Sequence[bool], baseline_correct: Sequence[bool] | None, groups: Sequence[str],
              *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Accuracies with group-bootstrap intervals, the paired difference and the at-or-above flag."""
    a = np.asarray(shipped_correct, dtype=float)
    if a.size == 0:
        raise BadInputError("a robustness row needs at least one image")
    row: dict[str, Any] = {"n": int(a.size), "n_groups": len(set(groups)), "shipped": _ci(a, groups, n_boot, seed),
                           "baseline": None, "difference": None, "at_or_above": None}
    row["shipped"]["correct"] = int(a.sum())
    if baseline_correct is not None:
        b = np.asarray(baseline_correct, dtype=float)
        if b.shape != a.shape:
            raise BadInputError(f"{b.size} baseline results for {a.size} images")
        row["baseline"] = _ci(b, groups, n_boot, seed)
        row["baseline"]["correct"] = int(b.sum())
        row["difference"] = _ci(a - b, groups, n_boot, seed)
        row["at_or_above"] = bool(a.sum() >= b.sum())
    return row


ProgressHook = Callable[[int, int], None]


def _predict_all(contenders: Sequence[Contender], images: Sequence[np.ndarray]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in contenders]
    for start in range(0, len(images), BATCH):
        chunk = images[start:start + BATCH]
        for k, contender in enumerate(contenders):
            out[k] += contender.predict(chunk)
    return out


def _correct(predicted: Sequence[str], items: Sequence[RobustItem]) -> list[bool]:
    return [_norm(p) == _norm(it.label) for p, it in zip(predicted, items, strict=True)]


def _rows_for(items: Sequence[RobustItem], predicted: list[list[str]], has_baseline: bool, key: Callable,
              n_boot: int, seed: int) -> list[dict[str, Any]]:
    shipped = _correct(predicted[0], items)
    baseline = _correct(predicted[1], items) if has_baseline else None
    chosen: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        chosen[key(item)].append(i)
    rows = []
    for name, idx in chosen.items():
        rows.append({"row": name, **score_row([shipped[i] for i in idx],
                                              None if baseline is None else [baseline[i] for i in idx],
                                              [items[i].group for i in idx], n_boot=n_boot, seed=seed)})
    return rows


def _check_items(items: Sequence[RobustItem]) -> None:
    if not items:
        raise BadInputError("no labelled images to evaluate; check the data folder")
    missing = [it.path for it in items if not Path(it.path).is_file()]
    if missing:
        raise BadInputError(f"{len(missing)} image files are missing, e.g. {missing[0]}")


def robustness_report(items: Sequence[RobustItem], shipped: Contender, baseline: Contender | None, *,
                      perturbations: Sequence[str] | None = None,
                      strengths: Sequence[float] = REPORT_STRENGTHS, limit: int = DEFAULT_LIMIT, seed: int = 0,
                      n_boot: int = N_BOOT, data_described: str = "", on_progress: ProgressHook | None = None,
                      ) -> dict[str, Any]:
    """The robustness record (see the module docstring) of ``shipped`` beside ``baseline`` on ``items``."""
    _check_items(items)
    names = list(PERTURBATIONS) if perturbations is None else list(perturbations)
    for name in names:
        get_perturbation(name)
    for s in strengths:
        if not 0 < float(s) <= 1:
            raise BadInputError(f"report strengths must lie in (0, 1], got {s!r}")
    sub = stratified_subsample(items, limit, seed)
    contenders = [shipped] + ([baseline] if baseline is not None else [])
    total = len(items) + len(sub) * (1 + len(names) * len(strengths))
    done = 0
    started = time.perf_counter()

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, total)

    # every test image, clean: accuracy overall and per source (loaded in chunks to bound memory)
    clean_all: list[list[str]] = [[] for _ in contenders]
    for start in range(0, len(items), BATCH * 4):
        chunk = items[start:start + BATCH * 4]
        preds = _predict_all(contenders, [load_image(it.path).pixels for it in chunk])
        for k in range(len(contenders)):
            clean_all[k] += preds[k]
        tick(len(chunk))
    has_b = baseline is not None
    per_source = _rows_for(items, clean_all, has_b, lambda it: "all sources", n_boot, seed)
    per_source += sorted(_rows_for(items, clean_all, has_b, lambda it: it.source, n_boot, seed),
                         key=lambda r: r["row"])
    for row in per_source:
        row["kind"] = "source"

    # the subsample, clean and under each perturbation x strength
    pixels = [load_image(it.path).pixels for it in sub]
    rows = _rows_for(sub, _predict_all(contenders, pixels), has_b, lambda it: "none", n_boot, seed)
    rows[0].update(kind="clean", perturbation="none", strength=0.0, setting="clean subsample")
    tick(len(sub))
    index = {name: i for i, name in enumerate(PERTURBATIONS)}
    for name in names:
        perturbation = get_perturbation(name)
        for s_index, strength in enumerate(strengths):
            changed = [perturbation(px, float(strength), np.random.default_rng([seed, index[name], s_index, i]))
                       for i, px in enumerate(pixels)]
            (row,) = _rows_for(sub, _predict_all(contenders, changed), has_b, lambda it: "x", n_boot, seed)
            row.update(row=f"{name}@{float(strength):.2f}", kind="perturbation", perturbation=name,
                       strength=float(strength), setting=perturbation.describe(float(strength)))
            rows.append(row)
            tick(len(sub))

    every = per_source + rows
    compared = [r for r in every if r["at_or_above"] is not None]
    return {
        "title": f"Robustness of {shipped.name}" + (f" beside {baseline.name}" if baseline else ""),
        "shipped": shipped.to_dict(),
        "baseline": None if baseline is None else baseline.to_dict(),
        "data": {
            "described": data_described, "n_images": len(items), "n_groups": len({it.group for it in items}),
            "sources": {s: sum(it.source == s for it in items) for s in sorted({it.source for it in items})},
            "labels": {c: sum(it.label == c for it in items) for c in sorted({it.label for it in items})},
            "subsample": {"n": len(sub), "limit": limit, "seed": seed, "how": "shared out evenly over sources, "
                          "drawn at random within each source",
                          "sources": {s: sum(it.source == s for it in sub) for s in sorted({it.source for it in sub})}},
        },
        "settings": {"seed": seed, "n_boot": n_boot, "confidence": CONFIDENCE, "strengths": [float(s) for s in
                                                                                            strengths],
                     "bootstrap_unit": "groups (patients / subjects / duplicate groups)",
                     "video_codec": video_codec() if "video_codec" in names else None},
        "perturbations": {name: {str(round(float(s), 2)): get_perturbation(name).describe(float(s))
                                 for s in strengths} for name in names},
        "per_source": per_source,
        "per_perturbation": rows,
        "summary": {
            "rows_compared": len(compared),
            "rows_at_or_above": sum(r["at_or_above"] for r in compared),
            "rows_below": [r["row"] for r in compared if not r["at_or_above"]],
            "target": "the shipped model at or above the baseline on every row",
            "target_met": bool(compared) and all(r["at_or_above"] for r in compared),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
