"""One image in, one :class:`Analysis` out: plane, sub-plane, findings, detections, measurement."""

from fetalscope.pipeline.analysis import Analysis, ClassScore

__all__ = ["Analysis", "ClassScore"]
