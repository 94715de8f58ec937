"""Segmentation model bundles: the same folder layout as classifier bundles
(:mod:`fetalscope.models.bundle`: ``card.json``, ``model.safetensors``, ``model.onnx``, ``card.md``,
``report.json``), with ``task: "segmentation"``, ``architecture: "ellipse_unet"`` and the structures
as ``classes`` (output channel order). The card also carries the measurement the model serves
(``measurement``: "head" or "cardiothoracic") and its post-processing settings.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file, save_model

from fetalscope.biometry.uncertainty import IntervalRule
from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import MissingWeightsError
from fetalscope.models.bundle import (
    INTENDED_USE_DEFAULT,
    ONNX,
    WEIGHTS,
    BundleRecord,
    load_bundle_weights,
    read_card_file,
    render_card_md,
    require_card_keys,
    resolve_bundle,
    software_versions,
    write_card_files,
)
from fetalscope.models.onnx_graph import store_initializers
from fetalscope.models.segmentation import ARCHITECTURE, SegmentationNet, build_segmentation_model
from fetalscope.models.weight_storage import MAX_GROUP, check_storage, pack_state_dict, unpack_state_dict


@dataclass
class SegBundle(BundleRecord):
    """A loaded segmentation bundle: ``model`` (eval mode), ``card``, ``preprocess``, ``structures``.

    The network is built and its weights read on first use of ``model``: a measurement run by ONNX Runtime (the
    default on CPU) never needs it, and building an ensemble's PyTorch networks took longer than the measurement.
    ``name``, ``onnx_path`` and ``report`` come from :class:`~fetalscope.models.bundle.BundleRecord`."""

    card: dict[str, Any]
    preprocess: PreprocessConfig
    structures: list[str]
    path: Path
    _model: SegmentationNet | None = field(default=None, repr=False)

    @property
    def model(self) -> SegmentationNet:
        if self._model is None:
            model = build_segmentation_model({"architecture": ARCHITECTURE, **self.card["arch_kwargs"]},
                                             pretrained=False)
            load_bundle_weights(model, self.path / WEIGHTS, str(self.card["arch_kwargs"]))
            self._model = model.eval()
        return self._model

    @property
    def temperature(self) -> float:
        """Always 1 (sigmoid outputs are not temperature-scaled); lets runtime predictors take the bundle."""
        return 1.0

    @property
    def measurement(self) -> str:
        return str(self.card.get("measurement", ""))


def build_seg_card(model: SegmentationNet, preprocess: PreprocessConfig, card: dict[str, Any]) -> dict[str, Any]:
    """The card completed with what the model knows (architecture, structures, preprocessing)."""
    import datetime as _dt

    arch = model.arch_config()
    out = dict(card)
    out.setdefault("name", "segmentation")
    out.setdefault("version", "0.1.0")
    out["task"] = "segmentation"
    out["architecture"] = ARCHITECTURE
    out["arch_kwargs"] = {k: v for k, v in arch.items() if k != "architecture"}
    out["classes"] = list(model.structures)
    out["num_classes"] = len(model.structures)
    out.setdefault("classes_not_covered", [])
    out["preprocess"] = preprocess.to_dict()
    out.setdefault("intended_use", INTENDED_USE_DEFAULT)
    out["software"] = {**software_versions(), **card.get("software", {})}
    out.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return json.loads(json.dumps(out, default=str))


# int8 storage quantises only the encoder's stride-16 and stride-32 stages (about 92% of an EfficientNet-Lite0
# U-Net's weights; the pattern matches safetensors keys and ONNX node names alike). The stem, the early stages
# and the decoder place the outline and stay float16: quantised too, they moved the head circumference measured by
# the hc18-head ensemble further from its float16 weights' (docs/int8_storage.md, scripts/storage_fidelity.py).
INT8_LAYERS = r"encoder[./]blocks[./][3-9]"


def save_seg_bundle(model: SegmentationNet, folder: str | Path, preprocess: PreprocessConfig,
                    card: dict[str, Any] | None = None, onnx: bool = False, storage: str = "float32") -> Path:
    """Write ``card.json``, ``model.safetensors``, ``card.md`` (and ``model.onnx`` with ``onnx=True``).

    ``storage`` (:mod:`fetalscope.models.weight_storage`): how both files keep the weights, ``float32``,
    ``float16`` (half the size) or ``int8`` (the weight matrices of the layers matching :data:`INT8_LAYERS` as
    int8 with a scale per group of values, the rest float16: under a third of the size); they are computed in
    float32 after loading. The smaller kinds are for ensembles, whose members would not
    fit the repository's 25 MB per file otherwise. The card records it under ``storage``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_storage(storage)
    extra: dict[str, Any] = {"storage": storage}
    if storage == "int8":
        extra["storage_int8_layers"] = INT8_LAYERS
    full = build_seg_card(model, preprocess, {**{k: v for k, v in (card or {}).items()
                                                 if k != "storage_int8_layers"}, **extra})
    was_training = model.training
    model.eval()
    model = model.to(memory_format=torch.contiguous_format)
    if storage == "float32":
        save_model(model, str(folder / WEIGHTS), metadata={"architecture": ARCHITECTURE}, force_contiguous=True)
    else:
        save_file(pack_state_dict(model.state_dict(), storage, INT8_LAYERS), str(folder / WEIGHTS),
                  metadata={"architecture": ARCHITECTURE, "storage": storage})
    write_card_files(folder, full, render_seg_card_md(full))
    if onnx:
        export_seg_onnx(model, folder / ONNX, preprocess, storage=storage)
    model.train(was_training)
    return folder


def export_seg_onnx(model: SegmentationNet, path: str | Path, preprocess: PreprocessConfig,
                    storage: str = "float32") -> Path:
    """ONNX twin (opset 17, dynamic batch): input ``image`` N x C x H x W (C: the preprocessing's channels),
    output ``logits``.

    ``storage`` ``float16`` or ``int8`` keeps the large weights so (:func:`fetalscope.models.onnx_graph.
    store_initializers`), turned back into float32 by constant nodes that ONNX Runtime folds when the session
    starts, so it computes in float32. For ``int8`` the graph is exported from the network as the safetensors
    file holds it (each weight through int8 and back), so that the export's BatchNorm folding keeps the same
    integers and both files compute the same network."""
    path = Path(path)
    h, w = preprocess.input_size
    model.eval()
    if storage == "int8":
        model = copy.deepcopy(model)
        model.load_state_dict(unpack_state_dict(pack_state_dict(model.state_dict(), storage, INT8_LAYERS)))
    dummy = torch.zeros(1, preprocess.channels, h, w)
    torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    return store_initializers(path, storage, int8_layers=INT8_LAYERS, on_int8_grid=storage == "int8")


def load_seg_bundle(name_or_path: str | Path) -> SegBundle:
    """Load a segmentation bundle by folder or bundled name (``hc18-head``, ``focus-ctr``): its card is checked
    now, its network built on first use of ``model``."""
    path = resolve_bundle(name_or_path)
    card = read_card_file(path)
    if card.get("task") != "segmentation" or card.get("architecture") != ARCHITECTURE:
        raise MissingWeightsError(f"{path}: not a segmentation bundle (task {card.get('task')!r}, "
                                  f"architecture {card.get('architecture')!r})")
    require_card_keys(path, card, ("arch_kwargs", "classes", "preprocess"))
    weights = path / WEIGHTS
    if not weights.is_file():
        raise MissingWeightsError(f"bundle {path} has no {WEIGHTS}; retrain or re-save it")
    return SegBundle(card=card, preprocess=PreprocessConfig.from_dict(card["preprocess"]),
                     structures=list(card["classes"]), path=path)


def render_seg_card_md(card: dict[str, Any]) -> str:
    """The generic Markdown card plus the segmentation specifics (measurement, post-processing,
    training time, normal ranges)."""
    text = render_card_md(card)
    extra = ["## Measurement", ""]
    extra.append(f"- serves: `{card.get('measurement', '?')}`; structures (output channels): "
                 f"{', '.join(card.get('classes', []))}")
    storage = card.get("storage", "float32")
    extra.append(f"- weights stored as {storage}"
                 + (f" in the layers matching `{card['storage_int8_layers']}` (a float16 scale per group of up to "
                    f"{MAX_GROUP} values of an output channel), float16 elsewhere" if storage == "int8"
                    and card.get("storage_int8_layers") else "")
                 + ("; computed in float32" if storage != "float32" else ""))
    for line in card.get("postprocessing", []):
        extra.append(f"- {line}")
    ranges = card.get("normal_ranges") or []
    if ranges:
        extra += ["", "Published normal ranges used for flags:", "",
                  "| ratio | low | high | source |", "| --- | --- | --- | --- |"]
        extra += [f"| {r['ratio']} | {r.get('low', '-')} | {r.get('high', '-')} | {r['source']} |" for r in ranges]
    inference = card.get("inference") or {}
    if inference:
        extra.append(f"- test-time flip averaging: {'on' if inference.get('flip_tta') else 'off'}"
                     + (f" ({inference['note']})" if inference.get("note") else ""))
        if inference.get("ellipse_average"):
            extra.append(f"- ellipse averaged over the views: {', '.join(inference['ellipse_average'])}")
        for key, label in (("hc_interval", "HC"), ("ctr_interval", "circumference CTR")):
            if inference.get(key):
                extra.append(f"- {label} interval: {IntervalRule.from_dict(inference[key]).describe()}")
    speed = card.get("speed") or {}
    if speed:
        onnx = f", ONNX Runtime median {speed['onnx_median_ms']:.0f} ms" if speed.get("onnx_median_ms") else ""
        extra.append(f"- CPU time per image (preprocess + network + fit), {speed.get('threads', '?')} thread(s): "
                     f"PyTorch median {speed.get('median_ms', 0):.0f} ms{onnx}")
    training = card.get("training") or {}
    if training:
        extra += ["", "## Training", ""]
        extra += [f"- {k.replace('_', ' ')}: {v}" for k, v in training.items()
                  if v is not None and not isinstance(v, dict | list)]
    previous = card.get("previous_revision") or {}
    if previous:
        extra += ["", f"## Previous revision ({previous.get('revision', '?')})", ""]
        extra += [f"- {k.replace('_', ' ')}: {v}" for k, v in previous.items()
                  if k != "revision" and not isinstance(v, dict | list)]
        metrics = previous.get("validation_metrics") or {}
        for key, value in metrics.items():
            if isinstance(value, dict) and "value" in value:
                low, high = value.get("ci_low", float("nan")), value.get("ci_high", float("nan"))
                extra.append(f"- validation {key.replace('_', ' ')}: {value['value']:.4g} "
                             f"(95% CI {low:.4g} to {high:.4g})")
    return text.rstrip() + "\n\n" + "\n".join(extra) + "\n"
