"""ImageNet MobileNetV2 weights from the quantised TFLite file in shared/weights, for torchvision.

The file (``mobilenet_v2_imagenet_tflite/mobilenet_v2_1.0_224_quant.tflite``) is a TF-slim
MobileNetV2 with BatchNorm folded into the convolutions and uint8 weights. Conversion:

1. parse it with the pure-Python ``tflite`` package; take the CONV_2D / DEPTHWISE_CONV_2D operators in
   graph order (52 feature convolutions + the 1x1 logits convolution);
2. dequantise each weight and bias, ``(q - zero_point) * scale`` (per tensor or per channel);
3. transpose to PyTorch layout (OHWI -> OIHW, depthwise 1HWC -> C1HW);
4. put each folded bias into the BatchNorm that follows the convolution and make that BatchNorm the
   identity (weight 1, running mean 0, running var ``1 - eps``);
5. drop class 0 (background) of the 1001-way logits.

The converted state dict is cached as safetensors under ``cache_dir()/weights`` (keyed by the
file's SHA-256), so the flatbuffer is parsed once per machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models import mobilenet_v2

from fetalscope import config
from fetalscope.errors import MissingWeightsError
from fetalscope.models.weights.common import file_sha256, shared_weight_file

RELATIVE_PATH = "mobilenet_v2_imagenet_tflite/mobilenet_v2_1.0_224_quant.tflite"
LABELS_RELATIVE_PATH = "mobilenet_v2_imagenet_tflite/imagenet_labels.txt"
LICENCE = "Apache-2.0 (weights trained on ImageNet: ImageNet research-use terms apply)"
SOURCE = "google-coral/test_data@104342d mobilenet_v2_1.0_224_quant.tflite"


def tflite_path() -> Path:
    """The TFLite file, or :class:`MissingWeightsError` naming where it must be."""
    return shared_weight_file(RELATIVE_PATH, "MobileNetV2 ImageNet TFLite weights")


def _tensor_array(model, graph, index: int) -> np.ndarray:  # noqa: ANN001 - flatbuffer objects
    """Dequantised float32 contents of constant tensor ``index``."""
    import tflite

    tensor = graph.Tensors(index)
    shape = tuple(int(s) for s in tensor.ShapeAsNumpy())
    dtypes = {tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8,
              tflite.TensorType.INT32: np.int32, tflite.TensorType.FLOAT32: np.float32}
    if tensor.Type() not in dtypes:
        raise MissingWeightsError(
            f"{tflite_path()}: tensor {tensor.Name()!r} has unsupported type {tensor.Type()}")
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    values = np.frombuffer(raw.tobytes(), dtype=dtypes[tensor.Type()]).reshape(shape).astype(np.float64)
    quant = tensor.Quantization()
    if tensor.Type() != tflite.TensorType.FLOAT32 and quant is not None and quant.ScaleLength():
        scale = quant.ScaleAsNumpy().astype(np.float64)
        zero = (quant.ZeroPointAsNumpy().astype(np.float64) if quant.ZeroPointLength()
                else np.zeros_like(scale))
        if scale.size > 1:  # per-channel along the quantised dimension
            axis = quant.QuantizedDimension()
            bshape = [1] * values.ndim
            bshape[axis] = -1
            scale, zero = scale.reshape(bshape), zero.reshape(bshape)
        values = (values - zero) * scale
    return values.astype(np.float32)


def read_tflite_convolutions(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(kind, weight OIHW, bias)`` for every CONV_2D / DEPTHWISE_CONV_2D operator, in graph order."""
    import tflite

    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    convs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin not in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D):
            continue
        inputs = op.InputsAsNumpy()
        weight = _tensor_array(model, graph, int(inputs[1]))
        bias = _tensor_array(model, graph, int(inputs[2]))
        if builtin == tflite.BuiltinOperator.CONV_2D:
            convs.append(("conv", weight.transpose(0, 3, 1, 2), bias))  # OHWI -> OIHW
        else:
            convs.append(("depthwise", weight.transpose(3, 0, 1, 2), bias))  # 1HWC -> C1HW
    return convs


def convert_tflite(path: Path) -> dict[str, torch.Tensor]:
    """State dict for torchvision ``mobilenet_v2(num_classes=1000)`` from the TFLite file."""
    convs = read_tflite_convolutions(path)
    net = mobilenet_v2(weights=None, num_classes=1000)
    feature_convs = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(feature_convs) + 1:
        raise MissingWeightsError(
            f"{path}: found {len(convs)} convolutions, expected {len(feature_convs) + 1} "
            "(MobileNetV2 1.0/224); this is not the expected TFLite file."
        )
    modules = dict(net.named_modules())
    state = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    for (kind, weight, bias), (name, conv) in zip(convs[:-1], feature_convs, strict=True):
        if tuple(weight.shape) != tuple(conv.weight.shape) or (kind == "depthwise") != (conv.groups > 1):
            raise MissingWeightsError(
                f"{path}: {kind} weight of shape {weight.shape} does not fit torchvision {name} "
                f"{tuple(conv.weight.shape)}; this is not the expected TFLite file."
            )
        out[f"{name}.weight"] = torch.from_numpy(weight.copy())
        # torchvision: features.i(.conv.j).0 is the conv, the next index is its BatchNorm
        prefix, _, idx = name.rpartition(".")
        bn_name = f"{prefix}.{int(idx) + 1}" if prefix else str(int(idx) + 1)
        bn = modules[bn_name]
        if not isinstance(bn, nn.BatchNorm2d):
            raise MissingWeightsError(f"{path}: expected a BatchNorm after {name}, found {type(bn).__name__}")
        c = bias.shape[0]
        out[f"{bn_name}.weight"] = torch.ones(c)
        out[f"{bn_name}.bias"] = torch.from_numpy(bias.copy())
        out[f"{bn_name}.running_mean"] = torch.zeros(c)
        out[f"{bn_name}.running_var"] = torch.full((c,), 1.0 - bn.eps)
        out[f"{bn_name}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    kind, weight, bias = convs[-1]
    if weight.shape[:2] != (1001, 1280):
        raise MissingWeightsError(
            f"{path}: logits layer has shape {weight.shape}, expected (1001, 1280, 1, 1)")
    out["classifier.1.weight"] = torch.from_numpy(weight[1:, :, 0, 0].copy())  # drop class 0 (background)
    out["classifier.1.bias"] = torch.from_numpy(bias[1:].copy())
    missing = set(state) - set(out)
    if missing:
        raise MissingWeightsError(f"{path}: conversion left {sorted(missing)[:5]} unset")
    return out


def cached_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Converted ImageNet MobileNetV2 state dict, read from the safetensors cache when present."""
    path = path or tflite_path()
    cache = config.cache_dir() / "weights" / f"mobilenet_v2_tflite_{file_sha256(path)[:16]}.safetensors"
    if cache.is_file():
        return load_file(cache)
    state = convert_tflite(path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata={"source": str(path)})
    tmp.replace(cache)
    return state


def imagenet_mobilenet_v2() -> nn.Module:
    """torchvision ``mobilenet_v2`` with the TFLite ImageNet weights: 1000 classes (ImageNet order,
    background dropped), inputs RGB in [-1, 1]. Eval mode."""
    net = mobilenet_v2(weights=None, num_classes=1000)
    net.load_state_dict(cached_state_dict())
    return net.eval()


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names (background dropped) from the file beside the TFLite model."""
    path = shared_weight_file(LABELS_RELATIVE_PATH, "ImageNet label list")
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[1:] if lines and lines[0].strip().lower() == "background" else lines
