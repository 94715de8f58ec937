"""Training: one folder per task, named for the model it trains, on a small shared engine.

- :mod:`.runtime_opts` (shared by every trainer): device choice, bf16 autocast, seeding;
- :mod:`.classifier`: two-phase transfer learning for plane classifiers (feature cache, fine-tuning,
  ablations) -> a classifier bundle + its evaluation report;
- :mod:`.detector`: the brain-structure detector (training loop, the hold-out/test protocol that picks the
  threshold and plausibility filter, the detection report, the bundle; optional Ultralytics training);
- :mod:`.segmenter`: the one segmentation trainer behind every ellipse measurement, the recipe per
  measurement (head on HC18, heart + thorax on FOCUS) and the validation report of a biometry bundle;
- :mod:`.recipes`: end-to-end studies and bundle builds that combine the above (e.g. ``brain_findings``).

Statistics and report rendering shared by every task come from :mod:`fetalscope.evaluate`; the inference
code a trained model runs under comes from :mod:`fetalscope.models`, :mod:`fetalscope.detect` and
:mod:`fetalscope.biometry`. Nothing below ``train`` imports it.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {"TrainConfig": "fetalscope.train.classifier.config"}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
