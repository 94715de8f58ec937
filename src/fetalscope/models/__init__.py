"""Where the model lives: registry, architectures, offline weight loaders, bundles, runtimes."""

from fetalscope.models.bundle import (
    Bundle,
    available_bundles,
    load_bundle,
    read_card,
    render_card_md,
    save_bundle,
)
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.onnx_export import export_onnx
from fetalscope.models.registry import create_model, get_spec, list_models, register_model
from fetalscope.models.runtime import (
    OnnxInt8Predictor,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    available_runtimes,
    make_predictor,
)
from fetalscope.models.spec import ModelSpec

__all__ = [
    "Bundle",
    "FetalscopeClassifier",
    "OnnxInt8Predictor",
    "OnnxPredictor",
    "Predictor",
    "TorchPredictor",
    "available_bundles",
    "available_runtimes",
    "export_onnx",
    "load_bundle",
    "make_predictor",
    "read_card",
    "render_card_md",
    "save_bundle",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
