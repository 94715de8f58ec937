"""How a bundle's weights are stored on disk: ``float32`` (as trained), ``float16`` or ``int8``.

Every kind is computed in float32 after loading; a smaller kind only lets more networks fit the repository's
25 MB per file (the segmentation ensembles).

``int8`` keeps each large weight matrix (convolution or linear weight: two or more dimensions, at least
``MIN_ELEMENTS`` values) as symmetric 8-bit integers, ``w ~= q * scale`` with ``q`` in -127..127 and a float16
scale for each group of up to ``MAX_GROUP`` consecutive values of one output channel (under
``<key>.int8_scale``, chosen for the least squared error); every other floating tensor (biases, BatchNorm,
small layers) as float16. Scales within an output channel are what survive folding a BatchNorm into the
convolution before it, which the ONNX export does: both files quantise to nearly the same integers.

The safetensors metadata says which kind a file holds (``storage``); :func:`unpack_state_dict` turns any of
them back into float32 tensors and refuses an int8 tensor whose scale is missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch

from fetalscope.errors import MissingWeightsError

STORAGES = ("float32", "float16", "int8")
SCALE_SUFFIX = ".int8_scale"
MIN_ELEMENTS = 1024  # smaller tensors are not worth a scale per channel
MAX_GROUP = 64  # values of one output channel that share an int8 scale, at most
CLIP_RATIOS = tuple(1.0 - 0.025 * i for i in range(21))  # int8 scales tried per group: 1.0 .. 0.5 x the peak


def check_storage(storage: str) -> str:
    """``storage`` itself, or a :class:`ValueError` naming the kinds there are."""
    if storage not in STORAGES:
        raise ValueError(f"unknown weight storage {storage!r}; choose one of {', '.join(STORAGES)}")
    return storage


def int8_group(values_per_channel: int) -> int:
    """How many consecutive values of one output channel share an int8 scale: the largest divisor of the
    channel's length up to ``MAX_GROUP`` (a 3 x 3 depthwise channel is one group of 9; a 1 x 1 convolution
    over 1152 channels has 18 groups of 64)."""
    return max(g for g in range(1, min(MAX_GROUP, values_per_channel) + 1) if values_per_channel % g == 0)


def quantize_int8(weight: torch.Tensor, group: int | None = None,
                  ratios: Sequence[float] = CLIP_RATIOS) -> tuple[torch.Tensor, torch.Tensor]:
    """(``int8`` tensor of ``weight``'s shape, float16 scales ``C x G``): symmetric, each output channel's
    values cut into ``G`` groups of ``group`` consecutive values (default :func:`int8_group`; it must divide
    the channel's length), each group with its own scale: the one of ``ratios`` x the group's peak / 127 (as
    float16) whose integers reproduce the group with the least squared error (an outlying weight is clipped when
    that lets the rest sit on a finer grid). A group of zeros, or of values too small for a float16 scale
    (below about 1e-5), gets scale 1 and integers 0."""
    w = weight.detach().float()
    channels = w.shape[0]
    per_channel = w.numel() // channels
    group = group or int8_group(per_channel)
    if per_channel % group:
        raise ValueError(f"groups of {group} do not divide an output channel of {per_channel} values")
    groups = w.reshape(channels, per_channel // group, -1)
    peak = groups.abs().amax(dim=2)
    best_err = torch.full_like(peak, float("inf"))
    scale = torch.ones_like(peak)
    for ratio in ratios:
        trial = (ratio * peak / 127.0).half().float()
        trial = torch.where(trial > 0, trial, torch.ones_like(trial))  # zeros, or too small for float16
        err = ((torch.clamp(torch.round(groups / trial[..., None]), -127, 127) * trial[..., None] - groups) ** 2
               ).sum(dim=2)
        better = err < best_err
        best_err, scale = torch.where(better, err, best_err), torch.where(better, trial, scale)
    q = torch.clamp(torch.round(groups / scale[..., None]), -127, 127).to(torch.int8).reshape(w.shape)
    return q, scale.half()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weight that ``q`` and its ``C x G`` group ``scale`` stand for."""
    return (q.float().reshape(*scale.shape, -1) * scale.float()[..., None]).reshape(q.shape)


def _quantizable(value: torch.Tensor) -> bool:
    return value.is_floating_point() and value.dim() >= 2 and value.numel() >= MIN_ELEMENTS


def pack_state_dict(state: Mapping[str, torch.Tensor], storage: str,
                    int8_layers: str | None = None) -> dict[str, torch.Tensor]:
    """The contiguous tensors to write for ``state`` stored as ``storage`` (integer tensors, e.g. BatchNorm's
    batch counters, are kept as they are). With ``int8``, ``int8_layers`` (a regular expression searched in
    each key) limits the int8 tensors to the layers it matches; the others are float16."""
    check_storage(storage)
    pattern = re.compile(int8_layers) if int8_layers else None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(SCALE_SUFFIX):
            raise ValueError(f"state key {key!r} ends with the reserved suffix {SCALE_SUFFIX!r}")
        if not value.is_floating_point() or storage == "float32":
            out[key] = value.detach().contiguous()
        elif storage == "int8" and _quantizable(value) and (pattern is None or pattern.search(key)):
            out[key], out[key + SCALE_SUFFIX] = (t.contiguous() for t in quantize_int8(value))
        else:
            out[key] = value.detach().half().contiguous()
    return out


def unpack_state_dict(tensors: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, torch.Tensor]:
    """Float32 tensors from what :func:`pack_state_dict` wrote (any storage); ``source`` names the file in
    errors."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.endswith(SCALE_SUFFIX):
            if key[: -len(SCALE_SUFFIX)] not in tensors:
                raise MissingWeightsError(f"{source}: scale {key!r} has no int8 tensor")
            continue
        if value.dtype == torch.int8:
            scale = tensors.get(key + SCALE_SUFFIX)
            if scale is None:
                raise MissingWeightsError(f"{source}: int8 tensor {key!r} has no {SCALE_SUFFIX} scale")
            channels = value.shape[0]
            per_channel = value.numel() // channels
            expected = (channels, per_channel // int8_group(per_channel))
            if tuple(scale.shape) != expected:
                raise MissingWeightsError(f"{source}: the scale of {key!r} has shape {tuple(scale.shape)}, "
                                          f"expected {expected}")
            out[key] = dequantize_int8(value, scale)
        elif value.is_floating_point():
            out[key] = value.float()
        else:
            out[key] = value
    return out
