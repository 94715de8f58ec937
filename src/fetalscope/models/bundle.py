"""Model bundles: a folder with ``card.json``, ``model.safetensors`` and optionally ``model.onnx``,
``card.md`` (rendered from the card) and ``report.json`` (evaluation).

The card is what consumers read: task, classes (and those not covered), architecture and its
options, preprocessing, softmax temperature, base weights, data and licences, metrics, limitations.
Loading a bundle calls ``create_model(card["architecture"], card["num_classes"], **card["arch_kwargs"])``
and loads the safetensors, so any registered architecture (including SonoNet variants) can be bundled.
Finding bundles and reading cards live in the torch-free :mod:`fetalscope.models.cards` (imported here too).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models.cards import (  # noqa: F401
    CARD,
    available_bundles,
    read_card,
    read_card_file,
    require_card_keys,
    resolve_bundle,
)
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.onnx_graph import write_onnx
from fetalscope.models.registry import create_model
from fetalscope.models.weight_storage import unpack_state_dict

WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"  # optional static int8 twin (fetalscope.models.quantize)
CARD_MD = "card.md"
REPORT = "report.json"

# architecture options that only affect how initial weights are found; never stored in a card
INIT_ONLY_KWARGS = frozenset({"weights_path", "pretrained"})

INTENDED_USE_DEFAULT = (
    "Research and education only. Not a medical device: not for diagnosis, screening or any clinical "
    "decision."
)
IMAGENET_NOTE = (
    "ImageNet-trained weights: the weights' own licence is permissive, but ImageNet's terms restrict the "
    "images to non-commercial research; whether that reaches derived weights is a legal grey area. "
    "Treat this model as research-use only."
)


class BundleFolder:
    """What every loaded bundle shares (classifier :class:`Bundle`, segmentation ``SegBundle``, detector
    ``DetectorBundle``): the parsed ``card`` (``card.json``) and the bundle folder ``path``, and what is
    read from them (``name``, ``report``).

    Not a dataclass itself: subclasses are dataclasses that declare ``card`` and ``path`` among their
    own fields (so their field order stays theirs)."""

    card: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.path.name))

    @property
    def report(self) -> dict[str, Any] | None:
        """The bundle's ``report.json`` (evaluation), or ``None`` when it has none."""
        path = self.path / REPORT
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class BundleRecord(BundleFolder):
    """A bundle the runtime predictors (:mod:`fetalscope.models.runtime`) take: adds the softmax
    ``temperature`` from the card and the optional ``model.onnx`` (:class:`Bundle`, ``SegBundle``)."""

    @property
    def temperature(self) -> float:
        return float(self.card.get("temperature", 1.0) or 1.0)

    @property
    def onnx_path(self) -> Path | None:
        """``model.onnx`` when the bundle has one."""
        return _file_or_none(self.path / ONNX)


@dataclass
class Bundle(BundleRecord):
    """A loaded bundle: ``model`` (eval mode), ``card``, ``preprocess``, ``classes`` and folder ``path``."""

    model: FetalscopeClassifier
    card: dict[str, Any]
    preprocess: PreprocessConfig
    classes: list[str]
    path: Path

    @property
    def int8_onnx_path(self) -> Path | None:
        """``model.int8.onnx`` (the opt-in int8 ONNX Runtime model) when the bundle has one."""
        return _file_or_none(self.path / ONNX_INT8)


def _file_or_none(path: Path) -> Path | None:
    return path if path.is_file() else None




def write_card_files(folder: Path, card: dict[str, Any], card_md: str) -> None:
    """Write ``card`` as ``card.json`` and the rendered ``card_md`` as ``card.md`` into ``folder``."""
    (folder / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / CARD_MD).write_text(card_md, encoding="utf-8")


def stored_as(weights: Path) -> str:
    """The storage kind (:mod:`fetalscope.models.weight_storage`) that the safetensors file ``weights`` records
    in its metadata; ``float32`` when it records none."""
    with safe_open(str(weights), framework="pt") as f:
        return (f.metadata() or {}).get("storage", "float32")


def load_bundle_weights(model: torch.nn.Module, weights: Path, what: str) -> None:
    """Load the safetensors file ``weights`` (any storage kind, computed in float32) into ``model``; a file that
    does not fit (shapes, missing or unexpected keys) raises :class:`MissingWeightsError` saying it does not
    match ``what``."""
    try:
        if stored_as(weights) == "int8":
            state = unpack_state_dict(load_file(str(weights)), str(weights))
            missing, unexpected = model.load_state_dict(state, strict=False)
        else:
            missing, unexpected = load_model(model, str(weights), strict=False)
    except SafetensorError as exc:  # truncated or not a safetensors file
        raise MissingWeightsError(f"{weights} is not a readable safetensors file ({exc}); re-save the bundle") \
            from exc
    except RuntimeError as exc:  # shape mismatches
        raise MissingWeightsError(f"{weights} does not match {what}: {exc}") from exc
    if missing or unexpected:
        raise MissingWeightsError(
            f"{weights} does not match {what}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


def software_versions() -> dict[str, str]:
    """Versions of the packages a bundle depends on (for the card's ``software`` field)."""
    versions = {"python": platform.python_version()}
    for dist in ("fetalscope", "torch", "torchvision", "timm", "onnx", "onnxruntime", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def build_card(model: FetalscopeClassifier, card: dict[str, Any]) -> dict[str, Any]:
    """``card`` completed with what the model knows: architecture, options, classes count, preprocessing,
    base weights, software versions and creation date. Keys given in ``card`` win (except
    ``num_classes``, which must agree with the model)."""
    arch = getattr(model, "arch_name", None) or card.get("architecture") or model.spec.name
    kwargs = dict(getattr(model, "arch_kwargs", None) or card.get("arch_kwargs") or {})
    kwargs = {k: v for k, v in kwargs.items() if k not in INIT_ONLY_KWARGS}
    out = dict(card)
    out.setdefault("name", arch)
    out.setdefault("version", "0.1.0")
    out.setdefault("task", "classification")
    out["architecture"] = card.get("architecture", arch)
    out["arch_kwargs"] = _jsonable(card.get("arch_kwargs", kwargs))
    if int(card.get("num_classes", model.num_classes)) != model.num_classes:
        raise BadInputError(f"card num_classes {card['num_classes']} != model's {model.num_classes}")
    out["num_classes"] = model.num_classes
    classes = list(card.get("classes") or [f"class_{i}" for i in range(model.num_classes)])
    if len(classes) != model.num_classes:
        raise BadInputError(
            f"card lists {len(classes)} classes but the model has {model.num_classes} outputs")
    out["classes"] = classes
    out.setdefault("classes_not_covered", [])
    preprocess = card.get("preprocess")
    if isinstance(preprocess, PreprocessConfig):
        preprocess = preprocess.to_dict()
    out["preprocess"] = preprocess or model.spec.preprocess.to_dict()
    out["temperature"] = float(card.get("temperature", 1.0))
    if getattr(model, "pretrained", True):
        base = {"name": model.spec.base_weights, "source": model.spec.weights_hint, "licence": model.spec.licence}
    else:
        base = {"name": "none (random initialisation)", "source": "n/a", "licence": "n/a"}
    out.setdefault("base_weights", base)
    out.setdefault("intended_use", INTENDED_USE_DEFAULT)
    out["software"] = {**software_versions(), **card.get("software", {})}
    out.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return _jsonable(out)


def save_bundle(model: FetalscopeClassifier, folder: str | Path, card: dict[str, Any] | None = None,
                onnx: bool = False) -> Path:
    """Write ``card.json``, ``model.safetensors`` and ``card.md`` into ``folder`` (created if needed);
    with ``onnx=True`` also ``model.onnx``. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = build_card(model, card or {})
    was_training = model.training
    model.eval()
    save_model(model, str(folder / WEIGHTS), metadata={"architecture": full["architecture"]},
               force_contiguous=True)
    write_card_files(folder, full, render_card_md(full))
    if onnx:
        write_onnx(model, folder / ONNX, input_size=tuple(full["preprocess"]["input_size"]),
                   channels=int(full["preprocess"].get("channels", 3)))
    model.train(was_training)
    return folder








def load_bundle(name_or_path: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle by folder path or bundled name; the model comes back in eval mode on ``device``."""
    path = resolve_bundle(name_or_path)
    card = read_card_file(path)
    require_card_keys(path, card, ("architecture", "classes"))
    weights = path / WEIGHTS
    if not weights.is_file():
        raise MissingWeightsError(f"bundle {path} has no {WEIGHTS}; re-save it with save_bundle()")
    num_classes = int(card.get("num_classes", len(card["classes"])))
    kwargs = {k: v for k, v in (card.get("arch_kwargs") or {}).items() if k not in INIT_ONLY_KWARGS}
    model = create_model(card["architecture"], num_classes, pretrained=False, **kwargs)
    load_bundle_weights(model, weights, f"architecture {card['architecture']} {kwargs}")
    preprocess = PreprocessConfig.from_dict(card.get("preprocess") or model.spec.preprocess.to_dict())
    model.spec = dataclasses.replace(model.spec, preprocess=preprocess)
    model.eval().to(device)
    return Bundle(model=model, card=card, preprocess=preprocess, classes=list(card["classes"]), path=path)


def _fmt_metric(value: Any) -> str:
    if isinstance(value, dict):
        point = value.get("value", value.get("point", value.get("mean")))
        lo, hi = value.get("ci_low", value.get("lo")), value.get("ci_high", value.get("hi"))
        if lo is None and isinstance(value.get("ci"), list | tuple) and len(value["ci"]) == 2:
            lo, hi = value["ci"]
        text = _fmt_number(point) if point is not None else json.dumps(value)
        if lo is not None and hi is not None:
            level = value.get("ci_level", 0.95)
            text += f" ({int(round(float(level) * 100))}% CI {_fmt_number(lo)}-{_fmt_number(hi)})"
        return text
    return _fmt_number(value)


def _fmt_number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _bullets(items: Any) -> list[str]:
    if not items:
        return ["- (none stated)"]
    if isinstance(items, str):
        return [f"- {items}"]
    return [f"- {item}" for item in items]


def render_card_md(card: dict[str, Any]) -> str:
    """A Markdown model card generated from ``card.json`` contents."""
    name = card.get("name", card.get("architecture", "model"))
    lines = [f"# Model card: {name}", ""]
    lines += [f"Version {card.get('version', '?')}; task: {card.get('task', 'classification')}; "
              f"architecture: `{card.get('architecture', '?')}` {json.dumps(card.get('arch_kwargs') or {})}; "
              f"created {card.get('created', '?')}.", ""]

    lines += ["## Intended use", "", str(card.get("intended_use") or INTENDED_USE_DEFAULT)]
    if "not a medical device" not in str(card.get("intended_use", "")).lower():
        lines += ["", "This model is for research and education only. It is **not a medical device** "
                      "and must not be used for diagnosis or clinical decisions."]
    lines.append("")

    lines += ["## Classes", "", "Covered (model output order):"]
    lines += [f"{i}. {c}" for i, c in enumerate(card.get("classes", []))]
    lines += ["", "Not covered (the model has never seen these; it still assigns one of the classes "
                  "above):"]
    lines += _bullets(card.get("classes_not_covered"))
    lines.append("")

    pre = card.get("preprocess") or {}
    if pre:
        lines += ["## Input", "",
                  f"- size (H x W): {' x '.join(str(s) for s in pre.get('input_size', []))}, "
                  f"channels: {pre.get('channels', '?')}",
                  f"- normalisation: {pre.get('normalisation', '?')}, mean {pre.get('mean')}, "
                  f"std {pre.get('std')}, "
                  f"scale {pre.get('scale', 1.0)}, crop to sector: {pre.get('crop_sector', '?')}",
                  f"- softmax temperature: {card.get('temperature', 1.0)}", ""]

    base = card.get("base_weights") or {}
    lines += ["## Base weights", ""]
    if isinstance(base, dict) and base:
        lines += [f"- name: {base.get('name', '?')}", f"- source: {base.get('source', '?')}",
                  f"- licence: {base.get('licence', '?')}"]
        if "imagenet" in json.dumps(base).lower():
            lines += ["", IMAGENET_NOTE]
    else:
        lines += [f"- {base or 'none (random initialisation)'}"]
    lines.append("")

    data = card.get("data") or {}
    lines += ["## Training data", ""]
    if data:
        for key in ("source", "licence", "split", "image_list_sha256"):
            if key in data:
                lines.append(f"- {key.replace('_', ' ')}: {data[key]}")
        counts = data.get("counts")
        if counts:
            lines += ["", "| split / class | images |", "| --- | --- |"]
            lines += _count_rows(counts)
    else:
        lines.append("- (not stated)")
    lines.append("")

    metrics = card.get("metrics") or {}
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt_metric(v)} |" for k, v in _flatten(metrics)]
    else:
        lines.append("- not evaluated yet")
    lines.append("")

    lines += _int8_lines(card.get("int8"))

    lines += ["## Known limitations and failure modes", ""]
    lines += _bullets(card.get("limitations"))
    lines.append("")

    lines += ["## Citations", ""]
    lines += _bullets(card.get("citations"))
    lines.append("")

    software = card.get("software") or {}
    if software:
        lines += ["## Software", "", ", ".join(f"{k} {v}" for k, v in software.items()), ""]
    return "\n".join(lines)


def _flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested metric dicts to ``(dotted name, value)``; a dict with a point value counts as a leaf."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"value", "point", "mean"} & set(value)):
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows


def _count_rows(counts: Any, prefix: str = "") -> list[str]:
    if isinstance(counts, dict):
        rows: list[str] = []
        for key, value in counts.items():
            rows += _count_rows(value, f"{prefix}{key} / " if isinstance(value, dict) else f"{prefix}{key}")
        return rows
    return [f"| {prefix} | {counts} |"]


def _int8_lines(int8: Any) -> list[str]:
    """The card.md section for the optional int8 ONNX model (empty when the card has none)."""
    if not isinstance(int8, dict):
        return []

    def num(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["## Int8 ONNX Runtime model (opt-in)", "",
             f"`{int8.get('file', ONNX_INT8)}` ({_fmt_number(int8.get('size_bytes', '?'))} bytes): static int8 "
             "quantisation of `model.onnx`, used only with runtime `onnx-int8`. `model.onnx` (fp32) stays the "
             "parity path (ONNX Runtime vs PyTorch within 1e-4).", ""]
    cal = int8.get("calibration") or {}
    if cal:
        lines.append(f"- calibration: {cal.get('n_images', '?')} images "
                     f"({', '.join(f'{k}: {v}' for k, v in (cal.get('per_source') or {}).items())}); "
                     f"{cal.get('drawn_from', '')}")
    fid = int8.get("fidelity_test_split") or {}
    if fid:
        lines.append(f"- against fp32 on {fid.get('n_images', '?')} held-out images: top-1 agreement "
                     f"{num(fid.get('top1_agreement'))}, max |dp| {num(fid.get('max_abs_prob_diff'))}, "
                     f"mean |dp| {num(fid.get('mean_abs_prob_diff'))}")
        if "accuracy_fp32" in fid:
            lines.append(f"- accuracy on those images: fp32 {num(fid['accuracy_fp32'])}, int8 "
                         f"{num(fid.get('accuracy_int8'))}")
    lat = int8.get("latency") or {}
    if lat.get("speedup_batch1_p50_vs_eager"):
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in lat["speedup_batch1_p50_vs_eager"].items())
        lines.append(f"- batch-1 p50 speed-up over PyTorch eager ({lat.get('threads', '?')} thread(s), "
                     f"shared machine): {ratios}")
    return lines + [""]
