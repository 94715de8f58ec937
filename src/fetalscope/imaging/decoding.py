"""Decoding helpers shared by the still loader (:mod:`fetalscope.imaging.loader`) and the frame readers of
clips (:mod:`fetalscope.imaging.video`): reading bytes within a limit, size checks, turning whatever a decoder
raises into a fetalscope error naming the input, and any numeric pixel array into ``H x W x 3`` uint8 RGB."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fetalscope.errors import BadInputError, FetalscopeError, PayloadTooLargeError

MIN_SIDE = 8
MAX_CAUSE_CHARS = 200  # a decoder's own message, quoted in ours, is cut to this


def read_bytes(src: str | Path | bytes | bytearray | BinaryIO, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray)):
        data, name = bytes(src), "<upload>"
    elif isinstance(src, (str, Path)):
        path = Path(src)
        name = str(path)
        if not path.exists():
            raise BadInputError(f"{name}: no such file")
        if path.is_dir():
            raise BadInputError(f"{name}: is a folder, not an image file")
        size = path.stat().st_size
        if size > max_bytes:
            raise PayloadTooLargeError(f"{name}: file is {size} bytes, over the limit of {max_bytes} bytes")
        data = path.read_bytes()
    else:
        name = str(getattr(src, "name", "<stream>"))
        data = src.read(max_bytes + 1)
    if len(data) == 0:
        raise BadInputError(f"{name}: file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"{name}: input is over the limit of {max_bytes} bytes")
    return data, name


def check_dims(name: str, height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadInputError(f"{name}: image has no pixels ({width}x{height})")
    if height * width > max_pixels:
        raise PayloadTooLargeError(
            f"{name}: image is {width}x{height} = {height * width} pixels, over the limit of {max_pixels}"
        )
    if min(height, width) < MIN_SIDE:
        raise BadInputError(f"{name}: image is {width}x{height}; both sides must be at least {MIN_SIDE} px")


def cause(exc: BaseException) -> str:
    """A decoder's exception as one short line: its message (or its type when it has none)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 3] + "..."


@contextlib.contextmanager
def decoding(name: str, what: str = "corrupt or unreadable image") -> Iterator[None]:
    """Turn anything a decoder raises into a fetalscope error naming the input and the cause.

    Fetalscope's own errors pass as they are; running out of memory is a
    :class:`PayloadTooLargeError` (413); any other exception is a :class:`BadInputError`.
    """
    try:
        yield
    except FetalscopeError:
        raise
    except MemoryError as exc:
        raise PayloadTooLargeError(f"{name}: not enough memory to decode this image; it is too large") from exc
    except Exception as exc:
        raise BadInputError(f"{name}: {what} ({cause(exc)})") from exc


def stretch_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map any numeric array to uint8: uint8 as is, everything else linearly by its min..max."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float64)
    if not np.all(np.isfinite(a)):
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """Any H x W, H x W x 1/2/3/4 array to H x W x 3 uint8."""
    if arr.ndim == 2:
        g = stretch_to_uint8(arr)
        return np.repeat(g[..., None], 3, axis=2)
    if arr.ndim != 3:
        raise BadInputError(f"{name}: unsupported pixel array shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return to_rgb(arr[..., 0], name)
    if channels in (2, 4):  # grey+alpha or RGBA: composite on black
        colour = arr[..., :-1]
        alpha = arr[..., -1].astype(np.float64)
        amax = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
        weight = np.clip(alpha / amax, 0.0, 1.0)[..., None]
        colour = stretch_to_uint8(colour).astype(np.float64) * weight
        colour = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
        return to_rgb(colour if colour.shape[2] == 3 else colour[..., 0], name)
    if channels == 3:
        return stretch_to_uint8(arr)
    raise BadInputError(f"{name}: unsupported number of channels ({channels})")


def pixels_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """A decoder's pixel array to ``H x W x 3`` uint8, refusing pixel types that are not numbers and
    images without a single finite value."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise BadInputError(f"{name}: unsupported pixel type {arr.dtype}")
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).any():
        raise BadInputError(f"{name}: image has no finite pixel values (all NaN or infinite)")
    return to_rgb(arr, name)


def positive(value: float) -> float | None:
    return value if math.isfinite(value) and value > 0 else None

