"""Gradient-path methods: Integrated Gradients (Captum) with its completeness check."""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import IntegratedGradients
from torch import nn

from fetalscope.errors import BadInputError
from fetalscope.explain.common import precision_context

IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


class _Output(nn.Module):
    """The model's float32 logits, or their softmax: what Captum attributes."""

    def __init__(self, model: nn.Module, probabilities: bool) -> None:
        super().__init__()
        self.model = model
        self.probabilities = probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).float()  # float32 even under a bfloat16 autocast
        return torch.softmax(out, dim=1) if self.probabilities else out


def forward_for(model: nn.Module, output: str) -> nn.Module:
    """The function attributions explain: the model's logits or its softmax probabilities."""
    if output not in ("logit", "prob"):
        raise BadInputError(f"output must be 'logit' or 'prob', got '{output}'")
    return _Output(model, output == "prob")


def integrated_gradients(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, targets: torch.Tensor,
                         n_steps: int, internal_batch_size: int, ig_method: str = "gausslegendre",
                         output: str = "logit", precision: str = "fp32") -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """IG attributions ``N x C x H x W`` and, per image, the completeness check.

    Completeness (Sundararajan et al. 2017): the attributions sum to ``F(x) - F(baseline)``. The
    check reports both sides, their difference and the relative error
    ``|sum - (F(x) - F(baseline))| / |F(x) - F(baseline)|``; more ``n_steps`` shrink it. The path
    integral runs in ``precision`` (``bf16``: bfloat16 autocast); ``F`` is always evaluated in
    float32, so the check also covers the precision's own error.
    """
    fn = forward_for(model, output)
    ig = IntegratedGradients(fn)
    with precision_context(precision, x.device):
        attr = ig.attribute(x, baselines=baseline, target=targets, n_steps=n_steps, method=ig_method,
                            internal_batch_size=internal_batch_size)
    attr = attr.float()
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
            "delta": total - diff,
            "relative_error": abs(total - diff) / max(abs(diff), 1e-8),
        })
    return attr.detach(), checks
