"""The one image loader used by every path in the product (CLI, API, UI, datasets, tests).

Whatever comes in (PNG, JPEG, TIFF 8/16-bit, BMP, DICOM monochrome/RGB/multi-frame; greyscale,
RGBA, palette), what comes out is the same: an :class:`UltrasoundImage` whose ``pixels`` are an
``H x W x 3`` ``uint8`` RGB array. Higher bit depths are stretched linearly to 0..255 by their
actual range, alpha is composited on black (the background of a B-mode display), DICOM gets its
modality/VOI transforms and MONOCHROME1 inversion, in any transfer syntax pydicom 3 decodes with the installed
plugins (uncompressed, deflated, RLE, JPEG baseline/extended 12-bit/lossless, JPEG-LS, JPEG 2000, HTJ2K), and
its ``meta`` holds what the file says it is (``modality``, ``sop_class_uid``, ``transfer_syntax_uid``; never
patient fields). Limits on bytes and pixel count are checked
before pixels are decoded, and every failure is a :class:`~fetalscope.errors.BadInputError` that
names the input and says what is wrong.

:func:`load_image` is the one place where that is guaranteed: whatever a decoder (Pillow, tifffile,
pydicom, numpy) raises while reading, even lazily (pydicom decodes an element only when it is first
read), comes out as a :class:`~fetalscope.errors.BadInputError` (or a
:class:`~fetalscope.errors.PayloadTooLargeError` when memory runs out), and what comes back holds only
a plain ``numpy`` array and plain Python values checked against the limits, never a decoder object.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from fetalscope.errors import BadInputError, FetalscopeError, PayloadTooLargeError
from fetalscope.imaging.decoding import (
    cause,
    check_dims,
    decoding,
    pixels_to_rgb,
    positive,
    read_bytes,
    stretch_to_uint8,
)
from fetalscope.imaging.dicom_fields import check_decodable, dicom_identity, dicom_int, dicom_spacing, dicom_value

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # files on disk; the API sets its own, lower limit
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8000 x 5000
SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
DICOM_MAGIC_OFFSET = 128

ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass
class UltrasoundImage:
    """A decoded image, normalised to ``H x W x 3`` uint8 RGB, with what we know about it."""

    pixels: np.ndarray
    source: str = "<memory>"
    format: str = "unknown"
    original_mode: str = ""
    bit_depth: int = 8
    pixel_spacing_mm: float | None = None
    frame: int = 0
    n_frames: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def gray(self) -> np.ndarray:
        """``H x W`` uint8 luminance (ITU-R 601-2, as PIL's "L")."""
        rgb = self.pixels.astype(np.float32)
        lum = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return np.clip(np.rint(lum), 0, 255).astype(np.uint8)

    def to_pil(self) -> Image.Image:
        return Image.fromarray(self.pixels, mode="RGB")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def iter_image_paths(paths: list[Path] | list[str] | Path | str, *, recursive: bool = True) -> Iterator[Path]:
    """Yield image files from files and folders, sorted within each folder.

    Raises :class:`BadInputError` for a path that does not exist and for folders without images.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for item in items:
        p = Path(item)
        try:
            is_dir = p.is_dir()
        except OSError as exc:  # e.g. a name too long for the file system
            raise BadInputError(f"{p}: cannot be read ({cause(exc)})") from exc
        if is_dir:
            pattern = "**/*" if recursive else "*"
            found = sorted(f for f in p.glob(pattern) if f.is_file() and is_image_path(f))
            if not found:
                raise BadInputError(
                    f"{p}: folder contains no images (looked for {', '.join(SUPPORTED_SUFFIXES)})"
                )
            yield from found
        elif p.is_file():
            yield p
        else:
            raise BadInputError(f"{p}: no such file or folder")


def _looks_like_dicom(data: bytes) -> bool:
    return len(data) > DICOM_MAGIC_OFFSET + 4 and data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def _load_pil(data: bytes, name: str, frame: int | None, max_pixels: int) -> UltrasoundImage:
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise BadInputError(
            f"{name}: not a readable image (supported: PNG, JPEG, TIFF, BMP, DICOM)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(f"{name}: image dimensions are too large ({cause(exc)})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt headers
        raise BadInputError(f"{name}: corrupt or unreadable image ({cause(exc)})") from exc
    fmt = (img.format or "unknown").upper()
    width, height = img.size
    check_dims(name, height, width, max_pixels)
    n_frames = int(getattr(img, "n_frames", 1) or 1)
    index = 0 if frame is None else frame
    if not 0 <= index < n_frames:
        raise BadInputError(f"{name}: frame {index} requested, the file has {n_frames} frame(s)")
    try:
        if n_frames > 1:
            img.seek(index)
            width, height = img.size  # pages of a TIFF need not share one size
            check_dims(name, height, width, max_pixels)
        img.load()
    except (FetalscopeError, MemoryError):
        raise
    except Exception as exc:
        raise BadInputError(f"{name}: corrupt or truncated image data ({cause(exc)})") from exc
    mode = img.mode
    bit_depth = 8
    if fmt == "TIFF" and (mode not in ("L", "RGB", "RGBA", "P", "LA", "1") or _tiff_bits(img) > 8):
        # PIL cannot represent every TIFF (16-bit RGB comes back cut to its high byte); tifffile
        # reads them exactly
        arr = _read_tiff(data, name, index, max_pixels)
        bit_depth = int(arr.dtype.itemsize * 8)
    else:
        if mode in ("P", "PA", "RGBa"):
            img = img.convert("RGBA")
        elif mode == "La":
            img = img.convert("LA")
        elif mode == "1":
            img = img.convert("L")
        elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
            img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        if mode.startswith("I;16") or mode == "I":
            bit_depth = 16
        elif mode == "F":
            bit_depth = 32
        arr = np.asarray(img)
    if arr.dtype == np.uint16 or arr.dtype == np.int32:
        bit_depth = 16 if arr.max(initial=0) <= 65535 else 32
    dpi = img.info.get("dpi") if hasattr(img, "info") else None
    meta: dict[str, Any] = {}
    if isinstance(dpi, tuple) and len(dpi) == 2:
        with contextlib.suppress(TypeError, ValueError):
            meta["dpi"] = (float(dpi[0]), float(dpi[1]))
    return UltrasoundImage(
        pixels=pixels_to_rgb(arr, name),
        source=name,
        format=fmt,
        original_mode=mode,
        bit_depth=bit_depth,
        pixel_spacing_mm=None,
        frame=index,
        n_frames=n_frames,
        meta=meta,
    )


def _tiff_bits(img: Image.Image) -> int:
    """Largest BitsPerSample of the current TIFF page (8 when the tag is absent)."""
    try:
        bits = img.tag_v2.get(258, 8)  # type: ignore[attr-defined]
    except AttributeError:
        return 8
    values = bits if isinstance(bits, (tuple, list)) else (bits,)
    return max((int(b) for b in values), default=8)


def _read_tiff(data: bytes, name: str, index: int, max_pixels: int) -> np.ndarray:
    import tifffile

    with decoding(name, "corrupt or unsupported TIFF"), tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[index]
        height, width = int(page.imagelength), int(page.imagewidth)  # type: ignore[union-attr]
        check_dims(name, height, width, max_pixels)
        values = math.prod(int(n) for n in page.shape)  # samples and depth too
        if values > 4 * max_pixels:
            raise PayloadTooLargeError(f"{name}: TIFF page holds {values} values ({page.shape}), over the limit "
                                       f"of {4 * max_pixels}")
        return np.asarray(page.asarray())


def _load_dicom(data: bytes, name: str, frame: int | None, max_pixels: int) -> UltrasoundImage:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except MemoryError:
        raise
    except Exception as exc:
        raise BadInputError(f"{name}: unreadable DICOM ({cause(exc)})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if not _looks_like_dicom(data):
            raise BadInputError(
                f"{name}: not a readable DICOM or image file (no DICM marker, no pixel data; supported: "
                "PNG, JPEG, TIFF, BMP, DICOM)"
            )
        raise BadInputError(f"{name}: DICOM file has no pixel data (e.g. a structured report or dose sheet)")
    identity = dicom_identity(ds, name)
    rows, cols = dicom_int(ds, "Rows", name, 0), dicom_int(ds, "Columns", name, 0)
    if "Rows" not in ds or "Columns" not in ds:
        raise BadInputError(f"{name}: DICOM file has pixel data but no Rows (0028,0010) or Columns (0028,0011); "
                            "the image size is unknown")
    check_dims(name, rows, cols, max_pixels)
    samples = dicom_int(ds, "SamplesPerPixel", name, 1)
    if samples not in (1, 3):
        raise BadInputError(f"{name}: unsupported DICOM SamplesPerPixel {samples} (1 or 3 are supported)")
    bits_allocated = dicom_int(ds, "BitsAllocated", name, 8)
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise BadInputError(f"{name}: unsupported DICOM BitsAllocated {bits_allocated}")
    n_frames = dicom_int(ds, "NumberOfFrames", name, 1) or 1
    if n_frames < 1:
        raise BadInputError(f"{name}: DICOM NumberOfFrames is {n_frames}; it must be at least 1")
    index = (n_frames // 2 if n_frames > 1 else 0) if frame is None else frame
    if not 0 <= index < n_frames:
        raise BadInputError(f"{name}: frame {index} requested, the DICOM has {n_frames} frame(s)")
    photometric = str(dicom_value(ds, "PhotometricInterpretation", name) or "MONOCHROME2").strip().upper()
    bits = dicom_int(ds, "BitsStored", name, 8) or 8
    spacing = dicom_spacing(ds, name)
    check_decodable(identity["transfer_syntax_uid"], name)
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        if n_frames > 1:
            ds.pixel_array_options(index=index)  # decode the one frame asked for, not the whole cine loop
        arr = np.asarray(ds.pixel_array)
    except (FetalscopeError, MemoryError):
        raise
    except Exception as exc:
        raise BadInputError(f"{name}: DICOM pixel data cannot be decoded ({cause(exc)})") from exc
    if samples == 1:
        try:
            arr = apply_modality_lut(arr, ds)
            arr = apply_voi_lut(arr, ds)
        except MemoryError:
            raise
        except Exception:
            arr = np.asarray(arr)
        arr = np.asarray(arr)
        if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).any():
            raise BadInputError(f"{name}: image has no finite pixel values (all NaN or infinite)")
        arr = stretch_to_uint8(arr)
        if photometric == "MONOCHROME1":
            arr = 255 - arr
    return UltrasoundImage(
        pixels=pixels_to_rgb(arr, name),
        source=name,
        format="DICOM",
        original_mode=photometric,
        bit_depth=bits,
        pixel_spacing_mm=spacing,
        frame=index,
        n_frames=n_frames,
        meta=identity,  # never patient fields
    )


def _checked(image: UltrasoundImage, name: str, max_pixels: int) -> UltrasoundImage:
    """The loader's promise, checked on what a decoder gave: a plain, writable, C-contiguous
    ``H x W x 3`` uint8 array within the limits, and plain Python values beside it."""
    px = image.pixels
    if not isinstance(px, np.ndarray) or px.ndim != 3 or px.shape[2] != 3 or px.dtype != np.uint8:
        shape = getattr(px, "shape", None)
        raise BadInputError(f"{name}: decoded to an unsupported pixel array (shape {shape}); not an image")
    check_dims(name, int(px.shape[0]), int(px.shape[1]), max_pixels)
    if type(px) is not np.ndarray or px.base is not None or not px.flags.c_contiguous or not px.flags.writeable:
        px = np.array(px, dtype=np.uint8, order="C", copy=True)  # owns its memory: no view into a decoder
    spacing = image.pixel_spacing_mm
    return UltrasoundImage(
        pixels=px,
        source=str(image.source),
        format=str(image.format),
        original_mode=str(image.original_mode),
        bit_depth=int(image.bit_depth),
        pixel_spacing_mm=None if spacing is None else positive(float(spacing)),
        frame=int(image.frame),
        n_frames=int(image.n_frames),
        meta=dict(image.meta),
    )


def _decode(data: bytes, label: str, frame: int | None, max_pixels: int) -> UltrasoundImage:
    if _looks_like_dicom(data):
        with decoding(label, "corrupt or unsupported DICOM"):
            return _load_dicom(data, label, frame, max_pixels)
    if label.lower().endswith((".dcm", ".dicom")):
        # a preamble-less (ACR-NEMA style) DICOM, or an ordinary image given a .dcm name
        try:
            with decoding(label, "corrupt or unsupported DICOM"):
                return _load_dicom(data, label, frame, max_pixels)
        except PayloadTooLargeError:
            raise
        except BadInputError as dicom_error:
            try:
                with decoding(label):
                    return _load_pil(data, label, frame, max_pixels)
            except PayloadTooLargeError:
                raise
            except BadInputError:
                raise dicom_error from None
    with decoding(label):
        return _load_pil(data, label, frame, max_pixels)


def read_input(src: str | Path | bytes | bytearray | BinaryIO, *, max_bytes: int = DEFAULT_MAX_BYTES,
               name: str | None = None) -> bytes:
    """The bytes of a file, bytes or stream within ``max_bytes``, read the way :func:`load_image` reads them
    (the same errors: no such file, empty, over the limit), so a caller can hash them and decode them from
    memory without reading the file twice."""
    label = name or (str(src) if isinstance(src, (str, Path)) else "<upload>")
    with decoding(label, "cannot be read"):
        return read_bytes(src, max_bytes)[0]


def load_image(
    src: str | Path | bytes | bytearray | BinaryIO,
    *,
    frame: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> UltrasoundImage:
    """Read any supported image into an :class:`UltrasoundImage` (``H x W x 3`` uint8 RGB).

    ``frame`` picks a frame of a multi-frame DICOM/TIFF (default: the middle frame of a DICOM
    cine loop, the first page of a TIFF). ``name`` labels in-memory inputs in error messages.

    Raises :class:`BadInputError` for anything that cannot be read as an image within the limits
    (:class:`PayloadTooLargeError` for the byte and pixel limits), whatever the decoder raised; never
    another exception type for a bad input.
    """
    if isinstance(src, (bytes, bytearray)):
        label = name or "<upload>"
    else:
        label = name or str(src if isinstance(src, (str, Path)) else getattr(src, "name", "<stream>"))
    with decoding(label, "cannot be read"):
        data, src_name = read_bytes(src, max_bytes)
    label = name or src_name
    image = _decode(data, label, frame, max_pixels)
    with decoding(label):
        return _checked(image, label, max_pixels)
