"""Brain structure detection (MIDLINE_FALX, CSP, CHOROID_PLEXUS), inference only: detector backends,
detector bundles, the skull estimate and plausibility rules, drawing, and the entry points the faces call.

Public API (imported lazily, so ``import fetalscope.detect`` stays cheap):

- :func:`detect_image`, :func:`draw_boxes` (files and folders: :func:`fetalscope.pipeline.outputs.detect_to_folder`)
- :func:`get_bundle`, :func:`load_detector` / :func:`save_detector_bundle`, :class:`DetectorBundle`;
  :class:`Box`, :class:`Detector`

Training, evaluation and bundling a detector from a YOLO dataset live in :mod:`fetalscope.train.detector`
(``train_and_evaluate``); the detection metrics in :mod:`fetalscope.evaluate.detection`.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "Box": "fetalscope.data.boxes",
    "Detector": "fetalscope.detect.types",
    "detect_image": "fetalscope.detect.api",
    "draw_boxes": "fetalscope.detect.api",
    "get_bundle": "fetalscope.detect.api",
    "load_detector": "fetalscope.detect.bundle_io",
    "save_detector_bundle": "fetalscope.detect.bundle_io",
    "DetectorBundle": "fetalscope.detect.bundle_io",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
