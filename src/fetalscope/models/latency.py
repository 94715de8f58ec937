"""Inference speed of a classifier on its runtimes (PyTorch eager, ONNX Runtime fp32, ONNX Runtime int8),
measured the one way ``benchmarks/bench_inference.py`` and the bundle recipes share.

On the same inputs: batch-1 latency (p50 / p95 / mean over ``runs`` calls, the runtimes called in turn so
that background load on a shared machine hits all alike) and batch-N throughput (images/s, median of
``batch_runs`` calls), each runtime's speed-up over eager and how far its probabilities are from eager's
(int8 also from fp32 ONNX).

    preds = runtime_predictors(model, onnx_path, threads=1)
    result = compare_runtimes(preds, inputs, runs=30)      # inputs: N x C x H x W, preprocessed
    result["results"]["onnxruntime"]["batch1_p50_ms"]
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import BadInputError
from fetalscope.models.bundle import Bundle, load_bundle
from fetalscope.models.quantize import compare_probabilities
from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor, Predictor, TorchPredictor

EAGER, ORT, ORT_INT8 = "torch_eager", "onnxruntime", "onnxruntime_int8"
RUNTIME_LABELS = {EAGER: "PyTorch eager", ORT: "ONNX Runtime fp32", ORT_INT8: "ONNX Runtime int8"}


def synthetic_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` 300 x 400 RGB uint8 images: a bright speckled fan on black, seeded."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400]
    angle = np.arctan2(xx - 200, yy + 20)
    radius = np.hypot(xx - 200, yy + 20)
    fan = (np.abs(angle) < 0.6) & (radius < 310)
    out = []
    for _ in range(n):
        speckle = rng.gamma(2.0, 40.0, size=(300, 400)) * fan
        grey = np.clip(speckle, 0, 255).astype(np.uint8)
        out.append(np.repeat(grey[..., None], 3, axis=2))
    return out


def benchmark_inputs(paths: Sequence[str | Path], n: int, cfg: PreprocessConfig) -> torch.Tensor:
    """``n`` preprocessed inputs: the images under ``paths`` (files/folders) taken in turn until there are
    ``n``, or :func:`synthetic_images` when ``paths`` is empty."""
    if paths:
        from fetalscope.imaging.loader import iter_image_paths, load_image

        files = list(iter_image_paths(list(paths)))
        if not files:
            raise BadInputError(f"no images found in {', '.join(map(str, paths))}")
        images = [load_image(files[i % len(files)]) for i in range(n)]
    else:
        images = synthetic_images(n)
    return torch.stack([to_tensor(img, cfg) for img in images])


def time_interleaved(fns: dict[str, Callable[[], object]], n: int, warmup: int) -> dict[str, list[float]]:
    """Call each function ``n`` times, alternating between them so that background load on a shared
    machine hits every runtime alike; returns the wall times (s) per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def measure(predictors: dict[str, Predictor], one: np.ndarray, batch: np.ndarray, runs: int,
            batch_runs: int, warmup: int) -> dict[str, dict[str, float]]:
    """Per predictor: batch-1 p50 / p95 / mean (ms) over ``runs`` calls on ``one`` and batch throughput
    (``batch<N>_images_per_s``, median of ``batch_runs`` calls on ``batch``)."""
    lat = time_interleaved({k: (lambda p=p: p.predict_logits(one)) for k, p in predictors.items()},
                           runs, warmup)
    thr = time_interleaved({k: (lambda p=p: p.predict_logits(batch)) for k, p in predictors.items()},
                           batch_runs, 1)
    return {
        name: {
            "batch1_p50_ms": 1000 * statistics.median(lat[name]),
            "batch1_p95_ms": 1000 * float(np.percentile(lat[name], 95)),
            "batch1_mean_ms": 1000 * statistics.fmean(lat[name]),
            f"batch{len(batch)}_images_per_s": len(batch) / statistics.median(thr[name]),
        }
        for name in predictors
    }


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Max / mean |dp| and top-1 agreement of ``other`` against ``reference`` (N x K probabilities)."""
    c = compare_probabilities(reference, other)
    return {k: c[k] for k in ("max_abs_prob_diff", "mean_abs_prob_diff", "top1_agreement")}


def machine_info() -> dict[str, str]:
    """CPU, Python, torch and onnxruntime versions (what a latency number depends on)."""
    import onnxruntime

    return {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``threads`` inside the block (unchanged for ``None``)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def runtime_predictors(model: nn.Module, onnx_path: str | Path, int8_path: str | Path | None = None, *,
                       threads: int | None = None, parallel: bool = False,
                       spin: bool = False) -> dict[str, Predictor]:
    """Eager, ONNX Runtime fp32 and (with ``int8_path``) int8 predictors at temperature 1, ONNX Runtime
    with ``threads`` intra-op threads (``parallel``: ORT's parallel execution mode; ``spin``: busy-wait)."""
    predictors: dict[str, Predictor] = {
        EAGER: TorchPredictor(model),
        ORT: OnnxPredictor(onnx_path, intra_op_threads=threads, sequential=not parallel, spinning=spin),
    }
    if int8_path is not None:
        predictors[ORT_INT8] = OnnxInt8Predictor(int8_path, intra_op_threads=threads, sequential=not parallel,
                                                 spinning=spin)
    return predictors


def compare_runtimes(predictors: dict[str, Predictor], inputs: np.ndarray | torch.Tensor, *, runs: int = 50,
                     batch_runs: int = 3, warmup: int = 5) -> dict[str, Any]:
    """Speed and agreement of ``predictors`` (the first is the reference, normally :data:`EAGER`) on
    ``inputs`` (``N x C x H x W``; batch 1 is the first input, batch N all of them).

    Returns ``load_average_1min`` (before, after), ``runs``, ``batch``, ``results`` (per runtime, see
    :func:`measure`), ``speedup_batch1_p50`` / ``speedup_batch<N>`` (fp32 ONNX over eager),
    ``speedup_batch1_p50_vs_eager`` / ``speedup_batch<N>_vs_eager`` (every runtime), ``max_abs_prob_diff``
    (fp32 ONNX vs eager), ``parity`` (per runtime ``vs_eager``, int8 also ``vs_onnxruntime``) and
    ``machine``."""
    x = inputs.numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    if x.ndim != 4 or not len(x):
        raise BadInputError(f"compare_runtimes needs N x C x H x W inputs, got shape {x.shape}")
    reference = next(iter(predictors))
    load_before = os.getloadavg()[0]
    probs = {name: p.predict_proba(x) for name, p in predictors.items()}
    results = measure(predictors, x[:1], x, runs, batch_runs, warmup)
    load_after = os.getloadavg()[0]
    thr_key = f"batch{len(x)}_images_per_s"
    ref_b1, ref_bn = results[reference]["batch1_p50_ms"], results[reference][thr_key]
    speedup_b1 = {k: ref_b1 / r["batch1_p50_ms"] for k, r in results.items() if k != reference}
    speedup_bn = {k: r[thr_key] / ref_bn for k, r in results.items() if k != reference}
    parity = {k: {"vs_eager": agreement(probs[reference], probs[k])} for k in predictors if k != reference}
    if ORT_INT8 in parity and ORT in probs:
        parity[ORT_INT8]["vs_onnxruntime"] = agreement(probs[ORT], probs[ORT_INT8])
    return {
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "runs": runs, "batch": len(x),
        "results": results,
        "speedup_batch1_p50": speedup_b1.get(ORT), f"speedup_batch{len(x)}": speedup_bn.get(ORT),
        "speedup_batch1_p50_vs_eager": speedup_b1, f"speedup_batch{len(x)}_vs_eager": speedup_bn,
        "max_abs_prob_diff": parity[ORT]["vs_eager"]["max_abs_prob_diff"] if ORT in parity else None,
        "parity": parity,
        "machine": machine_info(),
    }


def bundle_latency(bundle_or_path: Bundle | str | Path, image_paths: Sequence[str | Path], *, threads: int = 1,
                   runs: int = 30, batch: int = 8, batch_runs: int = 3, warmup: int = 5,
                   int8: bool = False) -> dict[str, Any]:
    """:func:`compare_runtimes` of a bundle's eager model, its ``model.onnx`` and (``int8=True``, when the
    bundle has one) its ``model.int8.onnx`` on ``batch`` inputs from ``image_paths`` (preprocessed with the
    bundle's config), with ``threads`` PyTorch and ONNX Runtime threads. Adds ``threads``."""
    bundle = bundle_or_path if isinstance(bundle_or_path, Bundle) else load_bundle(bundle_or_path)
    if bundle.onnx_path is None:
        raise BadInputError(f"bundle {bundle.path} has no model.onnx to time; export it first")
    with torch_threads(threads):
        inputs = benchmark_inputs(image_paths, batch, bundle.preprocess)
        predictors = runtime_predictors(bundle.model, bundle.onnx_path,
                                        bundle.int8_onnx_path if int8 else None, threads=threads)
        return {"threads": threads, **compare_runtimes(predictors, inputs, runs=runs, batch_runs=batch_runs,
                                                       warmup=warmup)}
