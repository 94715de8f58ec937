"""Ensembles of segmentation bundles: members trained alike (same recipe and split, different seeds)
become one bundle whose network averages their probabilities
(:class:`~fetalscope.models.segmentation.EllipseUNetEnsemble`).

``build_ensemble([dir_seed0, dir_seed1, dir_seed2], out)`` checks that the members can be averaged
honestly (same structures, preprocessing, measurement, training images and held-out ``splits.json``,
no seed twice), then writes the ensemble bundle with its card (weights stored as float16 by default, so that
four EfficientNet-Lite0 members fit one file under 25 MB, or ``storage="int8"`` for about seven; computed in
float32 either way, :mod:`fetalscope.models.weight_storage`): the first member's card, the
members' training records and what the first member's post-processing was chosen on. An ensemble bundle
given as a member contributes its members, so an ensemble grows by one seed with
``build_ensemble([ensemble, dir_seed3], out)``, and an ensemble alone is re-stored with
``build_ensemble([ensemble], out, storage="int8")``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fetalscope.biometry.segbundle import SegBundle, load_seg_bundle, save_seg_bundle
from fetalscope.errors import BadInputError
from fetalscope.models.bundle import ONNX, WEIGHTS
from fetalscope.models.segmentation import EllipseUNet, EllipseUNetEnsemble
from fetalscope.train.segmenter.recipes import SPLITS_FILE, recipe
from fetalscope.train.segmenter.trainer import DEFAULT_SCALE_RANGE, SegTrainConfig

# card fields written by the evaluation (they describe one member, not the ensemble)
_EVALUATION_FIELDS = ("metrics", "speed", "created", "software", "storage")


def recipe_flags(config: dict[str, Any], measurement: str) -> str:
    """The ``train_biometry.py train`` flags that give a member's training ``config`` where it differs from the
    measurement's recipe (encoder, input size, loss terms, augmentation zoom, weight averaging, pixel-size
    weighting, start bundle), each with a leading space; "" for the recipe as it is."""
    base = recipe("head" if measurement == "head" else "cardiothoracic").config
    flags = []
    if config.get("encoder") not in (None, SegTrainConfig.encoder):
        flags.append(f"--encoder {config['encoder']}")
    if config.get("input_size") and tuple(config["input_size"]) != tuple(base["input_size"]):
        flags.append("--input-size {} {}".format(*config["input_size"]))
    for key in ("boundary_weight", "circumference_weight", "pixel_size_weight"):
        if config.get(key):
            flags.append(f"--{key.replace('_', '-')} {config[key]:g}")
    if config.get("scale_range") and tuple(config["scale_range"]) != DEFAULT_SCALE_RANGE:
        flags.append("--scale-range {:g} {:g}".format(*config["scale_range"]))
    if (config.get("average_last") or 0) > 1:
        flags.append(f"--average-last {config['average_last']}")
    if config.get("init_from"):
        flags.append(f"--init-from {config['init_from']}")
    return "".join(f" {f}" for f in flags)


def _check_compatible(bundles: Sequence[SegBundle]) -> None:
    first = bundles[0]
    for other in bundles[1:]:
        for what, a, b in (
            ("structures", first.structures, other.structures),
            ("preprocessing", first.preprocess.to_dict(), other.preprocess.to_dict()),
            ("measurement", first.measurement, other.measurement),
            ("training images", first.card.get("data", {}).get("image_list_sha256"),
             other.card.get("data", {}).get("image_list_sha256")),
        ):
            if a != b:
                raise BadInputError(f"{other.path} cannot join an ensemble with {first.path}: its {what} differ "
                                    f"({b!r} vs {a!r})")
        splits_a, splits_b = first.path / SPLITS_FILE, other.path / SPLITS_FILE
        if not splits_a.is_file() or not splits_b.is_file():
            raise BadInputError(f"ensemble members need their {SPLITS_FILE} (missing in {first.path} or {other.path})")
        if json.loads(splits_a.read_text()) != json.loads(splits_b.read_text()):
            raise BadInputError(f"{other.path} was trained on another split than {first.path} (its {SPLITS_FILE} "
                                "differs); train members with the same --split-seed")


def _member_record(bundle: SegBundle) -> dict[str, Any]:
    training = bundle.card.get("training") or {}
    config = training.get("config") or {}
    return {"bundle": bundle.path.name, "seed": config.get("seed"), "epochs_run": training.get("epochs_run"),
            "best_epoch": training.get("best_epoch"), "train_minutes": training.get("train_minutes"),
            "refit": bool(training.get("refit"))}


def _networks_and_records(bundle: SegBundle) -> list[tuple[EllipseUNet, dict[str, Any]]]:
    """The single networks of ``bundle`` with their training records: itself, or an ensemble's members."""
    if isinstance(bundle.model, EllipseUNet):
        return [(bundle.model, _member_record(bundle))]
    records = (bundle.card.get("training") or {}).get("members") or []
    members = list(bundle.model.members)
    if len(records) != len(members):
        raise BadInputError(f"{bundle.path} is an ensemble of {len(members)} networks but its card records "
                            f"{len(records)} members; give the member bundles instead")
    return [(m, dict(r)) for m, r in zip(members, records, strict=True)]  # type: ignore[misc]


def build_ensemble(members: Sequence[str | Path], out: str | Path, *, name: str | None = None,
                   storage: str = "float16", log: Callable[[str], None] = print) -> Path:
    """Write the ensemble of the bundles ``members`` to ``out`` (with ``model.onnx`` and ``splits.json``), its
    weights stored as ``storage`` (``float16`` or ``int8``; :mod:`fetalscope.models.weight_storage`)."""
    if not members:
        raise BadInputError("an ensemble needs member bundles, got none")
    if storage not in ("float16", "int8"):
        raise BadInputError(f"an ensemble's weights are stored as float16 or int8, not {storage!r}")
    bundles = [load_seg_bundle(m) for m in members]
    _check_compatible(bundles)
    out = Path(out)
    if any(out.resolve() == b.path.resolve() for b in bundles):
        raise BadInputError(f"{out} is one of the members; write the ensemble to another folder")
    pairs = [pair for b in bundles for pair in _networks_and_records(b)]
    if len(pairs) < 2:
        raise BadInputError(f"an ensemble needs at least two networks, got {len(pairs)} (from {len(bundles)} "
                            "bundle(s))")
    seeds = [r["seed"] for _, r in pairs]
    twice = sorted({str(s) for s in seeds if s is not None and seeds.count(s) > 1})
    if twice:
        raise BadInputError(f"seed {', '.join(twice)} appears twice among the members; an ensemble averages "
                            "networks trained with different seeds")
    model = EllipseUNetEnsemble([net for net, _ in pairs])
    first = bundles[0]
    card = {k: v for k, v in first.card.items() if k not in _EVALUATION_FIELDS}
    card["name"] = name or out.name
    records = [r for _, r in pairs]
    first_training = first.card.get("training") or {}
    config = first_training.get("config") or {}
    card["training"] = {
        "ensemble": (f"mean probability of {len(records)} members trained alike on the same images and split, "
                     f"seeds {', '.join(str(r['seed']) for r in records)}"),
        "device": first_training.get("device"), "threads": first_training.get("threads"),
        "train_minutes": round(sum(float(r["train_minutes"] or 0) for r in records), 1),
        "members": records, "config": first_training.get("config"), "refit": first_training.get("refit"),
        "how_to_rebuild": ("train each member with `scripts/train_biometry.py train "
                           f"{'head' if first.measurement == 'head' else 'cardiothoracic'} --seed S --split-seed "
                           f"{first.card.get('data', {}).get('split_seed', 0)} --out DIR"
                           + (f" --refit --epochs {records[0]['epochs_run']}" if first_training.get("refit")
                              else "")
                           + recipe_flags(config, first.measurement)
                           + "`, then `scripts/train_biometry.py ensemble DIR DIR ... --out BUNDLE"
                           + (f" --storage {storage}`" if storage != "float16" else "`")),
    }
    if first.card.get("metrics"):
        card["revision"] = int(first.card.get("revision") or 1) + 1
        card["previous_revision"] = {
            "revision": int(first.card.get("revision") or 1),
            "how_it_differed": (f"one network: the ensemble's first member (seed {records[0]['seed']})"
                                if isinstance(first.model, EllipseUNet) else
                                f"the mean of {len(first.model.members)} members, the first "
                                f"{len(first.model.members)} of this ensemble")
                               + (f"; weights stored as {first.card['storage']}"
                                  if first.card.get("storage", storage) != storage else ""),
            "validation_metrics": first.card["metrics"],
            "why_replaced": f"the mean of {len(records)} members trained alike; the same validation split scores both",
        }
    log(f"ensemble of {len(records)} networks from {', '.join(str(b.path) for b in bundles)}")
    save_seg_bundle(model, out, first.preprocess, card, onnx=True, storage=storage)
    shutil.copyfile(first.path / SPLITS_FILE, out / SPLITS_FILE)
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in (out / WEIGHTS, out / ONNX))
    log(f"saved {out} ({len(records)} networks stored as {storage}: {sizes})")
    return out
