"""Grad-CAM and Grad-CAM++ on pytorch-grad-cam's weighting, with a cheaper gradient pass.

pytorch-grad-cam computes the channel weights (``GradCAM.get_cam_weights``,
``GradCAMPlusPlus.get_cam_weights``) and the resize/normalisation (``scale_cam_image``); this
module only captures the layer's activations and gradients itself, because the library's
capture (a) backpropagates through the whole network, weights included, when all that is needed
is the gradient from the logits down to the layer, and (b) keeps a view of the layer output that
a following in-place activation silently overwrites. Here the layer output is swapped for a
fresh leaf tensor during the forward pass: the backward stops there, and the activations used
are exactly the layer's output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image
from torch import nn

from fetalscope.errors import BadInputError
from fetalscope.explain.common import check_targets

# pytorch-grad-cam's weighting functions use no instance state: (self, input, layers, targets, A, dA)
_WEIGHTS: dict[str, Callable[..., np.ndarray]] = {
    "gradcam": GradCAM.get_cam_weights,
    "gradcam++": GradCAMPlusPlus.get_cam_weights,
}


def layer_activations_and_grads(model: nn.Module, layer: nn.Module, x: torch.Tensor,
                                 targets: torch.Tensor | None
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and a truncated backward: (activations, gradients, targets, logits).

    ``activations`` and ``gradients`` are ``N x C x h x w`` at ``layer``; gradients are those of
    each image's target logit.
    """
    captured: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: Any) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise BadInputError(f"Grad-CAM layer {type(_m).__name__} returns {type(out).__name__}, not a tensor; "
                                f"pick a layer that outputs a feature map")
        leaf = out.detach().requires_grad_(True)
        captured["act"] = leaf
        return leaf.clone()  # later in-place ops modify the clone, never the captured activations

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            if "act" not in captured:
                raise BadInputError("the Grad-CAM layer was not used in the forward pass; pick another layer")
            if targets is None:
                targets = logits.detach().argmax(dim=1)
            else:
                check_targets(targets, logits.shape[1])
            score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, captured["act"])
    finally:
        handle.remove()
    act = captured["act"].detach()
    if act.ndim != 4:
        raise BadInputError(f"the Grad-CAM layer outputs shape {tuple(act.shape)}; it needs a N x C x h x w "
                            f"feature map (choose a convolutional layer)")
    return act, grads.detach(), targets, logits.detach()


def cam_maps(variant: str, model: nn.Module, layer: nn.Module, x: torch.Tensor,
             targets: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Grad-CAM (``variant='gradcam'``) or Grad-CAM++ maps, ``N x H x W`` in [0, 1].

    Returns (maps, targets, logits, facts) where ``facts`` holds the layer's feature-map size.
    """
    act, grads, targets, logits = layer_activations_and_grads(model, layer, x, targets)
    a = act.float().cpu().numpy()
    g = grads.float().cpu().numpy()
    weights = _WEIGHTS[variant](None, x, [layer], None, a, g)
    cam = np.maximum((weights[:, :, None, None] * a).sum(axis=1), 0.0)
    peak = cam.reshape(cam.shape[0], -1).max(axis=1)
    empty = [bool(v <= 0) for v in peak]
    # relative scaling first: scale_cam_image's absolute epsilon (1e-7) would flatten tiny CAMs
    cam = cam / np.where(peak > 0, peak, 1.0)[:, None, None]
    h, w = x.shape[2], x.shape[3]
    maps = scale_cam_image(cam, (w, h)).astype(np.float32)
    return maps, targets, logits, {"feature_map": [int(act.shape[2]), int(act.shape[3])], "empty": empty}
