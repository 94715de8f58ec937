"""Classifier training: two-phase transfer learning (frozen backbone on cached features, then fine-tuning
the last blocks) -> a classifier bundle with its evaluation report (:mod:`fetalscope.evaluate`), and
ablations (named variants on one split). ``fetalscope train`` and ``fetalscope ablate`` call it.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "TrainConfig": "fetalscope.train.classifier.config",
    "TrainProgress": "fetalscope.train.classifier.progress",
    "train": "fetalscope.train.classifier.trainer",
    "run_ablation": "fetalscope.train.classifier.ablate",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
