"""ONNX export and the Predictor face: ONNX Runtime agrees with PyTorch eager for every architecture."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models import create_model
from fetalscope.models.bundle import load_bundle, save_bundle
from fetalscope.models.onnx_export import export_onnx
from fetalscope.models.runtime import OnnxPredictor, TorchPredictor, make_predictor, softmax

ARCHS = [
    ("small_cnn", {}),
    ("resnet18", {}),
    ("efficientnet_lite0", {}),
    ("efficientnet_lite1", {}),
    ("efficientnet_lite2", {}),
    ("fetalnet", {}),
    ("fetalnet", {"se": False}),
]


PARITY_SIZE = 96  # small enough for 2 CPU cores; every op of the full-size graph is still exercised


def make_realistic(model: torch.nn.Module, x: torch.Tensor, target_std: float = 4.0) -> None:
    """Calibrate BatchNorm statistics on ``x`` and rescale the last Linear so that logits depend on the
    input and are far from uniform; parity on saturated or near-uniform outputs would prove nothing."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    linear = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        scale = target_std / max(model(x).std().item(), 1e-6)
        linear.weight.mul_(scale)
        linear.bias.mul_(scale)


@pytest.mark.parametrize(("name", "kwargs"), ARCHS, ids=[f"{n}{'-' + str(k) if k else ''}" for n, k in ARCHS])
def test_onnx_runtime_matches_eager(tmp_path, name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **kwargs).eval()
    x = torch.randn(4, 3, PARITY_SIZE, PARITY_SIZE)
    make_realistic(model, x)
    folder = save_bundle(model, tmp_path / name, {"classes": list("abcde"), "temperature": 1.0})
    export_onnx(model, folder / "model.onnx", input_size=PARITY_SIZE)
    ops = {node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node}
    assert "Shape" not in ops  # static graph (TF "SAME" padding frozen for EfficientNet-Lite)
    bundle = load_bundle(folder)
    eager = make_predictor(bundle, "torch")
    ort = make_predictor(bundle, "auto")
    assert isinstance(eager, TorchPredictor) and isinstance(ort, OnnxPredictor)
    p_eager, p_ort = eager.predict_proba(x), ort.predict_proba(x)  # batch 4: dynamic batch axis works
    assert p_eager.shape == (4, 5)
    assert p_eager.max() > 0.5, "probabilities too flat for a meaningful parity check"
    assert np.abs(p_eager[0] - p_eager[1]).max() > 1e-3, "outputs do not depend on the input"
    assert np.abs(p_eager - p_ort).max() <= 1e-4
    np.testing.assert_allclose(ort.predict_logits(x), eager.predict_logits(x), atol=1e-3, rtol=1e-3)


def test_temperature_and_input_forms(tmp_path):
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, input_size=32)
    folder = save_bundle(model, tmp_path / "t", {"classes": ["a", "b", "c"], "temperature": 2.0})
    bundle = load_bundle(folder)
    pred = make_predictor(bundle)  # no model.onnx -> torch
    assert isinstance(pred, TorchPredictor)
    x = torch.randn(4, 3, 32, 32)
    logits = pred.predict_logits(x)
    np.testing.assert_allclose(pred.predict_proba(x), softmax(logits / 2.0), atol=1e-6)
    np.testing.assert_allclose(pred.predict_proba(x).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pred.predict_logits(x.numpy()[1]), logits[1:2], atol=1e-5)  # one C x H x W
    with pytest.raises(BadInputError, match="N x C x H x W"):
        pred.predict_logits(np.zeros((32, 32), dtype=np.float32))
    with pytest.raises(MissingWeightsError, match="no model.onnx"):
        make_predictor(bundle, "onnx")
    with pytest.raises(BadInputError):
        make_predictor(bundle, "tensorrt")  # type: ignore[arg-type]


def test_export_bare_model_and_bundle(tmp_path):
    model = create_model("small_cnn", num_classes=2, input_size=(32, 48), in_chans=1)
    path = export_onnx(model, tmp_path / "m.onnx", opset=13, dynamic_batch=False)
    graph = onnx.load(str(path)).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 32, 48]
    with pytest.raises(BadInputError, match="output path"):
        export_onnx(model)
    folder = save_bundle(model, tmp_path / "b", {"classes": ["x", "y"]})
    assert export_onnx(load_bundle(folder)) == folder / "model.onnx"
    assert load_bundle(folder).onnx_path == folder / "model.onnx"
