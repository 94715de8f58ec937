"""Where the model lives: registry, architectures, offline weight loaders, bundles, runtimes.

Names are exported lazily (:mod:`fetalscope._lazy`): ``import fetalscope.models`` does not import torch, so
reading bundle cards (:mod:`fetalscope.models.cards`) and architecture names
(:mod:`fetalscope.models.architectures`) stays instant.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "Bundle": "fetalscope.models.bundle",
    "available_bundles": "fetalscope.models.cards",
    "load_bundle": "fetalscope.models.bundle",
    "read_card": "fetalscope.models.cards",
    "render_card_md": "fetalscope.models.bundle",
    "save_bundle": "fetalscope.models.bundle",
    "FetalscopeClassifier": "fetalscope.models.classifier",
    "export_onnx": "fetalscope.models.onnx_export",
    "create_model": "fetalscope.models.registry",
    "get_spec": "fetalscope.models.registry",
    "list_models": "fetalscope.models.registry",
    "register_model": "fetalscope.models.registry",
    "OnnxInt8Predictor": "fetalscope.models.runtime",
    "OnnxPredictor": "fetalscope.models.runtime",
    "Predictor": "fetalscope.models.runtime",
    "TorchPredictor": "fetalscope.models.runtime",
    "available_runtimes": "fetalscope.models.runtime",
    "make_predictor": "fetalscope.models.runtime",
    "ModelSpec": "fetalscope.models.spec",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
