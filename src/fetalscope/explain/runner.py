"""Decoded images in, explanations out: the model view of a bundle, class targets by name or index,
per-method parameters, and :func:`explain_images`, which prepares images with the model's own
preprocessing (crop, resize, normalise) and explains them in small batches.

Files, overlays and the JSON index are the pipeline's job (:mod:`fetalscope.pipeline.explanation`), so the
CLI, the API and the app draw and name every explanation the same way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig, normalise, prepare_array
from fetalscope.errors import BadInputError
from fetalscope.explain.common import inference_setup, model_device, optimise_for_cpu, predict_probs
from fetalscope.explain.methods import explain_batch, method_spec, parse_methods
from fetalscope.explain.types import Explanation
from fetalscope.imaging import UltrasoundImage


@dataclass
class ModelView:
    """What the explain layer needs from a bundle: the model, its preprocessing and class names."""

    model: nn.Module
    preprocess: PreprocessConfig
    classes: list[str]
    name: str
    temperature: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "input_size": list(self.preprocess.input_size),
                "channels": self.preprocess.channels, "temperature": self.temperature}


def as_model_view(bundle: Any) -> ModelView:
    """Accept a Bundle (``.model``, ``.preprocess``, ``.classes``), a ``(model, preprocess, classes)``
    tuple, or a registry classifier (preprocessing from ``model.spec``)."""
    if isinstance(bundle, ModelView):
        return bundle
    if isinstance(bundle, tuple) and len(bundle) == 3:
        model, preprocess, classes = bundle
    elif isinstance(bundle, nn.Module):
        model, preprocess, classes = bundle, getattr(getattr(bundle, "spec", None), "preprocess", None), None
    elif hasattr(bundle, "model") and hasattr(bundle, "preprocess"):
        model, preprocess, classes = bundle.model, bundle.preprocess, getattr(bundle, "classes", None)
    else:
        raise BadInputError(f"expected a model bundle, a (model, preprocess, classes) tuple or a registry model, "
                            f"got {type(bundle).__name__}")
    if not isinstance(model, nn.Module):
        raise BadInputError(f"the bundle's model is a {type(model).__name__}, not a torch model; explanations need "
                            f"the PyTorch runtime")
    if preprocess is None:
        raise BadInputError(f"no preprocessing known for {type(model).__name__}; pass (model, preprocess, classes)")
    if isinstance(preprocess, dict):
        preprocess = PreprocessConfig.from_dict(preprocess)
    n = getattr(model, "num_classes", None)
    classes = [str(c) for c in classes] if classes else [str(i) for i in range(int(n or 0))]
    card = getattr(bundle, "card", None)
    name = (card.get("name") if isinstance(card, dict) else getattr(card, "name", None)) or \
        getattr(model, "arch_name", None) or type(model).__name__
    temperature = float(getattr(bundle, "temperature", 1.0) or 1.0)
    return ModelView(model, preprocess, classes, str(name), temperature)


def resolve_target(target: int | str | None, classes: Sequence[str]) -> int | None:
    """A class index or class name (case-insensitive) -> index; None stays None (predicted class)."""
    if target is None or isinstance(target, int):
        if isinstance(target, int) and classes and not 0 <= target < len(classes):
            raise BadInputError(f"target class {target} is out of range (valid: 0..{len(classes) - 1}: "
                                f"{', '.join(classes)})")
        return target
    s = str(target).strip()
    if s.lstrip("-").isdigit():
        return resolve_target(int(s), classes)
    lower = {c.lower(): i for i, c in enumerate(classes)}
    if s.lower() in lower:
        return lower[s.lower()]
    close = difflib.get_close_matches(s, list(classes), n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise BadInputError(f"unknown target class '{s}'.{hint} Classes: {', '.join(classes)}")


def split_params(methods: Sequence[str], params: dict[str, Any] | None,
                 method_params: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Per-method parameters: flat ``params`` go to every method that accepts them (an option no
    chosen method accepts is an error), ``method_params`` to the method named."""
    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for key, value in (params or {}).items():
        takers = [m for m in methods if key in method_spec(m).defaults]
        if not takers:
            accepted = sorted({k for m in methods for k in method_spec(m).defaults})
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise BadInputError(f"no chosen method ({', '.join(methods)}) takes parameter '{key}'.{hint} "
                                f"Accepted: {', '.join(accepted) or 'none'}")
        for m in takers:
            out[m][key] = value
    for name, p in (method_params or {}).items():
        canon = method_spec(name).name
        if canon not in out:
            raise BadInputError(f"parameters given for '{name}', which is not among the chosen methods "
                                f"({', '.join(methods)})")
        out[canon].update(p)
    return out


def parse_param_options(items: Sequence[str] | None) -> dict[str, Any]:
    """CLI ``--param KEY=VALUE`` options -> a dict with ints, floats, booleans and ``none`` typed.

    ``["n_steps=64", "baseline=blur", "window=24"]`` -> ``{"n_steps": 64, "baseline": "blur", "window": 24}``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInputError(f"explanation parameter '{item}' must look like KEY=VALUE, e.g. n_steps=64")
        value: Any = raw.strip()
        low = value.lower()
        if low in ("none", "null", ""):
            value = None
        elif low in ("true", "false"):
            value = low == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(value)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out


def parse_method_param_options(items: Sequence[str] | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """CLI ``--param`` options where ``METHOD.KEY=VALUE`` addresses one method: -> (flat parameters for every
    method that takes them, ``{method: {key: value}}``), ready for :func:`split_params` / :func:`explain_paths`.

    ``["n_steps=64", "occlusion.window=24"]`` -> ``({"n_steps": 64}, {"occlusion": {"window": 24}})``.
    """
    flat: dict[str, Any] = {}
    per_method: dict[str, dict[str, Any]] = {}
    for key, value in parse_param_options(items).items():
        method, dot, name = key.rpartition(".")
        if dot:
            per_method.setdefault(method, {})[name] = value
        else:
            flat[key] = value
    return flat, per_method


def file_slug(method: str) -> str:
    """File-name form of a method name (``gradcam++`` -> ``gradcam_pp``)."""
    return re.sub(r"[^a-z0-9_]+", "_", method.lower().replace("++", "_pp")).strip("_")


def prepare(image: UltrasoundImage | np.ndarray, preprocess: PreprocessConfig) -> tuple[np.ndarray, torch.Tensor]:
    """(display RGB at input size, model tensor C x H x W) - the same crop and resize for both."""
    rgb = prepare_array(image, preprocess)
    return rgb, normalise(rgb, preprocess)


@dataclass
class ImageExplanations:
    """The explanations of one image: ``{method: Explanation}`` and the model's calibrated class
    probabilities (the bundle's softmax temperature, as ``predict`` reports them)."""

    explanations: dict[str, Explanation]
    probabilities: np.ndarray


def explain_images(images: Sequence[UltrasoundImage | np.ndarray], bundle: Any,
                   methods: str | Sequence[str] = "gradcam", target: int | str | None = None, *,
                   params: dict[str, Any] | None = None, method_params: dict[str, dict[str, Any]] | None = None,
                   batch_size: int = 8) -> list[ImageExplanations]:
    """Explain decoded images with each method, in batches of ``batch_size``; one
    :class:`ImageExplanations` per image, in order. ``params`` go to every method that takes them,
    ``method_params`` to the method named (see :func:`split_params`)."""
    view = as_model_view(bundle)
    optimise_for_cpu(view.model)
    names = parse_methods(methods)
    per = split_params(names, params, method_params)
    t = resolve_target(target, view.classes)
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1, got {batch_size}")
    out: list[ImageExplanations] = []
    for start in range(0, len(images), batch_size):
        xb = torch.stack([prepare(img, view.preprocess)[1] for img in images[start:start + batch_size]])
        results = {m: explain_batch(view.model, xb, m, t, preprocess=view.preprocess, **per[m]) for m in names}
        probs = _predict(view.model, xb, view.temperature).numpy()
        out += [ImageExplanations({m: results[m][i] for m in names}, probs[i]) for i in range(len(xb))]
    return out


def _predict(model: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Calibrated class probabilities (the bundle's softmax temperature), as ``predict`` reports them."""
    with inference_setup(model):
        return predict_probs(model, x.to(model_device(model)), temperature=temperature).cpu()
