"""Perturbation methods on Captum: occlusion sensitivity and LIME on speckle-robust superpixels."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime, Occlusion
from skimage.segmentation import slic
from torch import nn

from fetalscope.errors import BadInputError
from fetalscope.explain.common import precision_context
from fetalscope.explain.gradients import forward_for


def occlusion(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, targets: torch.Tensor,
              window: int, stride: int, batch_size: int, output: str = "logit", precision: str = "fp32"
              ) -> torch.Tensor:
    """Occlusion sensitivity ``N x H x W`` (Zeiler & Fergus 2014) with Captum's ``Occlusion``.

    A ``window`` x ``window`` patch (all channels) slides with ``stride``; each pixel gets the mean
    drop of the target output over the patches covering it (positive = the region supports the
    class). ``batch_size`` perturbed images are evaluated per forward pass, in ``precision``.
    """
    h, w = x.shape[2], x.shape[3]
    if not 1 <= window <= min(h, w):
        raise BadInputError(f"occlusion window must be between 1 and {min(h, w)} px, got {window}")
    if not 1 <= stride <= window:
        raise BadInputError(f"occlusion stride must be between 1 and the window ({window} px), got {stride}")
    c = x.shape[1]
    per_eval = max(1, batch_size // x.shape[0])
    with torch.inference_mode(), precision_context(precision, x.device):
        attr = Occlusion(forward_for(model, output)).attribute(
            x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=baseline,
            target=targets, perturbations_per_eval=per_eval)
    return attr.float().mean(dim=1)


def superpixels(image: torch.Tensor, n_segments: int, compactness: float, smooth_sigma: float | None
                ) -> np.ndarray:
    """SLIC superpixels (``H x W`` int labels 0..K-1) suited to speckled B-mode images.

    ``image`` is one preprocessed ``C x H x W`` tensor. Its channel mean is rescaled to [0, 1]
    (preprocessing is affine per channel, so this recovers the grey image), Gaussian-smoothed
    with ``smooth_sigma`` px (default 1.3 % of the shorter side, 3 px at 224) so that segments
    follow tissue boundaries rather than speckle grains, then segmented with SLIC on intensity.
    """
    g = image.detach().float().mean(dim=0).cpu().numpy()
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    sigma = smooth_sigma if smooth_sigma is not None else max(1.0, 0.013 * min(g.shape))
    if sigma > 0:
        g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))
    seg = slic(g.astype(np.float64), n_segments=int(n_segments), compactness=float(compactness),
               channel_axis=None, start_label=0, enforce_connectivity=True)
    _, seg = np.unique(seg, return_inverse=True)  # labels 0..K-1 without gaps
    return seg.reshape(g.shape).astype(np.int64)


def segment_means(x: torch.Tensor, seg: np.ndarray) -> torch.Tensor:
    """``C x H x W``: each superpixel filled with its own mean value per channel (LIME's hide colour)."""
    s = torch.from_numpy(seg).to(x.device).view(-1)
    k = int(seg.max()) + 1
    flat = x.reshape(x.shape[0], -1)
    sums = torch.zeros(x.shape[0], k, dtype=x.dtype, device=x.device).index_add_(1, s, flat)
    counts = torch.bincount(s, minlength=k).clamp_min(1).to(x.dtype)
    return (sums / counts)[:, s].view_as(x)


def _lime_kernel(width: float):
    """LIME's kernel (``lime_base.kernel``): ``sqrt(exp(-d^2 / width^2))``, d = cosine distance of
    the superpixel on/off vector to the all-on vector."""

    def similarity(_orig: Any, _pert: Any, interp: torch.Tensor, **_: Any) -> torch.Tensor:
        z = interp.float().flatten()
        on = z.sum()
        cos = on / (torch.sqrt(on.clamp_min(1e-12)) * np.sqrt(z.numel())) if on > 0 else torch.tensor(0.0)
        d = 1.0 - cos
        return torch.sqrt(torch.exp(-(d ** 2) / (width ** 2)))

    return similarity


def lime(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, target: int, seg: np.ndarray,
         n_samples: int, batch_size: int, kernel_width: float, alpha: float, output: str = "prob",
         seed: int = 0, precision: str = "fp32") -> tuple[torch.Tensor, dict[str, Any]]:
    """LIME (Ribeiro et al. 2016) for one image ``1 x C x H x W`` with Captum's ``Lime``.

    Superpixels are switched on/off at random (``n_samples`` images, ``batch_size`` per forward
    pass); "off" superpixels take ``baseline``. A weighted ridge regression (``alpha``) on the
    on/off vectors, weighted by LIME's exponential cosine kernel (``kernel_width``), gives one
    coefficient per superpixel; the map paints each superpixel with its coefficient.
    """
    if n_samples < 2:
        raise BadInputError(f"LIME needs n_samples >= 2, got {n_samples}")
    mask = torch.from_numpy(seg).to(x.device).view(1, 1, *seg.shape).expand(1, x.shape[1], *seg.shape)
    explainer = Lime(forward_for(model, output), interpretable_model=SkLearnRidge(alpha=alpha),
                     similarity_func=_lime_kernel(kernel_width))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.inference_mode(), precision_context(precision, x.device):
            attr = explainer.attribute(x, baselines=baseline, target=int(target), feature_mask=mask,
                                       n_samples=int(n_samples), perturbations_per_eval=int(batch_size))
    finally:
        torch.random.set_rng_state(state)
    return attr[0].float().mean(dim=0), {"n_superpixels": int(seg.max()) + 1}
