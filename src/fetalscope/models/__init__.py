"""Where the model lives: registry, architectures, offline weight loaders, bundles, runtimes."""

from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.models.registry import create_model, get_spec, list_models, register_model
from fetalscope.models.spec import ModelSpec

__all__ = [
    "FetalscopeClassifier",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
