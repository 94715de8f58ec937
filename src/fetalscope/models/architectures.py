"""The architectures fetalscope ships, by name, and the module whose import registers each one.

Plain data (no torch), so listing names is instant (``fetalscope models``); :mod:`fetalscope.models.registry`
imports the modules on first lookup. ``tests/models`` checks this table against what the modules register.
"""

from __future__ import annotations

ARCHITECTURES: dict[str, str] = {
    "efficientnet_lite0": "fetalscope.models.efficientnet_lite",
    "efficientnet_lite1": "fetalscope.models.efficientnet_lite",
    "efficientnet_lite2": "fetalscope.models.efficientnet_lite",
    "fetalnet": "fetalscope.models.fetalnet",
    "resnet18": "fetalscope.models.resnet",
    "small_cnn": "fetalscope.models.small_cnn",
    "sononet16": "fetalscope.models.sononet",
    "sononet16_native": "fetalscope.models.sononet",
    "sononet16_planes": "fetalscope.models.sononet",
}


def architecture_names() -> list[str]:
    """Names of the shipped architectures, sorted, without importing any of them."""
    return sorted(ARCHITECTURES)
