"""Segmentation training for biometry: the one trainer (:mod:`.trainer`), the recipe per measurement
(:mod:`.recipes`: dataset, group split, structures, config -> a segmentation bundle with ``splits.json``)
and the validation report of a bundle on its held-out split (:mod:`.measurement_report`). The bundles
are served by :mod:`fetalscope.biometry`.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "SegTrainConfig": "fetalscope.train.segmenter.trainer",
    "train_segmenter": "fetalscope.train.segmenter.trainer",
    "train_measurement": "fetalscope.train.segmenter.recipes",
    "evaluate_bundle": "fetalscope.train.segmenter.measurement_report",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
