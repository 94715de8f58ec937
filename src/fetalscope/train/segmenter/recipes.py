"""Recipes: what each measurement trains on (dataset, split, structures, config) -> a bundle.

``train_measurement("cardiothoracic")`` trains heart + thorax on FOCUS, ``train_measurement("head")``
the head on HC18; both go through the same trainer (:mod:`fetalscope.train.segmenter.trainer`) and write
the same bundle layout, with ``splits.json`` listing the held-out images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fetalscope.biometry.head import hc18_reference_ellipse
from fetalscope.biometry.segbundle import save_seg_bundle
from fetalscope.config import bundled_models_dir, cache_dir, shared_data_relative
from fetalscope.data.segsets import SegSample, assert_groups_disjoint, group_folds, group_split, load_mask_file
from fetalscope.errors import BadInputError, DataError
from fetalscope.models.cards import read_card
from fetalscope.models.segmentation import encoder_spec
from fetalscope.train.segmenter.trainer import SegTrainConfig, prepare_arrays, prepared_cache_file, train_segmenter

SPLITS_FILE = "splits.json"


@dataclass(frozen=True)
class Recipe:
    """A measurement's training set-up."""

    measurement: str
    bundle_name: str
    structures: tuple[str, ...]
    load: Callable[[], list[SegSample]]
    fractions: dict[str, float]
    config: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)


def _load_focus() -> list[SegSample]:
    from fetalscope.data.focus import load_focus

    return load_focus()


HEAD_SHARPNESS_NOTE = (
    '; the outline is fitted only where the probability map is sharp (gradient magnitude >= 0.7'
    " x the outline's median; fuzzy stretches such as skull walls in acoustic shadow are left "
    'to the ellipse): chosen on the early-stopping split (in-sample for these refit weights) as'
    ' the best of the variants in docs/head_postprocessing.md (1.683 -> 1.671 mm), then '
    'validation measured once: HC mean absolute difference 1.806 -> 1.758 mm (< 100 mm 1.68 -> '
    '1.61, 100-200 mm 1.49 -> 1.48, >= 200 mm 3.18 -> 2.99)')


def _load_hc18() -> list[SegSample]:
    from fetalscope.data.hc18 import load_hc18

    return with_hc18_references(load_hc18())


def with_hc18_references(samples: Sequence[SegSample], use_cache: bool = True) -> list[SegSample]:
    """HC18 samples with ``ellipses["head"]`` set to their reference ellipse
    (:func:`fetalscope.biometry.head.hc18_reference_ellipse`, cached on disk)."""
    cache_file = cache_dir() / "biometry" / "hc18_reference_ellipses.json"
    cache: dict[str, dict[str, float]] = {}
    if use_cache and cache_file.is_file():
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    out, changed = [], False
    for s in samples:
        mask_path = s.masks.get("head")
        if mask_path is None:
            raise DataError(f"{s.path}: HC18 sample without a head mask")
        key = f"{mask_path}|{s.meta['hc_mm']}|{s.meta['pixel_size_mm']}"
        if key not in cache:
            e = hc18_reference_ellipse(load_mask_file(mask_path), s.meta["hc_mm"] / s.meta["pixel_size_mm"])
            cache[key] = e.to_dict(ndigits=None)
            changed = True
        out.append(replace(s, ellipses={**s.ellipses, "head": cache[key]}))
    if use_cache and changed:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache), encoding="utf-8")
    return out


def recipe(what: str) -> Recipe:
    from fetalscope.biometry.cardiothoracic import CTR_CARD
    from fetalscope.biometry.head import HADLOCK_CITATION
    from fetalscope.data import focus, hc18

    if what == "cardiothoracic":
        return Recipe(
            measurement="cardiothoracic", bundle_name="focus-ctr", structures=("heart", "thorax"),
            load=_load_focus, fractions={"validation": 0.2, "early_stop": 0.1},
            config={"input_size": (160, 240), "epochs": 40, "patience": 8},
            inference={"flip_tta": True, "ellipse_average": ["plain", "zoom:0.1", "zoom:0.2", "zoom:0.35"],
                       "note": "probabilities averaged over the image and its mirror image (chosen on the "
                       "early-stopping split: circumference CTR MAE 0.0206 without, 0.0179 with); heart and thorax "
                       "ellipses each the mean of four fits: the image and crops around its thorax ellipse with "
                       "10%, 20% and 35% margins (chosen out of fold, docs/ctr_oof.md: thorax IoU 0.914 -> 0.921 "
                       "on 198 images)"},
            card={**CTR_CARD, "data": {"source": "FOCUS four-chamber-view thorax images (247 of 300)",
                                       "licence": focus.LICENCE,
                                       "split": "by duplicate_group (near-identical frames stay together): "
                                                "70% train, 10% early stopping, 20% validation"}},
        )
    if what == "head":
        return Recipe(
            measurement="head", bundle_name="hc18-head", structures=("head",),
            load=_load_hc18, fractions={"validation": 0.15, "early_stop": 0.1},
            config={"input_size": (160, 240), "epochs": 24, "patience": 6},
            inference={"flip_tta": False, "ellipse_average": ["plain", "flip", "zoom:0.15", "zoom:0.35"],
                       "min_outline_sharpness": 0.7,
                       "note": "the head ellipse is the mean of four fits: the image, the image averaged with its "
                       "mirror image, and crops around the head with 15% and 35% margins (the head seen at a "
                       "higher resolution). Chosen on the early-stopping split of revision 2 (HC mean absolute "
                       "difference 1.74 -> 1.72 mm; each view alone 1.74-1.80 mm); flip averaging alone was worse "
                       "on revision 1 (1.83 -> 1.98 mm)" + HEAD_SHARPNESS_NOTE},
            card={
                "description": "Fetal head segmentation (HC18 trans-thalamic plane) for HC, BPD, OFD and GA",
                "data": {"source": "HC18 training set (872 unique images, 706 subjects)", "licence": hc18.LICENCE,
                         "split": "by subject (NNN_HC and NNN_2HC together): 75% train, 10% early stopping, "
                                  "15% validation"},
                "postprocessing": [
                    "sigmoid > 0.5, largest connected component, sub-pixel outline (marching squares), "
                    "outline points on the image frame dropped, least-squares ellipse (OpenCV fitEllipse)",
                    "HC = Ramanujan circumference x pixel size; BPD = 2 x minor, OFD = 2 x major semi-axis "
                    "(outer-to-outer); GA from HC by Hadlock 1984",
                    "training targets: the HC18 reference ellipse (filled mask shrunk by its 1.36 px annotation "
                    "line margin so that its circumference equals the published HC)",
                ],
                "citations": [
                    "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B. Automated measurement of fetal "
                    "head circumference using 2D ultrasound images. PLoS ONE 13(8):e0200412 (2018). CC BY 4.0",
                    HADLOCK_CITATION,
                    "Ramanujan S. Modular equations and approximations to pi. Q J Math 45:350-372 (1914)",
                ],
                "limitations": [
                    "HC18 comes from one centre (Radboud UMC) and two scanners; other machines and screen "
                    "layouts are untested.",
                    "Trained on the trans-thalamic head plane only; any other image still gets an ellipse: "
                    "check the plane first.",
                    "Millimetres need the pixel size (CSV, DICOM PixelSpacing or the user); without it only "
                    "pixels and the drawing are returned.",
                    "Hadlock's formula was derived at 14-42 weeks; outside that range GA is flagged as extrapolated.",
                    "Late-pregnancy heads (HC >= 200 mm) are measured less well where the skull edge lies in "
                    "acoustic shadow; see the by-size table of report.md.",
                    "Errors are mostly image-specific: two differently trained models (160x240 and 256x384 input) "
                    "erred alike on the early-stopping split, and flip, shift or scale averaging did not help "
                    "there. HC18's challenge test set was not available offline; the validation split is the "
                    "only held-out measure (report.md).",
                ],
            },
        )
    raise BadInputError(f"unknown measurement '{what}'; choose 'head' or 'cardiothoracic'")


def write_splits(folder: Path, splits: dict[str, Sequence[SegSample]]) -> None:
    """``splits.json``: per split the images (relative to the shared data folder when inside it)."""
    data = {name: [{"image": shared_data_relative(s.path), "group": s.group} for s in items]
            for name, items in splits.items()}
    (folder / SPLITS_FILE).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def read_split(folder: Path, name: str = "validation") -> list[str]:
    """Image paths (as written by :func:`write_splits`) of split ``name`` of a bundle."""
    data = json.loads((Path(folder) / SPLITS_FILE).read_text(encoding="utf-8"))
    return [row["image"] for row in data.get(name, [])]


def started_from_card(bundle: str | Path) -> dict[str, str]:
    """The model card's ``base_weights`` of a network started from another bundle (``init_from``): that bundle, the
    data it was trained on and its own base weights, with both licences."""
    start = read_card(bundle)  # a user's bundle: a broken or missing card is a MissingWeightsError naming it
    base, data = start.get("base_weights") or {}, start.get("data") or {}
    name = start.get("name") or Path(bundle).name
    return {"name": f"the {name} bundle's first network (trained on images of {data.get('source', 'unstated data')}), "
                    f"itself started from {base.get('name', 'unstated weights')}",
            "source": f"{name} {start.get('version', '')}".strip() + f"; {base.get('source', 'unstated')}",
            "licence": f"training data: {data.get('licence', 'unstated')}; base weights: "
                       f"{base.get('licence', 'unstated')}"}


def train_measurement(what: str, *, out: str | Path | None = None, samples: Sequence[SegSample] | None = None,
                      epochs: int | None = None, max_minutes: float | None = None,
                      input_size: tuple[int, int] | None = None, batch_size: int = 8, threads: int = 2,
                      limit: int | None = None, pretrained: bool = True, seed: int = 0,
                      split_seed: int | None = None, onnx: bool = True,
                      init_from: str | Path | None = None, lr: float | None = None,
                      device: str = "auto", num_workers: int = 0, patience: int | None = None,
                      cache: bool = True, prepare_only: bool = False, refit: bool = False,
                      encoder: str | None = None, boundary_weight: float | None = None,
                      circumference_weight: float | None = None,
                      scale_range: tuple[float, float] | None = None,
                      average_last: int | None = None,
                      pixel_size_weight: float | None = None,
                      cv_fold: tuple[int, int] | None = None,
                      log: Callable[[str], None] = print) -> Path:
    """Train the bundle of measurement ``what`` ("head" | "cardiothoracic") and save it to ``out``
    (default: the bundled model folder). ``init_from`` starts from another bundle's weights (e.g. to
    fine-tune at a larger input size; a bundle of other structures gives all but the output layer:
    :func:`~fetalscope.train.segmenter.trainer.start_from_bundle`). ``device`` is "auto" (CUDA when
    available), "cpu" or "cuda";
    ``cache`` keeps the resized arrays under the cache folder for re-runs; ``prepare_only`` stops after
    writing them (returns that folder), e.g. to carry them to a GPU machine without the images.
    ``refit`` trains on the training and early-stopping splits together for exactly ``epochs`` epochs and
    keeps the last (the usual final fit once a first run has chosen the epoch count); the validation
    split stays held out, and the early-stop Dice in the history is then in-sample.
    ``seed`` seeds the training (initialisation, batches, augmentation) and, unless ``split_seed`` is
    given, the split; ensemble members take different seeds and the same ``split_seed`` so that they
    share one held-out validation split.
    ``encoder`` picks the network's encoder (default the recipe's, EfficientNet-Lite0; see
    :data:`fetalscope.models.segmentation.ENCODERS`).
    ``average_last=k`` (with ``refit`` or ``cv_fold``) keeps the uniform average of the weights and BatchNorm
    statistics at the end of the last ``k`` epochs instead of the last epoch's (stochastic weight averaging).
    ``pixel_size_weight=p`` weighs each training image's loss by (pixel size / mean pixel size) ** p
    (:func:`~fetalscope.train.segmenter.trainer.pixel_size_weights`; the head's images carry their pixel size).
    ``cv_fold=(k, n)`` trains one model of an ``n``-fold cross-validation: the training and early-stopping
    splits together are divided into ``n`` folds of whole groups (:func:`~fetalscope.data.segsets.group_folds`,
    by ``split_seed``); fold ``k`` (0-based) is held out as split ``fold`` and the others are trained on for
    exactly ``epochs`` epochs, keeping the last (nothing is chosen on the held-out fold). The ``fold`` splits of
    the ``n`` models together give an out-of-fold prediction for every non-validation image, on which
    post-processing can be chosen without touching validation (``scripts/tune_head_measure.py --oof``).
    ``samples`` replaces the default dataset (a user's own set,
    e.g. :func:`fetalscope.data.focus.load_mask_folders`). Returns the bundle folder."""
    if refit and epochs is None:
        raise BadInputError("a refit needs the number of epochs (e.g. the best epoch of a first run)")
    if cv_fold is not None:
        k, n = cv_fold
        if refit or epochs is None:
            raise BadInputError("a cross-validation fold needs the number of epochs and no refit (it keeps the "
                                "last epoch and never trains on its held-out fold)")
        if not (n >= 2 and 0 <= k < n):
            raise BadInputError(f"cross-validation fold {k} of {n}: need n >= 2 and 0 <= k < n")
    if average_last is not None and average_last > 1 and not (refit or cv_fold):
        raise BadInputError("--average-last averages the last epochs' weights: use it with --refit or --cv-fold "
                            "(a run that keeps the best early-stop epoch has no fixed last epochs)")
    r = recipe(what)
    data = list(samples) if samples is not None else r.load()
    if limit:
        data = data[:limit]
    split_seed = seed if split_seed is None else split_seed
    splits = group_split(data, r.fractions, seed=split_seed)
    if cv_fold is not None:
        folds = group_folds([*splits["train"], *splits["early_stop"]], cv_fold[1], seed=split_seed)
        splits = {"validation": splits["validation"], "fold": folds[cv_fold[0]],
                  "train": [s for i, f in enumerate(folds) if i != cv_fold[0] for s in f]}
    assert_groups_disjoint(*splits.values())
    log(f"{what}: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} images")
    cfg_kw = dict(r.config)
    if epochs is not None:
        cfg_kw["epochs"] = epochs
    if input_size is not None:
        cfg_kw["input_size"] = tuple(input_size)
    if lr is not None:
        cfg_kw["lr"] = lr
    if patience is not None:
        cfg_kw["patience"] = patience
    if encoder is not None:
        cfg_kw["encoder"] = encoder_spec(encoder).name
    if boundary_weight is not None:
        cfg_kw["boundary_weight"] = float(boundary_weight)
    if circumference_weight is not None:
        cfg_kw["circumference_weight"] = float(circumference_weight)
    if scale_range is not None:
        cfg_kw["scale_range"] = (float(scale_range[0]), float(scale_range[1]))
    if average_last is not None:
        cfg_kw["average_last"] = int(average_last)
    if pixel_size_weight is not None:
        cfg_kw["pixel_size_weight"] = float(pixel_size_weight)
    cfg = SegTrainConfig(structures=r.structures, batch_size=batch_size, threads=threads, max_minutes=max_minutes,
                         pretrained=pretrained, seed=seed, init_from=str(init_from) if init_from else None,
                         device=device, num_workers=num_workers, keep="last" if refit or cv_fold else "best",
                         **cfg_kw)
    cache_folder = cache_dir() / "biometry" / "prepared" if cache or prepare_only else None
    monitor = "fold" if cv_fold is not None else "early_stop"
    if prepare_only:
        for name in ("train", monitor):
            prepare_arrays(splits[name], cfg, cache_folder)
            log(f"{name}: arrays in {prepared_cache_file(splits[name], cfg, cache_folder)}")
        return cache_folder
    fit_on = [*splits["train"], *splits["early_stop"]] if refit else splits["train"]
    result = train_segmenter(fit_on, splits[monitor], cfg, log=log, cache=cache_folder)
    folder = Path(out) if out is not None else bundled_models_dir() / r.bundle_name
    digest = hashlib.sha256("\n".join(sorted(shared_data_relative(s.path) for s in fit_on)).encode()).hexdigest()
    card = dict(r.card)
    card["name"] = r.bundle_name if out is None else folder.name
    card["measurement"] = r.measurement
    card["inference"] = dict(r.inference)
    card["base_weights"] = (started_from_card(init_from) if init_from
                            else encoder_spec(cfg.encoder).card_base_weights() if pretrained
                            else {"name": "none (random initialisation)"})
    card["data"] = {**card.get("data", {}), "image_list_sha256": digest,
                    "split_seed": split_seed,
                    "counts": {k: len(v) for k, v in splits.items()}}
    card["training"] = {
        "device": result.device, "threads": threads, "train_minutes": round(result.train_seconds / 60, 1),
        "prepare_minutes": round(result.prepare_seconds / 60, 1), "epochs_run": len(result.history),
        "best_epoch": result.best_epoch, "best_early_stop_dice": round(result.best_score, 4),
        "averaged_epochs": result.averaged_epochs,
        "stopped_because": result.stopped_because, "config": cfg.to_dict(), "history": result.history,
        "refit": ("trained on the train and early-stop splits together for a fixed number of epochs, keeping "
                  "the last; the early-stop Dice in the history is in-sample") if refit else None,
        "cv_fold": {"fold": cv_fold[0], "folds": cv_fold[1],
                    "note": "one model of a cross-validation over the train and early-stop splits: split `fold` "
                            "is held out, the last epoch is kept, the history's Dice is that of the held-out fold"}
        if cv_fold is not None else None,
        "note": "CPU shared with other jobs; wall-clock times are upper bounds" if result.device == "cpu"
        else None,
    }
    save_seg_bundle(result.model, folder, cfg.preprocess(), card, onnx=False)
    write_splits(folder, splits)
    if onnx:
        try:
            from fetalscope.biometry.segbundle import export_seg_onnx

            export_seg_onnx(result.model, folder / "model.onnx", cfg.preprocess())
        except Exception as exc:  # the PyTorch bundle stays usable without its ONNX twin
            log(f"ONNX export failed ({exc}); the bundle has no model.onnx")
    log(f"saved {folder}")
    return folder
