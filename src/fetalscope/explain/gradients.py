"""Gradient-path methods: Integrated Gradients (Captum) with its completeness check."""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import IntegratedGradients
from torch import nn

from fetalscope.errors import BadInputError

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


class _Probabilities(nn.Module):
    """``softmax(model(x))``: lets Captum attribute a class probability instead of a logit."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def forward_for(model: nn.Module, output: str) -> nn.Module:
    """The function attributions explain: the model's logits or its softmax probabilities."""
    if output == "logit":
        return model
    if output == "prob":
        return _Probabilities(model)
    raise BadInputError(f"output must be 'logit' or 'prob', got '{output}'")


def integrated_gradients(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, targets: torch.Tensor,
                         n_steps: int, internal_batch_size: int, ig_method: str = "gausslegendre",
                         output: str = "logit") -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """IG attributions ``N x C x H x W`` and, per image, the completeness check.

    Completeness (Sundararajan et al. 2017): the attributions sum to ``F(x) - F(baseline)``. The
    check reports both sides, their difference (Captum's convergence delta) and the relative
    error ``|delta| / |F(x) - F(baseline)|``; more ``n_steps`` shrink it.
    """
    fn = forward_for(model, output)
    ig = IntegratedGradients(fn)
    attr, delta = ig.attribute(x, baselines=baseline, target=targets, n_steps=n_steps, method=ig_method,
                               internal_batch_size=internal_batch_size, return_convergence_delta=True)
    with torch.inference_mode():
        fx = fn(x).gather(1, targets.view(-1, 1)).squeeze(1)
        fb = fn(baseline).gather(1, targets.view(-1, 1)).squeeze(1)
    checks = []
    for i in range(x.shape[0]):
        total = float(attr[i].sum())
        diff = float(fx[i] - fb[i])
        checks.append({
            "sum_attributions": total,
            "output_difference": diff,
            "output": output,
            "delta": float(delta[i]),
            "relative_error": abs(total - diff) / max(abs(diff), 1e-8),
        })
    return attr.detach(), checks
