"""The one door: a :class:`Session` (the loaded models) turns an image into an :class:`Analysis` (plane,
sub-plane, findings, detections, measurement, explanations) that serialises and draws itself. The CLI, the
API, the app and batch runs all go through it."""

from fetalscope._lazy import lazy_getattr

_EXPORTS = {
    "Analysis": "fetalscope.pipeline.analysis",
    "ClassScore": "fetalscope.pipeline.analysis",
    "ExplanationResult": "fetalscope.pipeline.explanation",
    "ExplainedImage": "fetalscope.pipeline.explanation",
    "Session": "fetalscope.pipeline.session",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
