"""One interface for every attribution method: ``explain(model, x, method, target=None, **params)``.

Methods are chosen by name from a registry (:func:`list_methods`); each entry declares its
parameters and their defaults, so a typo in a method or parameter name is a clear
:class:`~fetalscope.errors.BadInputError` with suggestions, not a silent default.

| name | backend | map |
| --- | --- | --- |
| ``gradcam`` / ``gradcam++`` | pytorch-grad-cam weights on the model's ``spec.gradcam_layer`` | [0, 1] |
| ``guided_backprop`` | :mod:`fetalscope.explain.guided` (every rectifying activation) | >= 0 |
| ``guided_gradcam`` | guided backprop x Grad-CAM (Selvaraju et al. 2017) | >= 0 |
| ``saliency`` | plain input gradient (Simonyan et al. 2014), the unguided reference | >= 0 |
| ``integrated_gradients`` (``ig``) | Captum ``IntegratedGradients`` + completeness check | signed |
| ``occlusion`` | Captum ``Occlusion`` | signed |
| ``lime`` | Captum ``Lime`` on SLIC superpixels of the smoothed image | signed |

``precision`` (Integrated Gradients, occlusion, LIME): ``fp32``, ``bf16`` (bfloat16 autocast) or
``auto`` (bf16 on CPUs with native bfloat16, else fp32). Occlusion and LIME default to ``auto``:
they only compare model outputs, and bf16 runs them about 2.4x faster (SonoNet-16: class
probabilities within 0.002 of float32). Integrated Gradients defaults to ``fp32`` because its
completeness check is its proof of correctness; bf16 is 2.4x faster there too, with completeness
errors of 0.7 % (SonoNet-16, real image) to 5 % (a tiny test CNN).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError
from fetalscope.explain import guided
from fetalscope.explain.common import (
    as_batch,
    inference_setup,
    make_baseline,
    model_device,
    normalise_targets,
    num_classes_of,
    reduce_channels,
    resolve_layer,
    resolve_precision,
    resolve_targets,
    to_maps,
)
from fetalscope.explain.types import Explanation


@dataclass
class _Result:
    maps: np.ndarray  # N x H x W
    targets: torch.Tensor
    probabilities: torch.Tensor | None
    extras: list[dict[str, Any]]
    params: dict[str, Any]  # resolved parameters (e.g. the layer actually used)


MethodFn = Callable[[nn.Module, torch.Tensor, torch.Tensor | None, PreprocessConfig | None, dict[str, Any]],
                    _Result]


@dataclass(frozen=True)
class MethodSpec:
    """A registered attribution method: canonical ``name``, its ``defaults`` (every accepted
    parameter), whether its map is ``signed``, and whether several images share one call."""

    name: str
    fn: MethodFn
    defaults: dict[str, Any]
    signed: bool
    description: str
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _softmax_of(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1).gather(1, targets.view(-1, 1)).squeeze(1).cpu()


# ------------------------------------------------------------------------------------- methods

def _gradcam_variant(variant: str) -> MethodFn:
    def run(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None, _pp: PreprocessConfig | None,
            p: dict[str, Any]) -> _Result:
        name, layer = resolve_layer(model, p["layer"], x)
        from fetalscope.explain import cam as cam_mod  # pytorch-grad-cam (and torchvision) on first use

        maps, targets, logits, facts = cam_mod.cam_maps(variant, model, layer, x, targets)
        extras = [{"layer": name, "feature_map": facts["feature_map"], "empty": e} for e in facts["empty"]]
        return _Result(maps, targets, _softmax_of(logits, targets), extras, {**p, "layer": name})

    return run


def _guided_backprop(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
                     _pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    grads, targets, logits, log = guided.guided_gradients(model, x, targets)
    extras = [{"guided_activations": log.count}] * x.shape[0]
    return _Result(to_maps(reduce_channels(grads, p["reduce"])), targets, _softmax_of(logits, targets), extras, p)


def _saliency(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
              _pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    grads, targets, logits = guided.plain_gradients(model, x, targets)
    probs = _softmax_of(logits, targets)
    return _Result(to_maps(reduce_channels(grads, p["reduce"])), targets, probs, [{}] * x.shape[0], p)


def _guided_gradcam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
                    _pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    name, layer = resolve_layer(model, p["layer"], x)
    from fetalscope.explain import cam as cam_mod  # pytorch-grad-cam (and torchvision) on first use

    cams, targets, logits, facts = cam_mod.cam_maps("gradcam", model, layer, x, targets)
    grads, _, _, log = guided.guided_gradients(model, x, targets)
    maps = to_maps(reduce_channels(grads * torch.from_numpy(cams).to(grads).unsqueeze(1), p["reduce"]))
    extras = [{"layer": name, "guided_activations": log.count, "feature_map": facts["feature_map"]}
              for _ in range(x.shape[0])]
    return _Result(maps, targets, _softmax_of(logits, targets), extras, {**p, "layer": name})


def _integrated_gradients(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
                          pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    from fetalscope.explain import gradients  # Captum on first use

    if int(p["n_steps"]) < 1:
        raise BadInputError(f"integrated gradients needs n_steps >= 1, got {p['n_steps']}")
    if p["ig_method"] not in gradients.IG_METHODS:
        raise BadInputError(f"unknown ig_method '{p['ig_method']}'; choose one of {', '.join(gradients.IG_METHODS)}")
    targets, probs = resolve_targets(model, x, targets)
    base = make_baseline(x, p["baseline"], pp, p["blur_sigma"])
    precision = resolve_precision(p["precision"], x.device)
    attr, checks = gradients.integrated_gradients(
        model, x, base, targets, n_steps=int(p["n_steps"]), internal_batch_size=int(p["internal_batch_size"]),
        ig_method=p["ig_method"], output=p["output"], precision=precision)
    extras = [{"completeness": c} for c in checks]
    return _Result(to_maps(reduce_channels(attr, p["reduce"])), targets, probs, extras, {**p, "precision": precision})


def _occlusion(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
               pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    from fetalscope.explain import perturbation  # Captum, scikit-image on first use

    side = min(x.shape[2:])
    window = int(p["window"]) if p["window"] else max(2, round(side / 7))
    stride = int(p["stride"]) if p["stride"] else max(1, window // 2)
    targets, probs = resolve_targets(model, x, targets)
    base = make_baseline(x, p["baseline"], pp, p["blur_sigma"])
    precision = resolve_precision(p["precision"], x.device)
    attr = perturbation.occlusion(model, x, base, targets, window=window, stride=stride,
                                  batch_size=int(p["batch_size"]), output=p["output"], precision=precision)
    n = ((x.shape[2] - window) // stride + 1) * ((x.shape[3] - window) // stride + 1)
    return _Result(to_maps(attr), targets, probs, [{"n_perturbations": n}] * x.shape[0],
                   {**p, "window": window, "stride": stride, "precision": precision})


def _lime(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
          pp: PreprocessConfig | None, p: dict[str, Any]) -> _Result:
    from fetalscope.explain import perturbation  # Captum, scikit-image on first use

    targets, probs = resolve_targets(model, x, targets)
    precision = resolve_precision(p["precision"], x.device)
    maps, extras = [], []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        seg = perturbation.superpixels(xi[0], p["n_segments"], p["compactness"], p["smooth_sigma"])
        if p["baseline"] == "mean":
            base = perturbation.segment_means(xi[0], seg).unsqueeze(0)
        else:
            base = make_baseline(xi, p["baseline"], pp, p["blur_sigma"])
        m, extra = perturbation.lime(model, xi, base, int(targets[i]), seg, n_samples=int(p["n_samples"]),
                                     batch_size=int(p["batch_size"]), kernel_width=float(p["kernel_width"]),
                                     alpha=float(p["alpha"]), output=p["output"], seed=int(p["seed"]),
                                     precision=precision)
        maps.append(to_maps(m))
        extras.append(extra)
    return _Result(np.stack(maps), targets, probs, extras, {**p, "precision": precision})


_METHODS: dict[str, MethodSpec] = {}
_ALIASES: dict[str, str] = {}


def register_method(spec: MethodSpec) -> None:
    """Add (or replace) a method in the registry; ``spec.fn(model, x, targets, preprocess, params)``
    returns a ``_Result`` with ``N x H x W`` maps."""
    _METHODS[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name


register_method(MethodSpec("gradcam", _gradcam_variant("gradcam"), {"layer": None}, False,
                     "Grad-CAM (Selvaraju et al. 2017) on the model's default or a given layer",
                     aliases=("grad-cam", "grad_cam")))
register_method(MethodSpec("gradcam++", _gradcam_variant("gradcam++"), {"layer": None}, False,
                     "Grad-CAM++ (Chattopadhay et al. 2018)", aliases=("gradcampp", "gradcam_pp", "grad-cam++")))
register_method(MethodSpec("guided_backprop", _guided_backprop, {"reduce": "abs_max"}, False,
                     "Guided Backpropagation (Springenberg et al. 2015), guided at every rectifying activation",
                     aliases=("guided-backprop", "gbp", "guidedbackprop")))
register_method(MethodSpec("guided_gradcam", _guided_gradcam, {"layer": None, "reduce": "abs_max"}, False,
                     "Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map",
                     aliases=("guided-gradcam", "ggcam")))
register_method(MethodSpec("saliency", _saliency, {"reduce": "abs_max"}, False,
                     "Plain input-gradient saliency (Simonyan et al. 2014)", aliases=("gradient", "vanilla_gradient")))
register_method(MethodSpec("integrated_gradients", _integrated_gradients,
                     {"baseline": "black", "n_steps": 32, "internal_batch_size": 8, "blur_sigma": None,
                      "ig_method": "gausslegendre", "output": "logit", "reduce": "sum", "precision": "fp32"}, True,
                     "Integrated Gradients (Sundararajan et al. 2017) from a black or blurred baseline",
                     aliases=("ig", "integrated-gradients")))
register_method(MethodSpec("occlusion", _occlusion,
                     {"window": None, "stride": None, "baseline": "mean", "blur_sigma": None, "batch_size": 8,
                      "output": "logit", "precision": "auto"}, True,
                     "Occlusion sensitivity (Zeiler & Fergus 2014): drop of the target output per occluded patch"))
register_method(MethodSpec("lime", _lime,
                     {"n_samples": 300, "n_segments": 64, "compactness": 0.1, "smooth_sigma": None,
                      "baseline": "mean", "blur_sigma": None, "kernel_width": 0.25, "alpha": 1.0,
                      "batch_size": 8, "output": "prob", "seed": 0, "precision": "auto"}, True,
                     "LIME (Ribeiro et al. 2016) on SLIC superpixels of the Gaussian-smoothed image"))

DEFAULT_METHODS = ("gradcam", "gradcam++", "guided_backprop", "guided_gradcam", "integrated_gradients",
                   "occlusion", "lime")


def list_methods() -> list[str]:
    """Canonical method names (aliases such as ``ig`` are accepted by :func:`explain` too)."""
    return list(_METHODS)


def method_spec(method: str) -> MethodSpec:
    """The registry entry for ``method`` (canonical name or alias, case-insensitive)."""
    if not isinstance(method, str):
        raise BadInputError(f"method must be a name, got {type(method).__name__}")
    key = method.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _METHODS:
        return _METHODS[key]
    names = list(_METHODS) + list(_ALIASES)
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(_ALIASES.get(c, c)) for c in dict.fromkeys(close))}?" if close else ""
    raise BadInputError(f"unknown explanation method '{method}'.{hint} Valid methods: {', '.join(_METHODS)} "
                        f"(aliases: {', '.join(sorted(_ALIASES))})")


def canonical_name(method: str) -> str:
    return method_spec(method).name


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """``"gradcam,ig"`` or a list -> canonical names, in order, without duplicates; ``all`` = every one."""
    items = [m for m in (methods.split(",") if isinstance(methods, str) else methods)]
    items = [m.strip() for m in items if m and m.strip()]
    if not items:
        raise BadInputError(f"no explanation method given; choose from {', '.join(_METHODS)}")
    if any(m.lower() == "all" for m in items):
        return list(DEFAULT_METHODS)
    return list(dict.fromkeys(canonical_name(m) for m in items))


def resolve_params(spec: MethodSpec, params: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in params if k not in spec.defaults]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, list(spec.defaults), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        accepted = ", ".join(spec.defaults) or "none"
        raise BadInputError(f"method '{spec.name}' has no parameter '{k}'.{hint} Accepted: {accepted}")
    return {**spec.defaults, **params}


def _preprocess_of(model: nn.Module, preprocess: PreprocessConfig | None) -> PreprocessConfig | None:
    if preprocess is not None:
        return preprocess
    spec = getattr(model, "spec", None)
    return getattr(spec, "preprocess", None)


def explain_batch(model: nn.Module, x: torch.Tensor, method: str,
                  target: int | Sequence[int] | torch.Tensor | None = None, *,
                  preprocess: PreprocessConfig | None = None, **params: Any) -> list[Explanation]:
    """Explain ``N`` preprocessed images (``N x C x H x W``) with one method in as few model calls
    as the method allows. ``target``: None (each image's predicted class), one index for all, or
    one per image. ``preprocess`` (default: ``model.spec.preprocess``) defines the black baseline.
    """
    spec = method_spec(method)
    p = resolve_params(spec, params)
    xb = as_batch(x)
    targets = normalise_targets(target, xb.shape[0], num_classes_of(model))
    pp = _preprocess_of(model, preprocess)
    xb = xb.to(model_device(model))
    if targets is not None:
        targets = targets.to(xb.device)
    start = time.perf_counter()
    with inference_setup(model):
        res = spec.fn(model, xb, targets, pp, p)
    seconds = (time.perf_counter() - start) / xb.shape[0]
    if res.maps.shape != (xb.shape[0], xb.shape[2], xb.shape[3]):  # a method bug, never the user's
        raise RuntimeError(f"{spec.name} returned maps of shape {res.maps.shape} for input {tuple(xb.shape)}")
    out = []
    for i in range(xb.shape[0]):
        out.append(Explanation(
            map=np.ascontiguousarray(res.maps[i], dtype=np.float32), target=int(res.targets[i]), method=spec.name,
            params=_jsonable(res.params), seconds=seconds,
            probability=None if res.probabilities is None else float(res.probabilities[i]),
            signed=spec.signed, extra=_jsonable(res.extras[i])))
    return out


def explain(model: nn.Module, x: torch.Tensor, method: str, target: int | None = None, *,
            preprocess: PreprocessConfig | None = None, **params: Any) -> Explanation:
    """Explain one preprocessed image (``C x H x W`` or ``1 x C x H x W``) with ``method``.

    Returns an :class:`Explanation` whose ``map`` is ``H x W`` float32 at input resolution.
    Raises :class:`BadInputError` for an unknown method or parameter, a target outside
    ``0..num_classes-1`` or a layer name the model does not have (with close matches).
    """
    xb = as_batch(x)
    if xb.shape[0] != 1:
        raise BadInputError(f"explain() takes one image, got a batch of {xb.shape[0]}; use explain_batch()")
    return explain_batch(model, xb, method, target, preprocess=preprocess, **params)[0]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, nn.Module):
        return type(value).__name__
    return value
