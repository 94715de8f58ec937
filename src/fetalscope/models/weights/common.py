"""Small helpers shared by the offline weight loaders: locating files, hashing, pairing state dicts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch

from fetalscope import config
from fetalscope.errors import MissingWeightsError


def shared_weight_file(relative: str, what: str) -> Path:
    """``shared_weights_dir() / relative``, or :class:`MissingWeightsError` saying how to supply it."""
    path = config.shared_weights_dir() / relative
    if not path.is_file():
        raise MissingWeightsError(
            f"{what} not found at {path}. Put the file there, or point the environment variable "
            f"FETALSCOPE_SHARED at the folder holding weights/{relative} "
            f"(see shared/weights/README.md), or build the model with pretrained=False."
        )
    return path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def pair_by_position(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                     source_name: str) -> dict[str, torch.Tensor]:
    """Map ``source`` tensors onto ``target`` keys in order, skipping ``num_batches_tracked``.

    Used when two implementations of one architecture store the same tensors in the same order under
    different names. Every shape is checked; a mismatch raises :class:`MissingWeightsError` (the
    file is not the checkpoint the loader expects).
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise MissingWeightsError(
            f"{source_name}: holds {len(src)} tensors but the model expects {len(dst)}; "
            "this is not the checkpoint this architecture loads."
        )
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise MissingWeightsError(
                f"{source_name}: tensor {sk} has shape {tuple(sv.shape)} but model key {dk} expects "
                f"{tuple(dv.shape)}; this is not the checkpoint this architecture loads."
            )
        out[dk] = sv.to(dv.dtype)
    return out
