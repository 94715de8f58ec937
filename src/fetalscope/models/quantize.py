"""Static int8 quantisation of a bundle's ONNX model with ``onnxruntime.quantization``.

``model.int8.onnx`` sits beside the fp32 ``model.onnx`` in a bundle and is an opt-in runtime
(``make_predictor(bundle, runtime="onnx-int8")``): faster on CPUs with int8 dot-product instructions
(AVX512-VNNI / AVX-VNNI), at a small, measured cost in fidelity. The fp32 ``model.onnx`` stays the
parity path (ONNX Runtime vs PyTorch within 1e-4 on probabilities); int8 is not held to that bound.

Recipe (:class:`QuantizeSettings`): ``quant_pre_process`` (shape inference + graph clean-up), then
``quantize_static`` with per-channel symmetric int8 weights and uint8 activations (the U8S8 kernels
of ONNX Runtime's x86 backend), activation ranges set at the 99.999th percentile of their values on
real calibration images preprocessed exactly as the bundle does (:func:`preprocess_images`:
:func:`fetalscope.data.transforms.to_tensor` with the card's ``PreprocessConfig``). QDQ and QOperator
give the same graph after ONNX Runtime's optimiser (same outputs, same speed within noise); QDQ is the
default, as ONNX Runtime recommends.
Only the backbone is quantised (Conv/Gemm/MatMul with their Relu/Clip, MaxPool, residual Add); the first
weight layer (``float_first``: it sees the raw, widest-ranged input), the last ``float_last`` weight layers
(the classifier) and everything after them (pooling, temperature, plane mapping) stay float.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models.weights.common import file_sha256

if TYPE_CHECKING:
    from fetalscope.models.bundle import Bundle

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class QuantizeSettings:
    """How :func:`quantize_onnx` quantises.

    - ``fmt``: ``qdq`` (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into int8
      kernels) or ``qoperator`` (QLinearConv & co. written into the graph).
    - ``per_channel``: one weight scale per output channel (much closer to fp32 for convolutions).
    - ``activation_type``: ``uint8`` (U8S8, the fast x86 path) or ``int8``.
    - ``method``: calibration of activation ranges: ``minmax``, ``percentile`` or ``entropy``
      (percentile: on SonoNet-16, half the mean probability error of min/max).
    - ``op_types``: operator types that may be quantised. Relu/Clip must be among them: then the
      quantiser folds each activation into its convolution's output scale and ONNX Runtime runs
      QLinearConv -> QLinearConv in int8; without them every convolution output is dequantised and
      requantised in float (slower, and the pre-activation scale wastes half the int8 range).
    - ``float_last``: how many of the last weight layers (Conv/Gemm/MatMul in graph order) stay float,
      together with every node after the first of them (pooling, temperature, plane mapping).
    - ``float_first``: how many of the first weight layers stay float (the input layer sees the widest,
      least uniform value range).
    - ``percentile``: with ``method="percentile"``, the share of each activation's calibration
      histogram kept inside the int8 range (outliers beyond it saturate).
    - ``batch_size``: calibration batch size.
    """

    fmt: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    method: Literal["minmax", "percentile", "entropy"] = "percentile"
    op_types: tuple[str, ...] = (*WEIGHT_OPS, "Relu", "Clip", "MaxPool", "Add")
    float_last: int = 1
    float_first: int = 1
    percentile: float = 99.999
    batch_size: int = 8

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["op_types"] = list(self.op_types)
        return d


class ArrayCalibrationReader:
    """Feeds an ``N x C x H x W`` float32 array to the calibrator in batches of ``batch_size``
    (an ``onnxruntime.quantization.CalibrationDataReader``).

    ``set_range(start_index, end_index)`` limits it to those batches: with ``CalibStridedMinMax`` = 1
    the calibrator collects one batch at a time, so memory holds one batch's activations (not every
    image's) and batches of unequal size (the last one) never meet in one array.
    """

    def __init__(self, input_name: str, inputs: np.ndarray, batch_size: int = 8) -> None:
        self.input_name = input_name
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.batch_size = max(1, int(batch_size))
        self.start, self.end = 0, len(self)
        self._iter: Iterator[dict[str, np.ndarray]] = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for b in range(self.start, self.end):
            yield {self.input_name: self.inputs[b * self.batch_size:(b + 1) * self.batch_size]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._batches()

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = max(0, int(start_index)), min(len(self), int(end_index))
        self.rewind()

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)


def preprocess_images(paths: Sequence[str | Path], cfg: PreprocessConfig) -> np.ndarray:
    """``N x C x H x W`` float32 model inputs for image files, loaded by the one image loader and
    preprocessed with ``cfg`` (the bundle's own :class:`PreprocessConfig`)."""
    from fetalscope.imaging.loader import load_image

    if not paths:
        raise BadInputError("no images given to preprocess")
    return np.stack([to_tensor(load_image(p), cfg).numpy() for p in paths]).astype(np.float32)


def _weight_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type in WEIGHT_OPS]


def float_node_names(model: Any, float_first: int, float_last: int) -> list[str]:
    """Names of the nodes that stay float: the first ``float_first`` weight layers, and from the first of
    the last ``float_last`` weight layers to the end of the (topologically sorted) graph."""
    weights = _weight_nodes(model)
    names = [n.name for n in weights[:max(0, float_first)]]
    if float_last > 0 and weights:
        first_tail = weights[max(0, len(weights) - float_last)]
        nodes = list(model.graph.node)
        names += [n.name for n in nodes[nodes.index(first_tail):]]
    return list(dict.fromkeys(names))


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                  settings: QuantizeSettings | None = None) -> Path:
    """Write a statically quantised copy of ``fp32_path`` to ``out_path`` and return its path.

    ``calibration``: ``N x C x H x W`` float32 inputs, preprocessed as the model expects; real images
    of the kind the model will see (their activation ranges fix the int8 scales).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    settings = settings or QuantizeSettings()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise MissingWeightsError(f"fp32 ONNX model {fp32_path} not found; write it first with export_onnx()")
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise BadInputError(f"calibration inputs must be a non-empty N x C x H x W array, got {calibration.shape}")
    if settings.fmt not in ("qdq", "qoperator"):
        raise BadInputError(f"unknown quantisation format '{settings.fmt}': use qdq or qoperator")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if settings.method not in methods:
        raise BadInputError(f"unknown calibration method '{settings.method}': use {', '.join(methods)}")
    if settings.activation_type not in ("uint8", "int8"):
        raise BadInputError(f"activation_type must be uint8 or int8, got '{settings.activation_type}'")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        model = onnx.load(str(prepared))
        for i, node in enumerate(model.graph.node):  # exclusion works by name
            node.name = node.name or f"{node.op_type}_unnamed_{i}"
        onnx.save(model, str(prepared))
        input_name = model.graph.input[0].name
        keep_float = float_node_names(model, settings.float_first, settings.float_last)
        reader = ArrayCalibrationReader(input_name, calibration, settings.batch_size)
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
            quantize_static(
                str(prepared), str(out_path), reader,
                quant_format=QuantFormat.QDQ if settings.fmt == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=list(settings.op_types),
                per_channel=settings.per_channel,
                activation_type=QuantType.QUInt8 if settings.activation_type == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep_float,
                calibrate_method=methods[settings.method],
                calibration_providers=["CPUExecutionProvider"],
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                               "CalibPercentile": float(settings.percentile), "CalibStridedMinMax": 1},
            )
    onnx.checker.check_model(str(out_path))
    return out_path


def compare_probabilities(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """How close ``other`` (``N x K`` probabilities) is to ``reference``: top-1 agreement, max and mean
    absolute probability difference (over every entry), and the indices where top-1 differs."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape or reference.ndim != 2:
        raise BadInputError(f"probability arrays differ in shape: {reference.shape} vs {other.shape}")
    diff = np.abs(reference - other)
    same = reference.argmax(1) == other.argmax(1)
    return {
        "n_images": int(len(reference)),
        "top1_agreement": float(same.mean()) if len(same) else None,
        "top1_disagreements": int((~same).sum()),
        "max_abs_prob_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_prob_diff": float(diff.mean()) if diff.size else 0.0,
        "disagreeing_indices": [int(i) for i in np.flatnonzero(~same)],
    }


def quantize_bundle(bundle: Bundle, calibration_images: Sequence[str | Path],
                    settings: QuantizeSettings | None = None, out: str | Path | None = None,
                    calibration: np.ndarray | None = None) -> dict[str, Any]:
    """Write ``model.int8.onnx`` (or ``out``) for ``bundle`` from its fp32 ``model.onnx``, calibrated
    on ``calibration_images`` preprocessed with the bundle's config (or on ready ``calibration``
    inputs). The bundle must have ``model.onnx`` (write it with ``export_onnx``).

    Returns a record for the card: file name and size, SHA-256 of the fp32 model it came from and of
    the int8 model, the settings, and the number of calibration images.
    """
    from fetalscope.models.bundle import ONNX, ONNX_INT8

    settings = settings or QuantizeSettings()
    fp32 = bundle.path / ONNX
    if not fp32.is_file():
        raise MissingWeightsError(
            f"bundle {bundle.path} has no {ONNX} to quantise; export it first with export_onnx(bundle) "
            "(or `fetalscope export`)")
    target = Path(out) if out is not None else bundle.path / ONNX_INT8
    inputs = calibration if calibration is not None else preprocess_images(calibration_images, bundle.preprocess)
    quantize_onnx(fp32, target, inputs, settings)
    return {
        "file": target.name,
        "size_bytes": target.stat().st_size,
        "sha256": file_sha256(target),
        "quantised_from": {"file": fp32.name, "sha256": file_sha256(fp32)},
        "settings": settings.to_dict(),
        "n_calibration_images": int(len(inputs)),
        "tool": "onnxruntime.quantization.quantize_static (via fetalscope.models.quantize)",
    }


def calibration_paths(paths: Sequence[str | Path], limit: int | None = 200) -> list[Path]:
    """Image files under ``paths`` (files and folders, folders searched recursively), evenly thinned
    to at most ``limit`` (every k-th file in sorted order, so every folder keeps its share)."""
    from fetalscope.imaging.loader import iter_image_paths

    files = sorted(dict.fromkeys(iter_image_paths(list(paths))))
    if not files:
        raise BadInputError(f"no calibration images found under {', '.join(map(str, paths))}")
    if limit is not None and limit > 0 and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def int8_agreement(bundle: Bundle, inputs: np.ndarray, threads: int | None = None) -> dict[str, Any]:
    """:func:`compare_probabilities` of the bundle's int8 model against its fp32 ``model.onnx`` on
    ``inputs`` (preprocessed ``N x C x H x W``)."""
    from fetalscope.models.runtime import OnnxInt8Predictor, OnnxPredictor

    if bundle.onnx_path is None or bundle.int8_onnx_path is None:
        raise MissingWeightsError(f"bundle {bundle.path} needs both model.onnx and model.int8.onnx to compare")
    fp32 = OnnxPredictor(bundle.onnx_path, bundle.temperature, intra_op_threads=threads)
    int8 = OnnxInt8Predictor(bundle.int8_onnx_path, bundle.temperature, intra_op_threads=threads)
    chunks = range(0, len(inputs), 32)
    p32 = np.concatenate([fp32.predict_proba(inputs[i:i + 32]) for i in chunks])
    p8 = np.concatenate([int8.predict_proba(inputs[i:i + 32]) for i in chunks])
    return compare_probabilities(p32, p8)
