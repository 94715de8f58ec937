"""Write a classifier's ONNX graph: the one tracing step under :func:`fetalscope.models.bundle.save_bundle`
(``onnx=True``) and :func:`fetalscope.models.onnx_export.export_onnx`.

Uses the TorchScript-based exporter (``dynamo=False``): it needs no extra packages and gives a static
graph that ONNX Runtime optimises well. Input name ``input`` (N x C x H x W float32), output ``logits``
(then the model's named extra outputs, e.g. SonoNet's 14 planes). TF-style "SAME" convolutions (timm
``Conv2dSame``, in EfficientNet-Lite) compute their padding from the input shape at run time; for export
they are frozen to the static padding of the export input size, so the graph holds plain Pad + Conv (which
ONNX Runtime fuses) instead of shape arithmetic.

:func:`store_initializers` rewrites any written graph to keep its large weights as float16 or int8 (the
segmentation ensembles use it to stay under the repository's 25 MB per file).

This module knows nothing of bundles (``bundle.py`` imports it, never the other way round).
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fetalscope.models.weight_storage import CLIP_RATIOS, MIN_ELEMENTS, check_storage, quantize_int8

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def freeze_same_padding(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose timm ``Conv2dSame`` layers use the fixed padding of ``example``'s size
    (the model itself is untouched; returns ``model`` when it has no such layers)."""
    try:
        from timm.layers.conv2d_same import Conv2dSame
    except ImportError:  # pragma: no cover - timm is a dependency
        return model
    if not any(isinstance(m, Conv2dSame) for m in model.modules()):
        return model
    frozen = copy.deepcopy(model)
    sizes: dict[nn.Module, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: sizes.__setitem__(mod, tuple(args[0].shape[-2:])))
             for m in frozen.modules() if isinstance(m, Conv2dSame)]
    with torch.no_grad():
        frozen(example)
    for h in hooks:
        h.remove()
    for conv, (ih, iw) in sizes.items():
        kh, kw = conv.weight.shape[-2:]
        top, bottom = _same_pad(ih, kh, conv.stride[0], conv.dilation[0])
        left, right = _same_pad(iw, kw, conv.stride[1], conv.dilation[1])

        def forward(x: torch.Tensor, conv: nn.Conv2d = conv, pad=(left, right, top, bottom)) -> torch.Tensor:
            if pad[0] == pad[1] and pad[2] == pad[3]:
                return F.conv2d(x, conv.weight, conv.bias, conv.stride, (pad[2], pad[0]), conv.dilation,
                                conv.groups)
            return F.conv2d(F.pad(x, pad), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)

        conv.forward = forward  # type: ignore[method-assign]
    return frozen


class _WithExtras(nn.Module):
    """Exports ``logits`` followed by the model's named extra outputs (e.g. SonoNet's 14 planes)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, extras = self.model.forward_with_extras(x)
        return (logits, *(extras[n] for n in self.names))


def write_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int], channels: int,
               opset: int = 17, dynamic_batch: bool = True) -> Path:
    """Trace ``model`` (in eval mode; its train/eval state is restored) on a ``1 x channels x H x W``
    input into ``path``, check it with ``onnx.checker`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dummy = torch.zeros(1, channels, *input_size, device=device)
    extras = tuple(model.extra_output_names()) if hasattr(model, "extra_output_names") else ()
    output_names = [OUTPUT_NAME, *extras]
    dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *output_names]} if dynamic_batch else None
    exported: nn.Module = _WithExtras(model, extras) if extras else model
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript tracer / deprecation chatter
            torch.onnx.export(freeze_same_padding(exported, dummy), (dummy,), str(path), dynamo=False,
                              opset_version=opset, input_names=[INPUT_NAME], output_names=output_names,
                              dynamic_axes=dynamic_axes, do_constant_folding=True)
    finally:
        model.train(was_training)
    import onnx

    onnx.checker.check_model(str(path))
    return path


def store_initializers(path: str | Path, storage: str, min_elements: int = MIN_ELEMENTS,
                       int8_layers: str | None = None, on_int8_grid: bool = False) -> Path:
    """Rewrite the ONNX file at ``path`` so that its float32 initializers of at least ``min_elements`` values
    are stored as ``storage`` (:mod:`fetalscope.models.weight_storage`), turned back into float32 at the start
    of the graph (ONNX Runtime folds these constant nodes when the session starts, so it computes in float32):

    - ``float16``: each becomes a float16 initializer and a ``Cast``;
    - ``int8``: weight matrices (two or more dimensions) become int8 with a scale per group of values of an
      output channel (:func:`fetalscope.models.weight_storage.quantize_int8`), ``Cast``, ``Reshape`` into the
      groups, ``Mul`` and ``Reshape`` back; the other large initializers float16 as above. ``int8_layers`` (a
      regular expression searched in the names of the nodes that use an initializer, e.g.
      ``/encoder/blocks.3/blocks.3.0/conv_pw/Conv``) limits int8 to the layers it matches.

    ``float32`` leaves the file as it is."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_storage(storage)
    if storage == "float32":
        return Path(path)
    proto = onnx.load(str(path))
    graph = proto.graph
    users: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node.name)
    pattern = re.compile(int8_layers) if int8_layers else None
    kept, nodes = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init)
        if storage == "int8" and values.ndim >= 2 and (
                pattern is None or any(pattern.search(user) for user in users.get(init.name, []))):
            q, scale = quantize_int8(torch.from_numpy(np.array(values, dtype=np.float32)),
                                     ratios=(1.0,) if on_int8_grid else CLIP_RATIOS)
            names = {part: f"{init.name}__{part}" for part in ("int8", "scale16", "scale", "grouped", "float",
                                                                 "scaled", "group_shape", "shape")}
            kept += [numpy_helper.from_array(q.numpy(), names["int8"]),
                     numpy_helper.from_array(scale.numpy()[..., None], names["scale16"]),
                     numpy_helper.from_array(np.array([*scale.shape, -1], dtype=np.int64), names["group_shape"]),
                     numpy_helper.from_array(np.array(values.shape, dtype=np.int64), names["shape"])]
            nodes += [helper.make_node("Cast", [names["int8"]], [names["float"]], to=TensorProto.FLOAT,
                                       name=f"{init.name}__to_float32"),
                      helper.make_node("Cast", [names["scale16"]], [names["scale"]], to=TensorProto.FLOAT,
                                       name=f"{init.name}__scale_to_float32"),
                      helper.make_node("Reshape", [names["float"], names["group_shape"]], [names["grouped"]],
                                       name=f"{init.name}__groups"),
                      helper.make_node("Mul", [names["grouped"], names["scale"]], [names["scaled"]],
                                       name=f"{init.name}__scaled"),
                      helper.make_node("Reshape", [names["scaled"], names["shape"]], [init.name],
                                       name=f"{init.name}__as_weight")]
            continue
        half_name = f"{init.name}__float16"
        kept.append(numpy_helper.from_array(values.astype(np.float16), half_name))
        nodes.append(helper.make_node("Cast", [half_name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_float32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes += list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return Path(path)
