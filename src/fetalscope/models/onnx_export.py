"""Export a classifier (or a bundle's model) to ONNX with a dynamic batch axis, and check that ONNX Runtime
gives the same probabilities as PyTorch: the one parity check (:func:`check_parity`, tolerance
:data:`PARITY_TOLERANCE`) that ``fetalscope export`` and the bundle recipes run.

The graph itself is written by :func:`fetalscope.models.onnx_graph.write_onnx` (input ``input``,
N x C x H x W float32; output ``logits``), which :func:`fetalscope.models.bundle.save_bundle` uses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fetalscope.errors import BadInputError
from fetalscope.models.bundle import ONNX, Bundle, load_bundle
from fetalscope.models.onnx_graph import INPUT_NAME, OUTPUT_NAME, freeze_same_padding, write_onnx
from fetalscope.models.runtime import Batch, OnnxPredictor, TorchPredictor

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "PARITY_TOLERANCE", "ParityResult", "check_parity", "export_onnx",
           "freeze_same_padding"]

# largest |p_onnx - p_torch| (any class, any image) that counts as the same model: the fp32 parity path
PARITY_TOLERANCE = 1e-4
PARITY_RANDOM_INPUTS = 4  # inputs drawn by check_parity when none are given (seeded normal noise)


def export_onnx(bundle_or_model: Bundle | nn.Module, path: str | Path | None = None,
                input_size: tuple[int, int] | int | None = None, opset: int = 17,
                dynamic_batch: bool = True, channels: int | None = None) -> Path:
    """Write ``model.onnx`` (default: into the bundle's folder) and return its path.

    ``input_size``/``channels`` default to the model's preprocessing config.
    """
    if isinstance(bundle_or_model, Bundle):
        model: nn.Module = bundle_or_model.model
        preprocess = bundle_or_model.preprocess
        path = Path(path) if path is not None else bundle_or_model.path / ONNX
    else:
        model = bundle_or_model
        spec = getattr(model, "spec", None)
        preprocess = spec.preprocess if spec is not None else None
        if path is None:
            raise BadInputError("export_onnx(model, path): give an output path when exporting a bare model")
        path = Path(path)
    if input_size is None:
        if preprocess is None:
            raise BadInputError("export_onnx: input_size is needed for a model without a preprocess config")
        input_size = tuple(preprocess.input_size)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    if channels is None:
        channels = preprocess.channels if preprocess is not None else 3
    return write_onnx(model, path, input_size=input_size, channels=channels, opset=opset,
                      dynamic_batch=dynamic_batch)


@dataclass(frozen=True)
class ParityResult:
    """What :func:`check_parity` measured. ``passed``: the largest absolute probability difference is at
    most ``tolerance`` (and the outputs could be compared at all; else ``problem`` says why not)."""

    max_abs_prob_diff: float
    n_images: int
    tolerance: float
    same_top1: bool
    onnx_path: Path
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.max_abs_prob_diff <= self.tolerance)  # NaN fails

    def to_dict(self) -> dict[str, Any]:
        """The record a bundle card keeps under ``onnx.parity`` (``problem`` only when there is one)."""
        out: dict[str, Any] = {"max_abs_prob_diff": self.max_abs_prob_diff, "n_images": self.n_images,
                               "tolerance": self.tolerance, "same_top1": self.same_top1}
        if self.problem is not None:
            out["problem"] = self.problem
        return out

    def describe(self) -> str:
        """One line: the difference, on how many inputs, against which tolerance, and the verdict."""
        verdict = "ok" if self.passed else f"FAILED ({self.problem or 'difference above the tolerance'})"
        return (f"{self.onnx_path}: max |p_onnx - p_torch| = {self.max_abs_prob_diff:.2e} on {self.n_images} "
                f"input(s), tolerance {self.tolerance:.0e}: {verdict}")


def parity_inputs(bundle: Bundle, n: int = PARITY_RANDOM_INPUTS, seed: int = 0) -> np.ndarray:
    """``n`` seeded standard-normal inputs of the bundle's shape (``n x C x H x W`` float32)."""
    c = bundle.preprocess.channels
    h, w = bundle.preprocess.input_size
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed)).numpy()


def check_parity(bundle_or_path: Bundle | str | Path, inputs: Batch | None = None, *,
                 onnx_path: str | Path | None = None, tolerance: float = PARITY_TOLERANCE,
                 intra_op_threads: int | None = None) -> ParityResult:
    """Probabilities of the bundle's PyTorch model and of its ONNX twin (``onnx_path``, default the bundle's
    ``model.onnx``) on ``inputs`` (preprocessed ``N x C x H x W``; default :func:`parity_inputs`), both at
    the card's temperature. Never raises on a mismatch: read :attr:`ParityResult.passed`."""
    bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    path = Path(onnx_path) if onnx_path is not None else bundle.path / ONNX
    x = parity_inputs(bundle) if inputs is None else inputs
    p_torch = TorchPredictor(bundle.model, bundle.temperature).predict_proba(x)
    p_onnx = OnnxPredictor(path, bundle.temperature, intra_op_threads=intra_op_threads).predict_proba(x)
    if p_torch.shape != p_onnx.shape:
        return ParityResult(float("inf"), int(len(p_torch)), float(tolerance), False, path,
                            problem=f"output shapes differ: PyTorch {p_torch.shape}, ONNX {p_onnx.shape}")
    return ParityResult(
        max_abs_prob_diff=float(np.abs(p_torch - p_onnx).max()),
        n_images=int(len(p_torch)),
        tolerance=float(tolerance),
        same_top1=bool((p_torch.argmax(1) == p_onnx.argmax(1)).all()),
        onnx_path=path,
    )
