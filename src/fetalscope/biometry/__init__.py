"""Biometry, inference only: segmentation bundles -> ellipses -> head HC/BPD/OFD/GA and the cardiothoracic ratio.

One ellipse fitter (:mod:`.ellipse`), one measurement function (:func:`.measure.measure_image`) and one
bundle format (:mod:`.segbundle`) serve every measurement. Training and validating a segmentation bundle
(the one trainer, the recipes per measurement, the validation report) live in
:mod:`fetalscope.train.segmenter`; a new measurement costs a dataset and a recipe there.
Heavy modules (torch) load on first use of the names below.
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
    "get_measurer": "fetalscope.biometry.measure",
    "load_seg_bundle": "fetalscope.biometry.segbundle",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
