"""Explanations for every prediction: attribution maps, overlays, and evidence that they mean something.

- :func:`explain` / :func:`explain_batch`: one interface over Grad-CAM, Grad-CAM++, Guided
  Backprop, Guided Grad-CAM, saliency, Integrated Gradients, occlusion and LIME (Captum and
  pytorch-grad-cam underneath), returning :class:`Explanation` maps at input resolution.
- :mod:`~fetalscope.explain.overlay`: heatmap overlays (PNG) and raw ``.npy`` maps.
- :mod:`~fetalscope.explain.faithfulness`: deletion/insertion curves and AUCs vs a random order.
- :mod:`~fetalscope.explain.sanity`: cascading model-parameter randomisation (Adebayo et al. 2018).
- :mod:`~fetalscope.explain.runner`: decoded images in, explanations out (batched, with targets by
  name); :mod:`~fetalscope.explain.evaluation`: the ``explain-eval`` report.
"""

from fetalscope.explain.evaluation import explain_eval
from fetalscope.explain.faithfulness import evaluate_maps
from fetalscope.explain.methods import (
    DEFAULT_METHODS,
    MethodSpec,
    canonical_name,
    explain,
    explain_batch,
    list_methods,
    method_spec,
    parse_methods,
    register_method,
)
from fetalscope.explain.overlay import overlay, overlay_png, save_map, save_overlay
from fetalscope.explain.runner import explain_images, parse_param_options
from fetalscope.explain.sanity import cascading_randomisation
from fetalscope.explain.types import Explanation

__all__ = [
    "DEFAULT_METHODS",
    "Explanation",
    "MethodSpec",
    "canonical_name",
    "cascading_randomisation",
    "evaluate_maps",
    "explain",
    "explain_batch",
    "explain_eval",
    "explain_images",
    "list_methods",
    "method_spec",
    "overlay",
    "overlay_png",
    "parse_methods",
    "parse_param_options",
    "register_method",
    "save_map",
    "save_overlay",
]
