"""Detector training: the torchvision training loop (:mod:`.trainer`), evaluation of a detector on YOLO items
(:mod:`.evaluation`), the protocol that trains, chooses threshold and filter on a hold-out, tests once and
bundles (:mod:`.protocol`), the detection report (:mod:`.detection_report`) and optional Ultralytics
training (:mod:`.yolo`). The bundle it writes is served by :mod:`fetalscope.detect`.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "DetectTrainConfig": "fetalscope.train.detector.trainer",
    "fit_detector": "fetalscope.train.detector.trainer",
    "train_and_evaluate": "fetalscope.train.detector.protocol",
    "evaluate_bundle": "fetalscope.train.detector.protocol",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
