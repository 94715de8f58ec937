"""One error family for the whole product.

The CLI prints ``str(err)``; the API maps each subclass to an HTTP status with the same message.
"""

from __future__ import annotations


class FetalscopeError(Exception):
    """Base class of every error fetalscope raises on purpose."""

    http_status: int = 400


class BadInputError(FetalscopeError, ValueError):
    """The input (image, file, CSV, argument) is unreadable, malformed or out of limits."""

    http_status = 400


class DataError(FetalscopeError, ValueError):
    """A dataset on disk is missing, empty, mislabelled or inconsistent."""

    http_status = 422


class MissingWeightsError(FetalscopeError, FileNotFoundError):
    """Pretrained weights or a model bundle could not be found."""

    http_status = 503


class UnsupportedError(FetalscopeError, NotImplementedError):
    """The request is well formed but asks for something this model or build does not do."""

    http_status = 422


class PayloadTooLargeError(BadInputError):
    """The input exceeds a size limit (bytes or pixels)."""

    http_status = 413
