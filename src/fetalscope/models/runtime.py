"""One inference face over PyTorch eager and ONNX Runtime (CPU): fp32 ``model.onnx`` and, opt-in,
the static int8 ``model.int8.onnx`` (see :mod:`fetalscope.models.quantize`).

``Predictor.predict_logits(batch)`` takes an ``N x C x H x W`` float array or tensor (or one
``C x H x W`` image) already preprocessed with the bundle's :class:`PreprocessConfig` and returns
``N x K`` float32 logits; ``predict_proba`` applies softmax at the card's temperature.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models.bundle import Bundle

Runtime = Literal["auto", "torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
Batch = np.ndarray | torch.Tensor


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _as_batch(batch: Batch) -> np.ndarray:
    arr = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise BadInputError(f"predictor input must be N x C x H x W (or C x H x W), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class Predictor(ABC):
    """Runs a classifier on preprocessed batches. ``temperature`` scales logits in :meth:`predict_proba`."""

    name: str = "predictor"

    def __init__(self, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise BadInputError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    @abstractmethod
    def predict_logits(self, batch: Batch) -> np.ndarray:
        """``N x K`` float32 logits."""

    def predict_proba(self, batch: Batch) -> np.ndarray:
        """``N x K`` class probabilities: softmax(logits / temperature)."""
        return softmax(self.predict_logits(batch), self.temperature)

    def predict_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        """``{"logits": ..., **extras}``: every named output of the model (extras are model-specific)."""
        return {"logits": self.predict_logits(batch)}


class TorchPredictor(Predictor):
    """PyTorch eager inference (eval mode, ``torch.inference_mode``)."""

    name = "torch"

    def __init__(self, model: nn.Module, temperature: float = 1.0,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(temperature)
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)

    def predict_logits(self, batch: Batch) -> np.ndarray:
        x = torch.from_numpy(_as_batch(batch)).to(self.device)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    def predict_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        if not hasattr(self.model, "forward_with_extras"):
            return super().predict_outputs(batch)
        x = torch.from_numpy(_as_batch(batch)).to(self.device)
        with torch.inference_mode():
            logits, extras = self.model.forward_with_extras(x)
        out = {"logits": logits.float().cpu().numpy()}
        out.update({k: v.float().cpu().numpy() for k, v in extras.items()})
        return out


class OnnxPredictor(Predictor):
    """ONNX Runtime CPU inference with full graph optimisation.

    ``intra_op_threads``: threads per operator (default: ``OMP_NUM_THREADS`` if set, else ORT's default);
    ``sequential``: run nodes one after another (best for small CNNs at batch 1);
    ``spinning``: let idle worker threads busy-wait. Off by default: on a shared 2-core machine under
    load, spinning made batch-1 EfficientNet-Lite0 1.1x (1 thread) to 1.4x (2 threads) slower.
    """

    name = "onnx"

    def __init__(self, path: str | Path, temperature: float = 1.0, intra_op_threads: int | None = None,
                 inter_op_threads: int = 1, sequential: bool = True, spinning: bool = False) -> None:
        super().__init__(temperature)
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MissingWeightsError(f"ONNX model {self.path} not found; create it with export_onnx()")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if sequential
                                  else ort.ExecutionMode.ORT_PARALLEL)
        if intra_op_threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
            intra_op_threads = int(os.environ["OMP_NUM_THREADS"])
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = int(inter_op_threads)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def predict_logits(self, batch: Batch) -> np.ndarray:
        (logits,) = self.session.run([self.output_names[0]], {self.input_name: _as_batch(batch)})
        return np.asarray(logits, dtype=np.float32)

    def predict_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        values = self.session.run(None, {self.input_name: _as_batch(batch)})
        out = {name: np.asarray(v, dtype=np.float32) for name, v in zip(self.output_names, values, strict=True)}
        out["logits"] = out.pop(self.output_names[0])
        return out


class OnnxInt8Predictor(OnnxPredictor):
    """ONNX Runtime on the bundle's statically quantised ``model.int8.onnx`` (opt-in; not the parity
    path: its probabilities differ from fp32 by the amounts recorded in the card's ``int8`` field)."""

    name = "onnx-int8"


def available_runtimes(bundle: Bundle) -> list[str]:
    """The runtimes :func:`make_predictor` can give for ``bundle`` (``auto`` and ``torch`` always)."""
    out = ["auto", "torch"]
    if bundle.onnx_path is not None:
        out.append("onnx")
    if bundle.int8_onnx_path is not None:
        out.append("onnx-int8")
    return out


def secondary_runtime(bundle: Bundle, runtime: str) -> str:
    """The runtime for a model that runs beside the main one (brain sub-plane, findings): the main model's
    ``runtime`` when ``bundle`` has the files for it, else ``auto`` (e.g. ``onnx-int8`` asked for the plane
    model, and a secondary bundle without ``model.int8.onnx``)."""
    return runtime if runtime in available_runtimes(bundle) else "auto"


def make_predictor(bundle: Bundle, runtime: Runtime = "auto", intra_op_threads: int | None = None,
                   device: str | torch.device = "cpu") -> Predictor:
    """A predictor for ``bundle``: ``auto`` uses ONNX Runtime when the bundle has ``model.onnx``;
    ``onnx-int8`` (never chosen by ``auto``) runs the bundle's ``model.int8.onnx``."""
    if runtime not in RUNTIMES:
        raise BadInputError(f"unknown runtime '{runtime}': use {', '.join(RUNTIMES)}")
    if runtime == "onnx-int8":
        int8_path = bundle.int8_onnx_path
        if int8_path is None:
            raise MissingWeightsError(
                f"bundle {bundle.path} has no model.int8.onnx for runtime 'onnx-int8'; write it with "
                "`fetalscope export MODEL --int8 --calibration IMAGES` (or fetalscope.models.quantize."
                "quantize_bundle), or use runtime 'onnx' / 'torch'"
            )
        return OnnxInt8Predictor(int8_path, bundle.temperature, intra_op_threads=intra_op_threads)
    onnx_path = bundle.onnx_path
    if runtime == "onnx" and onnx_path is None:
        raise MissingWeightsError(
            f"bundle {bundle.path} has no model.onnx; export it with export_onnx(bundle) "
            "(or `fetalscope export`), or use runtime='torch'"
        )
    if runtime == "onnx" or (runtime == "auto" and onnx_path is not None and str(device) == "cpu"):
        return OnnxPredictor(onnx_path, bundle.temperature, intra_op_threads=intra_op_threads)
    return TorchPredictor(bundle.model, bundle.temperature, device=device)
