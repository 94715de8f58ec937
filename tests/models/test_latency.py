"""Inference speed measurement (fetalscope.models.latency), shared by benchmarks/bench_inference.py and the
bundle recipes, on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fetalscope.errors import BadInputError
from fetalscope.models import create_model
from fetalscope.models.bundle import save_bundle
from fetalscope.models.latency import (
    EAGER,
    ORT,
    ORT_INT8,
    benchmark_inputs,
    bundle_latency,
    compare_runtimes,
    runtime_predictors,
    synthetic_images,
    time_interleaved,
)
from fetalscope.models.quantize import quantize_bundle

SIZE = 32


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, input_size=SIZE)
    return save_bundle(model, tmp_path_factory.mktemp("lat") / "tiny", {"classes": ["a", "b", "c"]}, onnx=True)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lat_images")
    paths = []
    for i, img in enumerate(synthetic_images(3, seed=1)):
        paths.append(folder / f"im{i}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def test_time_interleaved_calls_every_function_in_turn():
    calls: list[str] = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, n=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed ones, alternating
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_benchmark_inputs_cycle_through_images(image_paths, tmp_path):
    from fetalscope.models import get_spec

    cfg = get_spec("small_cnn").preprocess.replace(input_size=(SIZE, SIZE))
    x = benchmark_inputs(image_paths, 5, cfg)
    assert x.shape == (5, 3, SIZE, SIZE)
    torch.testing.assert_close(x[3], x[0])  # 3 images taken in turn
    assert benchmark_inputs([], 2, cfg).shape == (2, 3, SIZE, SIZE)  # synthetic fallback
    with pytest.raises(BadInputError, match="no images"):
        benchmark_inputs([tmp_path], 2, cfg)  # an empty folder


def test_bundle_latency_on_a_tiny_model(tiny_bundle, image_paths):
    before = torch.get_num_threads()
    result = bundle_latency(tiny_bundle, image_paths, threads=1, runs=4, batch=4, batch_runs=2, warmup=1)
    assert torch.get_num_threads() == before  # the thread count is restored
    assert result["threads"] == 1 and result["runs"] == 4 and result["batch"] == 4
    assert list(result["results"]) == [EAGER, ORT]  # int8 only when asked for and present
    for r in result["results"].values():
        assert 0 < r["batch1_p50_ms"] <= r["batch1_p95_ms"]
        assert r["batch1_mean_ms"] > 0 and r["batch4_images_per_s"] > 0
    assert result["speedup_batch1_p50"] == pytest.approx(
        result["results"][EAGER]["batch1_p50_ms"] / result["results"][ORT]["batch1_p50_ms"])
    assert result["speedup_batch1_p50_vs_eager"] == {ORT: result["speedup_batch1_p50"]}
    assert set(result["speedup_batch4_vs_eager"]) == {ORT}
    assert result["max_abs_prob_diff"] <= 1e-4  # the same model on both runtimes
    assert result["parity"][ORT]["vs_eager"]["top1_agreement"] == 1.0
    assert len(result["load_average_1min"]) == 2
    assert {"cpu", "python", "torch", "onnxruntime"} <= set(result["machine"])


def test_compare_runtimes_with_int8(tiny_bundle, image_paths):
    from fetalscope.models.bundle import load_bundle

    bundle = load_bundle(tiny_bundle)
    quantize_bundle(bundle, image_paths)
    predictors = runtime_predictors(bundle.model, bundle.onnx_path, bundle.int8_onnx_path, threads=1)
    x = benchmark_inputs(image_paths, 3, bundle.preprocess).numpy()
    result = compare_runtimes(predictors, x, runs=2, batch_runs=1, warmup=0)
    assert list(result["results"]) == [EAGER, ORT, ORT_INT8]
    assert set(result["parity"][ORT_INT8]) == {"vs_eager", "vs_onnxruntime"}
    assert set(result["speedup_batch3_vs_eager"]) == {ORT, ORT_INT8}
    with pytest.raises(BadInputError, match="N x C x H x W"):
        compare_runtimes(predictors, np.zeros((3, SIZE, SIZE), np.float32), runs=1)
