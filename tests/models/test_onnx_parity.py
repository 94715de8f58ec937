"""The one ONNX parity check (fetalscope.models.onnx_export.check_parity) and its use by ``fetalscope export``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fetalscope.models import create_model
from fetalscope.models.bundle import load_bundle, save_bundle
from fetalscope.models.onnx_export import PARITY_TOLERANCE, ParityResult, check_parity, export_onnx

from .test_runtime import make_realistic

SIZE = 48
CLASSES = ["a", "b", "c", "d"]


def _model(seed: int, num_classes: int = len(CLASSES)) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("small_cnn", num_classes=num_classes, input_size=SIZE)
    make_realistic(model, torch.randn(8, 3, SIZE, SIZE))
    return model


@pytest.fixture()
def tiny_bundle(tmp_path):
    return save_bundle(_model(0), tmp_path / "tiny", {"name": "tiny-parity", "classes": CLASSES}, onnx=True)


def test_parity_passes_for_the_bundles_own_onnx_twin(tiny_bundle):
    result = check_parity(tiny_bundle)  # default: 4 seeded random inputs of the bundle's shape
    assert isinstance(result, ParityResult)
    assert result.passed and result.problem is None
    assert result.n_images == 4 and result.tolerance == PARITY_TOLERANCE == 1e-4
    assert 0 <= result.max_abs_prob_diff <= PARITY_TOLERANCE and result.same_top1
    assert result.onnx_path == tiny_bundle / "model.onnx"
    # the card record keeps exactly the four fields the SonoNet cards have always had
    assert list(result.to_dict()) == ["max_abs_prob_diff", "n_images", "tolerance", "same_top1"]
    json.dumps(result.to_dict())
    # given inputs (a tensor or an array), a loaded bundle instead of a path
    x = torch.randn(6, 3, SIZE, SIZE)
    again = check_parity(load_bundle(tiny_bundle), x, intra_op_threads=1)
    assert again.passed and again.n_images == 6
    assert check_parity(tiny_bundle, x.numpy()).max_abs_prob_diff == pytest.approx(again.max_abs_prob_diff)
    assert "ok" in again.describe()


def test_parity_fails_clearly_on_a_wrong_onnx_file(tiny_bundle, tmp_path):
    wrong = export_onnx(_model(1), tmp_path / "other.onnx")  # same shape, other weights
    result = check_parity(tiny_bundle, onnx_path=wrong)
    assert not result.passed
    assert result.max_abs_prob_diff > PARITY_TOLERANCE and result.problem is None
    assert result.onnx_path == wrong
    assert "FAILED" in result.describe() and "above the tolerance" in result.describe()

    other_classes = export_onnx(_model(2, num_classes=3), tmp_path / "three.onnx")  # another output shape
    result = check_parity(tiny_bundle, onnx_path=other_classes)
    assert not result.passed and result.max_abs_prob_diff == float("inf")
    assert "output shapes differ" in result.problem and result.to_dict()["problem"] == result.problem
    assert "FAILED (output shapes differ" in result.describe()


def test_parity_fails_on_nan(tiny_bundle):
    r = ParityResult(float("nan"), 4, PARITY_TOLERANCE, False, tiny_bundle / "model.onnx")
    assert not r.passed  # a NaN difference is never "within the tolerance"


def test_export_verb_uses_the_parity_check(tiny_bundle, tmp_path, monkeypatch):
    from fetalscope.cli import app
    from fetalscope.models import onnx_export

    runner = CliRunner()
    out = tmp_path / "exported.onnx"
    result = runner.invoke(app, ["export", str(tiny_bundle), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "on 4 random inputs" in result.output
    assert float(result.output.split("=")[-1].split()[0]) <= PARITY_TOLERANCE

    # an exporter that writes a different model: the verb reports the difference and exits 1
    wrong_model = _model(1)
    monkeypatch.setattr(onnx_export, "export_onnx", lambda bundle, output: export_onnx(wrong_model, output))
    result = runner.invoke(app, ["export", str(tiny_bundle), "--output", str(out)])
    assert result.exit_code == 1, result.output
    diff = float(result.output.split("=")[-1].split()[0])
    assert diff > PARITY_TOLERANCE and np.isfinite(diff)
