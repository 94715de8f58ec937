"""Biometry: segmentation to ellipses, head HC/BPD/OFD/GA and the cardiothoracic ratio.

One trainer (:mod:`.segtrain`), one ellipse fitter (:mod:`.ellipse`), one measurement function
(:func:`.measure.measure_image`) serve every measurement; a new one costs a dataset and a recipe
(:mod:`.training`). Heavy modules (torch) load on first use of the names below.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "Ellipse": "fetalscope.biometry.ellipse",
    "fit_ellipse": "fetalscope.biometry.ellipse",
    "ramanujan_circumference": "fetalscope.biometry.ellipse",
    "hadlock_ga_weeks": "fetalscope.biometry.head",
    "head_measurements": "fetalscope.biometry.head",
    "ctr_ratios": "fetalscope.biometry.cardiothoracic",
    "quality_gate": "fetalscope.biometry.cardiothoracic",
    "measure_image": "fetalscope.biometry.measure",
    "measure_paths": "fetalscope.biometry.measure",
    "draw_measurement": "fetalscope.biometry.measure",
    "Measurer": "fetalscope.biometry.measure",
    "load_seg_bundle": "fetalscope.biometry.segbundle",
    "train_measurement": "fetalscope.biometry.training",
    "evaluate_bundle": "fetalscope.biometry.report",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
