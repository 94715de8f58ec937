"""Offline loader for the SonoNet-16 weights (Baumgartner et al. 2017, arXiv:1612.05601; Apache-2.0).

``shared/weights/sononet16/SonoNet16.npz`` (upstream baumgach/SonoNet-weights, commit 6c4df39) holds
75 arrays ``arr_0`` ... ``arr_74``, five per convolution in network order: W (out, in, k, k), beta,
gamma, running mean, inv_std. BatchNorm eps is 1e-4, so ``running_var = 1 / inv_std**2 - eps``.
Convolutions have no bias and kernels are used as stored (no flipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fetalscope.errors import MissingWeightsError
from fetalscope.models.weights.common import shared_weight_file

SONONET16_NPZ = "sononet16/SonoNet16.npz"
SONONET_BN_EPS = 1e-4
ARRAYS_PER_LAYER = 5
SONONET16_LAYERS = 15  # 13 feature convolutions + 2 adaptation convolutions


@dataclass(frozen=True)
class ConvBNWeights:
    """One stored convolution + BatchNorm: kernel, BN affine (beta, gamma) and running statistics."""

    weight: np.ndarray  # (out, in, k, k)
    beta: np.ndarray
    gamma: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray


def sononet16_npz_path(path: str | Path | None = None) -> Path:
    """The npz to load: ``path`` if given (must exist), else
    ``<FETALSCOPE_SHARED>/weights/sononet16/SonoNet16.npz``."""
    if path is None:
        return shared_weight_file(SONONET16_NPZ, "SonoNet-16 weights (SonoNet16.npz)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingWeightsError(
            f"SonoNet-16 weights not found at {p}. Pass the path of SonoNet16.npz, or leave it out to use "
            f"weights/{SONONET16_NPZ} under the shared folder (environment variable FETALSCOPE_SHARED)."
        )
    return p


def read_sononet16_npz(path: str | Path | None = None) -> list[ConvBNWeights]:
    """The 15 convolution layers of SonoNet-16 in network order, BN variance already recovered."""
    p = sononet16_npz_path(path)
    try:
        with np.load(p) as z:
            arrays = [np.asarray(z[f"arr_{i}"], dtype=np.float32) for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as exc:
        raise MissingWeightsError(f"{p}: not a readable SonoNet16.npz ({exc}); replace the file.") from exc
    expected = SONONET16_LAYERS * ARRAYS_PER_LAYER
    if len(arrays) != expected:
        raise MissingWeightsError(f"{p}: holds {len(arrays)} arrays, SonoNet-16 has {expected}; wrong file.")
    layers = []
    for i in range(0, expected, ARRAYS_PER_LAYER):
        w, beta, gamma, mean, inv_std = arrays[i : i + ARRAYS_PER_LAYER]
        if w.ndim != 4 or not (beta.shape == gamma.shape == mean.shape == inv_std.shape == (w.shape[0],)):
            raise MissingWeightsError(f"{p}: arrays arr_{i}..arr_{i + 4} do not form a conv + BN layer")
        var = 1.0 / np.square(inv_std.astype(np.float64)) - SONONET_BN_EPS
        layers.append(ConvBNWeights(w, beta, gamma, mean, var.astype(np.float32)))
    return layers


def assign_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, layer: ConvBNWeights, where: str) -> None:
    """Copy one stored layer into a bias-free ``conv`` and its ``bn`` (shapes checked)."""
    if tuple(conv.weight.shape) != layer.weight.shape:
        raise MissingWeightsError(
            f"SonoNet16.npz layer for {where} has shape {layer.weight.shape}, model expects "
            f"{tuple(conv.weight.shape)}"
        )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(layer.weight))
        bn.weight.copy_(torch.from_numpy(layer.gamma))
        bn.bias.copy_(torch.from_numpy(layer.beta))
        bn.running_mean.copy_(torch.from_numpy(layer.running_mean))
        bn.running_var.copy_(torch.from_numpy(layer.running_var))
        bn.num_batches_tracked.zero_()
