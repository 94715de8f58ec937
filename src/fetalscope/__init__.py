"""fetalscope: fetal ultrasound analysis (plane classification, explanations, detection, biometry).

Research and education use only; not a medical device.
"""

__version__ = "0.1.0"

from fetalscope.errors import (  # noqa: E402
    BadInputError,
    DataError,
    FetalscopeError,
    MissingWeightsError,
    UnsupportedError,
)

__all__ = [
    "__version__",
    "FetalscopeError",
    "BadInputError",
    "DataError",
    "MissingWeightsError",
    "UnsupportedError",
]
