"""Explanations for every prediction: attribution maps, overlays, and evidence that they mean something.

- :func:`explain` / :func:`explain_batch`: one interface over Grad-CAM, Grad-CAM++, Guided
  Backprop, Guided Grad-CAM, saliency, Integrated Gradients, occlusion and LIME (Captum and
  pytorch-grad-cam underneath), returning :class:`Explanation` maps at input resolution.
- :mod:`~fetalscope.explain.overlay`: heatmap overlays (PNG) and raw ``.npy`` maps.
- :mod:`~fetalscope.explain.faithfulness`: deletion/insertion curves and AUCs vs a random order.
- :mod:`~fetalscope.explain.sanity`: cascading model-parameter randomisation (Adebayo et al. 2018).
- :mod:`~fetalscope.explain.runner`: decoded images in, explanations out (batched, with targets by
  name); :mod:`~fetalscope.explain.evaluation`: the ``explain-eval`` report.

Heavy modules (torch, Captum, pytorch-grad-cam) load on first use of the names below, so that code which only
measures or classifies never pays for them.
"""

from __future__ import annotations

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "explain_eval": "fetalscope.explain.evaluation",
    "evaluate_maps": "fetalscope.explain.faithfulness",
    **{name: "fetalscope.explain.methods" for name in (
        "DEFAULT_METHODS", "MethodSpec", "canonical_name", "explain", "explain_batch", "list_methods", "method_spec",
        "parse_methods", "register_method")},
    **{name: "fetalscope.explain.overlay" for name in ("overlay", "overlay_png", "save_map", "save_overlay")},
    "explain_images": "fetalscope.explain.runner",
    "parse_param_options": "fetalscope.explain.runner",
    "cascading_randomisation": "fetalscope.explain.sanity",
    "Explanation": "fetalscope.explain.types",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
