"""Shared by every trainer (classifier, detector, segmenter): device choice, mixed precision and seeding."""

from __future__ import annotations

import contextlib
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fetalscope.errors import DataError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device '{name}' asked for, but PyTorch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device


def pick_device() -> torch.device:
    """CUDA when PyTorch sees a GPU, else CPU (``resolve_device("auto")``)."""
    return resolve_device("auto")


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX); else bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for (``bf16``) or when the hardware supports it (``auto``)."""
    if amp == "off":
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if amp == "bf16" or (amp == "auto" and cpu_supports_bf16()):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
