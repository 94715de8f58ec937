"""Brain structure detection (MIDLINE_FALX, CSP, CHOROID_PLEXUS): backends, training, evaluation,
plausibility checks, bundles and the entry points the faces call.

Public API (imported lazily, so ``import fetalscope.detect`` stays cheap):

- :func:`detect_paths` (files/folders -> records, JSON, overlays), :func:`detect_image`, :func:`draw_boxes`
- :func:`load_detector` / :func:`save_detector_bundle`; :class:`Box`, :class:`Detector`
- :func:`train_and_evaluate` (train + report + bundle from a YOLO dataset)
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "Box": "fetalscope.detect.types",
    "Detector": "fetalscope.detect.types",
    "detect_paths": "fetalscope.detect.api",
    "detect_image": "fetalscope.detect.api",
    "draw_boxes": "fetalscope.detect.api",
    "get_bundle": "fetalscope.detect.api",
    "load_detector": "fetalscope.detect.bundle_io",
    "save_detector_bundle": "fetalscope.detect.bundle_io",
    "DetectorBundle": "fetalscope.detect.bundle_io",
    "train_and_evaluate": "fetalscope.detect.run",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
