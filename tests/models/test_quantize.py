"""Static int8 ONNX quantisation (fetalscope.models.quantize) and the opt-in ``onnx-int8`` runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models import create_model
from fetalscope.models.bundle import ONNX_INT8, load_bundle, save_bundle
from fetalscope.models.onnx_export import export_onnx
from fetalscope.models.quantize import (
    QuantizeSettings,
    calibration_paths,
    compare_probabilities,
    file_sha256,
    preprocess_images,
    quantize_bundle,
    quantize_onnx,
)
from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor, make_predictor

from .test_runtime import make_realistic

SIZE = 64


def _write_phantoms(folder: Path, n: int, seed: int) -> list[Path]:
    from fetalscope.data.phantoms import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"ph{i:02d}.png"
        Image.fromarray(make_phantom(PLANE_CLASSES[i % 6], rng, (96, 112))).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("q8_images")
    return {"calibration": _write_phantoms(root / "cal", 24, 0), "held_out": _write_phantoms(root / "test", 24, 1)}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, images) -> Path:
    """small_cnn (6 classes, 64 px) with BatchNorm statistics from the calibration phantoms and a head
    scaled so that its logits spread (int8 agreement on near-uniform outputs would prove nothing)."""
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=6, input_size=SIZE)
    x = torch.from_numpy(preprocess_images(images["calibration"], model.spec.preprocess))
    make_realistic(model, x, target_std=3.0)
    folder = save_bundle(model, tmp_path_factory.mktemp("q8_bundle") / "tiny",
                         {"name": "tiny-q8", "classes": list(PLANE_CLASSES)})
    export_onnx(load_bundle(folder))
    return folder


def test_quantised_tiny_model_runs_and_agrees_with_fp32(tiny_bundle, images):
    bundle = load_bundle(tiny_bundle)
    record = quantize_bundle(bundle, images["calibration"])
    assert record["file"] == ONNX_INT8 and record["n_calibration_images"] == 24
    assert record["quantised_from"]["sha256"] == file_sha256(tiny_bundle / "model.onnx")
    graph = onnx.load(str(tiny_bundle / ONNX_INT8)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3  # conv 2-4 quantised; conv 1 and the classifier stay float
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)

    bundle = load_bundle(tiny_bundle)
    predictor = make_predictor(bundle, runtime="onnx-int8")
    assert isinstance(predictor, OnnxInt8Predictor)
    x = preprocess_images(images["held_out"], bundle.preprocess)
    p8 = predictor.predict_proba(x)
    assert p8.shape == (24, 6)
    np.testing.assert_allclose(p8.sum(1), 1.0, atol=1e-5)
    p32 = make_predictor(bundle, runtime="onnx").predict_proba(x)
    assert p32.max(1).mean() > 0.4  # outputs are far from uniform, so agreement means something
    agree = compare_probabilities(p32, p8)
    assert agree["top1_agreement"] >= 0.9, agree
    assert agree["mean_abs_prob_diff"] < 0.02, agree


def test_auto_never_picks_int8_and_missing_int8_is_a_clear_error(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle)
    auto = make_predictor(bundle, runtime="auto")
    assert type(auto) is OnnxPredictor and auto.path.name == "model.onnx"
    bare = save_bundle(create_model("small_cnn", num_classes=6, input_size=SIZE), tmp_path / "bare",
                       {"classes": list(PLANE_CLASSES)})
    export_onnx(load_bundle(bare))
    with pytest.raises(MissingWeightsError, match="model.int8.onnx"):
        make_predictor(load_bundle(bare), runtime="onnx-int8")
    with pytest.raises(BadInputError, match="onnx-int8"):
        make_predictor(load_bundle(bare), runtime="int8")
    with pytest.raises(MissingWeightsError, match="model.onnx"):  # nothing to quantise from
        (bare / "model.onnx").unlink()
        quantize_bundle(load_bundle(bare), [], calibration=np.zeros((2, 3, SIZE, SIZE), np.float32))


def test_quantize_onnx_rejects_bad_calibration(tiny_bundle, tmp_path):
    with pytest.raises(BadInputError, match="N x C x H x W"):
        quantize_onnx(tiny_bundle / "model.onnx", tmp_path / "q.onnx", np.zeros((3, SIZE, SIZE), np.float32))
    with pytest.raises(BadInputError, match="qdq or qoperator"):
        quantize_onnx(tiny_bundle / "model.onnx", tmp_path / "q.onnx", np.zeros((1, 3, SIZE, SIZE), np.float32),
                      QuantizeSettings(fmt="int4"))  # type: ignore[arg-type]


def test_calibration_paths_thin_evenly(images, tmp_path):
    folder = images["calibration"][0].parent
    assert calibration_paths([folder], None) == sorted(images["calibration"])
    picked = calibration_paths([folder], 5)
    assert len(picked) == 5 and picked[0] == sorted(images["calibration"])[0]
    assert picked[-1] == sorted(images["calibration"])[-1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError):
        calibration_paths([tmp_path / "empty"], 5)


def test_cli_export_int8_keeps_fp32_and_writes_int8(tiny_bundle, images, tmp_path):
    from fetalscope.cli import app

    runner = CliRunner()
    before = file_sha256(tiny_bundle / "model.onnx")
    res = runner.invoke(app, ["export", str(tiny_bundle), "--int8"])
    assert res.exit_code == 2 and "--calibration" in res.output
    (tiny_bundle / ONNX_INT8).unlink(missing_ok=True)
    res = runner.invoke(app, ["export", str(tiny_bundle), "--int8", "--calibration",
                              str(images["calibration"][0].parent), "--calibration-limit", "12"])
    assert res.exit_code == 0, res.output
    assert "top-1 agreement" in res.output and "12 image(s)" in res.output
    assert (tiny_bundle / ONNX_INT8).is_file()
    assert file_sha256(tiny_bundle / "model.onnx") == before  # the fp32 parity model is untouched


# ------------------------------------------------------------------ the shipped sononet-planes int8 model
@pytest.fixture(scope="module")
def sononet_planes():
    bundle = load_bundle("sononet-planes")
    if bundle.int8_onnx_path is None:
        pytest.skip("sononet-planes has no model.int8.onnx (run scripts/quantize_bundle.py)")
    return bundle


def test_shipped_int8_is_current_small_and_measured(sononet_planes):
    card = sononet_planes.card["int8"]
    path = sononet_planes.int8_onnx_path
    assert path.stat().st_size < 25e6 and card["size_bytes"] == path.stat().st_size
    assert card["sha256"] == file_sha256(path)
    # quantised from the model.onnx that ships now (a rebuilt fp32 model needs a new int8 twin)
    assert card["quantised_from"]["sha256"] == file_sha256(sononet_planes.onnx_path)
    fid = card["fidelity_test_split"]
    assert fid["n_images"] > 500 and fid["top1_agreement"] >= 0.98
    assert abs(fid["accuracy_fp32"] - sononet_planes.card["metrics"]["test_accuracy"]) < 1e-9


def test_shipped_int8_runs_int8_convolutions(sononet_planes, tmp_path):
    """Relu folded into each convolution: ONNX Runtime chains QLinearConv in int8 instead of
    dequantising and requantising around every layer (slower and less accurate)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(sononet_planes.int8_onnx_path), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    assert ops.count("QLinearConv") >= 12
    assert ops.count("QuantizeLinear") <= 2 and ops.count("DequantizeLinear") <= 2


def test_shipped_int8_agrees_with_fp32_on_real_images(sononet_planes, shared_data):
    calibrated = set(json.loads((sononet_planes.path / "int8_calibration.json").read_text())
                     ["shared_data_dir_relative"])
    hc18 = sorted((shared_data / "hc18" / "training_set").glob("*_HC.png"))
    tv = sorted((shared_data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png"))
    thorax = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))
    picked = [p for p in hc18[::60] + tv[::12] + thorax[::50]
              if str(p.relative_to(shared_data)) not in calibrated][:12]
    assert len(picked) >= 8
    x = preprocess_images(picked, sononet_planes.preprocess)
    p32 = make_predictor(sononet_planes, runtime="onnx").predict_proba(x)
    p8 = make_predictor(sononet_planes, runtime="onnx-int8").predict_proba(x)
    np.testing.assert_allclose(p8.sum(1), 1.0, atol=1e-5)
    agree = compare_probabilities(p32, p8)
    assert agree["top1_disagreements"] <= 1, agree
    assert agree["max_abs_prob_diff"] < 0.15 and agree["mean_abs_prob_diff"] < 0.02, agree


def test_secondary_models_follow_the_main_runtime_only_when_they_can(tmp_path):
    from fetalscope.models.runtime import secondary_runtime

    bare = load_bundle(save_bundle(create_model("small_cnn", num_classes=2, input_size=SIZE), tmp_path / "bare",
                                   {"name": "bare", "classes": ["a", "b"]}))
    assert secondary_runtime(bare, "torch") == "torch"
    assert secondary_runtime(bare, "onnx") == "auto" and secondary_runtime(bare, "onnx-int8") == "auto"
    export_onnx(bare)
    assert secondary_runtime(bare, "onnx") == "onnx" and secondary_runtime(bare, "onnx-int8") == "auto"
