"""Guided Backpropagation that is correct for every activation the registry models use.

Captum's ``GuidedBackprop`` and pytorch-grad-cam's ``GuidedBackpropReLUModel`` only touch
``nn.ReLU`` modules. MobileNetV2 / FetalNet and EfficientNet-Lite use ReLU6 (``F.hardtanh``
underneath), EfficientNet-B0 uses SiLU, other code calls ``F.relu`` directly; with those
libraries such models silently get plain gradients.

:func:`guided_activations` instead intercepts the activation *functions* with a
:class:`torch.overrides.TorchFunctionMode`, so it sees module activations (``nn.ReLU``,
``nn.ReLU6``, ``nn.SiLU``, ``nn.GELU``, ``nn.Hardswish``, ``nn.LeakyReLU``, ``nn.ELU``, ``nn.Mish``,
timm's activation layers built on them) and functional calls (``F.relu``, ``torch.relu``,
``x.relu()``, ``F.relu6``, ...) alike. Each intercepted call runs through :class:`_GuidedFn`:

- forward: the original activation, computed out of place (in-place variants such as
  ``nn.ReLU(inplace=True)`` are safe: the input the backward needs is never overwritten);
- backward: the activation's true derivative times the incoming gradient, then clamped at zero
  (``grad_in = max(f'(x) * grad_out, 0)``). For ReLU this is exactly Springenberg et al.'s rule
  and Captum's implementation; for smooth activations it keeps only positive evidence flowing
  through every non-linearity, which is what "guided" means.

Not guided, by design: gating non-linearities (``sigmoid``/``hardsigmoid`` in squeeze-and-
excitation blocks, ``softmax``), which scale rather than rectify. A ReLU written as
``torch.clamp(x, min=0)`` or ``torch.maximum(x, 0)`` is not recognised; the run then reports how
many activations were guided, and :func:`guided_gradients` refuses a model where none were.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from fetalscope.errors import UnsupportedError
from fetalscope.explain.common import check_targets

_STATE = threading.local()


@dataclass
class GuidedRecord:
    """What one guided activation did in the backward pass (for tests and reports)."""

    function: str
    shape: tuple[int, ...]
    min_grad: float = float("nan")
    negative_fraction_before: float = float("nan")


@dataclass
class GuidedLog:
    """All activations seen during a :func:`guided_activations` block, in forward order."""

    records: list[GuidedRecord] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.records)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _out_of_place(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                  ) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]] | None:
    """(name, out-of-place activation) for a guidable call, else None."""
    if func in (F.relu, torch.relu, torch.relu_, F.relu_, torch.Tensor.relu, torch.Tensor.relu_):
        return "relu", torch.relu
    if func is F.relu6:
        return "relu6", F.relu6
    if func in (F.hardtanh, F.hardtanh_):
        lo = float(_arg(args, kwargs, 1, "min_val", -1.0))
        hi = float(_arg(args, kwargs, 2, "max_val", 1.0))
        if lo != 0.0:  # a clipping hardtanh is not a rectifier
            return None
        return ("relu6" if hi == 6.0 else "hardtanh"), (lambda t: F.hardtanh(t, lo, hi))
    if func is F.silu:
        return "silu", F.silu
    if func is F.gelu:
        approximate = _arg(args, kwargs, 1, "approximate", "none")
        return "gelu", (lambda t: F.gelu(t, approximate=approximate))
    if func is F.hardswish:
        return "hardswish", F.hardswish
    if func is F.mish:
        return "mish", F.mish
    if func in (F.leaky_relu, F.leaky_relu_):
        slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
        return "leaky_relu", (lambda t: F.leaky_relu(t, slope))
    if func in (F.elu, F.elu_):
        alpha = float(_arg(args, kwargs, 1, "alpha", 1.0))
        return "elu", (lambda t: F.elu(t, alpha))
    if func is F.celu:
        alpha = float(_arg(args, kwargs, 1, "alpha", 1.0))
        return "celu", (lambda t: F.celu(t, alpha))
    if func is F.selu:
        return "selu", F.selu
    return None


class _GuidedFn(torch.autograd.Function):
    """forward: ``act(x)``; backward: ``clamp(act'(x) * grad, min=0)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor],
                record: GuidedRecord | None) -> torch.Tensor:
        ctx.act = act
        ctx.record = record
        ctx.save_for_backward(x)
        _STATE.bypass = True
        try:
            return act(x)
        finally:
            _STATE.bypass = False

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        _STATE.bypass = True
        try:
            with torch.enable_grad():
                xd = x.detach().requires_grad_(True)
                (grad_in,) = torch.autograd.grad(ctx.act(xd), xd, grad_out)
        finally:
            _STATE.bypass = False
        guided = grad_in.clamp_min(0.0)
        rec = ctx.record
        if rec is not None:
            rec.negative_fraction_before = float((grad_in < 0).float().mean())
            rec.min_grad = float(guided.min()) if guided.numel() else 0.0
        return guided, None, None


class _GuidedMode(TorchFunctionMode):
    def __init__(self, log: GuidedLog, record: bool) -> None:
        super().__init__()
        self.log = log
        self.record = record

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(_STATE, "bypass", False) or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        found = _out_of_place(func, args, kwargs)
        x = args[0]
        if found is None or not (x.requires_grad and torch.is_grad_enabled()):
            return func(*args, **kwargs)
        name, act = found
        rec = GuidedRecord(name, tuple(x.shape))
        self.log.records.append(rec)
        return _GuidedFn.apply(x, act, rec if self.record else None)


@contextlib.contextmanager
def guided_activations(record: bool = False) -> Iterator[GuidedLog]:
    """Within the block, rectifying activations backpropagate the guided way.

    ``record=True`` stores, per activation, the smallest guided gradient and the fraction of
    the true gradient that was negative (costs one reduction per activation in backward).
    """
    log = GuidedLog()
    with _GuidedMode(log, record):
        yield log


def guided_gradients(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor | None,
                     record: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, GuidedLog]:
    """Guided input gradients ``N x C x H x W`` of each image's target logit.

    Returns (gradients, targets used, logits, log); the forward pass is the model's own.
    ``targets=None`` explains each image's argmax.
    Raises :class:`UnsupportedError` when the model has no activation this module can guide
    (guided backprop would silently equal plain gradients).
    """
    xin = x.detach().clone().requires_grad_(True)
    with guided_activations(record=record) as log:
        logits = model(xin)
        targets = _targets_from(logits, targets)
        score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(score, xin)
    if log.count == 0:
        raise UnsupportedError(
            f"guided backprop found no rectifying activation in {type(model).__name__} (supported: ReLU, "
            f"ReLU6/hardtanh(0, x), SiLU, GELU, Hardswish, Mish, LeakyReLU, ELU, CELU, SELU as modules or "
            f"functions); its result would equal plain gradients - use method 'saliency' instead")
    return grad.detach(), targets, logits.detach(), log


def plain_gradients(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vanilla input gradients ``N x C x H x W`` of each image's target logit, targets, logits."""
    xin = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xin)
        targets = _targets_from(logits, targets)
        score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(score, xin)
    return grad.detach(), targets, logits.detach()


def _targets_from(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if targets is None:
        return logits.detach().argmax(dim=1)
    check_targets(targets, logits.shape[1])
    return targets


__all__ = ["GuidedLog", "GuidedRecord", "guided_activations", "guided_gradients", "plain_gradients"]
