"""The one image loader used by every path in the product (CLI, API, UI, datasets, tests).

Whatever comes in (PNG, JPEG, TIFF 8/16-bit, BMP, DICOM monochrome/RGB/multi-frame; greyscale,
RGBA, palette), what comes out is the same: an :class:`UltrasoundImage` whose ``pixels`` are an
``H x W x 3`` ``uint8`` RGB array. Higher bit depths are stretched linearly to 0..255 by their
actual range, alpha is composited on black (the background of a B-mode display), DICOM gets its
modality/VOI transforms and MONOCHROME1 inversion. Limits on bytes and pixel count are checked
before pixels are decoded, and every failure is a :class:`~fetalscope.errors.BadInputError` that
names the input and says what is wrong.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from fetalscope.errors import BadInputError, PayloadTooLargeError

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # files on disk; the API sets its own, lower limit
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8000 x 5000
MIN_SIDE = 8
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
        if p.is_dir():
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


def _read_bytes(src: str | Path | bytes | bytearray | BinaryIO, max_bytes: int) -> tuple[bytes, str]:
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


def _looks_like_dicom(data: bytes) -> bool:
    return len(data) > DICOM_MAGIC_OFFSET + 4 and data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def _check_dims(name: str, height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise BadInputError(f"{name}: image has no pixels ({width}x{height})")
    if height * width > max_pixels:
        raise PayloadTooLargeError(
            f"{name}: image is {width}x{height} = {height * width} pixels, over the limit of {max_pixels}"
        )
    if min(height, width) < MIN_SIDE:
        raise BadInputError(f"{name}: image is {width}x{height}; both sides must be at least {MIN_SIDE} px")


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


def _to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """Any H x W, H x W x 1/2/3/4 array to H x W x 3 uint8."""
    if arr.ndim == 2:
        g = stretch_to_uint8(arr)
        return np.repeat(g[..., None], 3, axis=2)
    if arr.ndim != 3:
        raise BadInputError(f"{name}: unsupported pixel array shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return _to_rgb(arr[..., 0], name)
    if channels in (2, 4):  # grey+alpha or RGBA: composite on black
        colour = arr[..., :-1]
        alpha = arr[..., -1].astype(np.float64)
        amax = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
        weight = np.clip(alpha / amax, 0.0, 1.0)[..., None]
        colour = stretch_to_uint8(colour).astype(np.float64) * weight
        colour = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
        return _to_rgb(colour if colour.shape[2] == 3 else colour[..., 0], name)
    if channels == 3:
        return stretch_to_uint8(arr)
    raise BadInputError(f"{name}: unsupported number of channels ({channels})")


def _load_pil(data: bytes, name: str, frame: int | None, max_pixels: int) -> UltrasoundImage:
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise BadInputError(
            f"{name}: not a readable image (supported: PNG, JPEG, TIFF, BMP, DICOM)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(f"{name}: image dimensions are too large ({exc})") from exc
    except Exception as exc:  # PIL raises many types for corrupt headers
        raise BadInputError(f"{name}: corrupt or unreadable image ({exc})") from exc
    fmt = (img.format or "unknown").upper()
    width, height = img.size
    _check_dims(name, height, width, max_pixels)
    n_frames = int(getattr(img, "n_frames", 1) or 1)
    index = 0 if frame is None else frame
    if not 0 <= index < n_frames:
        raise BadInputError(f"{name}: frame {index} requested, the file has {n_frames} frame(s)")
    try:
        if n_frames > 1:
            img.seek(index)
        img.load()
    except Exception as exc:
        raise BadInputError(f"{name}: corrupt or truncated image data ({exc})") from exc
    mode = img.mode
    bit_depth = 8
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        img = img.convert("RGB")
    elif mode.startswith("I;16") or mode == "I":
        bit_depth = 16
    elif mode == "F":
        bit_depth = 32
    if fmt == "TIFF" and (mode not in ("L", "RGB", "RGBA", "P", "LA", "1") or _tiff_bits(img) > 8):
        # PIL cannot represent every TIFF (16-bit RGB comes back cut to its high byte); tifffile
        # reads them exactly
        arr = _read_tiff(data, name, index)
        bit_depth = int(arr.dtype.itemsize * 8)
    else:
        arr = np.asarray(img)
    if arr.dtype == np.uint16 or arr.dtype == np.int32:
        bit_depth = 16 if arr.max(initial=0) <= 65535 else 32
    spacing = None
    dpi = img.info.get("dpi") if hasattr(img, "info") else None
    meta: dict[str, Any] = {}
    if dpi:
        meta["dpi"] = tuple(float(d) for d in dpi)
    return UltrasoundImage(
        pixels=_to_rgb(arr, name),
        source=name,
        format=fmt,
        original_mode=mode,
        bit_depth=bit_depth,
        pixel_spacing_mm=spacing,
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


def _read_tiff(data: bytes, name: str, index: int) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return tif.pages[index].asarray()
    except Exception as exc:
        raise BadInputError(f"{name}: corrupt or unsupported TIFF ({exc})") from exc


def _load_dicom(data: bytes, name: str, frame: int | None, max_pixels: int) -> UltrasoundImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, Exception) as exc:
        raise BadInputError(f"{name}: unreadable DICOM ({exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if not _looks_like_dicom(data):
            raise BadInputError(
                f"{name}: not a readable DICOM or image file (no DICM marker, no pixel data; supported: "
                "PNG, JPEG, TIFF, BMP, DICOM)"
            )
        raise BadInputError(f"{name}: DICOM file has no pixel data (e.g. a structured report or dose sheet)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    _check_dims(name, rows, cols, max_pixels)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    index = (n_frames // 2 if n_frames > 1 else 0) if frame is None else frame
    if not 0 <= index < n_frames:
        raise BadInputError(f"{name}: frame {index} requested, the DICOM has {n_frames} frame(s)")
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        arr = ds.pixel_array
    except Exception as exc:
        raise BadInputError(f"{name}: DICOM pixel data cannot be decoded ({exc})") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames > 1:
        arr = arr[index]
    if samples == 1:
        try:
            arr = apply_modality_lut(arr, ds)
            arr = apply_voi_lut(arr, ds)
        except Exception:
            arr = np.asarray(arr)
        arr = stretch_to_uint8(np.asarray(arr))
        if photometric == "MONOCHROME1":
            arr = 255 - arr
    spacing = None
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if key in ds and ds.get(key):
            try:
                spacing = float(ds.get(key)[0])
            except (TypeError, ValueError, IndexError):
                spacing = None
            if spacing:
                break
    if spacing is None and "SequenceOfUltrasoundRegions" in ds:
        # ultrasound DICOMs give physical deltas in cm per pixel per region
        try:
            region = ds.SequenceOfUltrasoundRegions[0]
            units = int(region.get("PhysicalUnitsXDirection", 0))
            if units == 3:  # cm
                spacing = float(region.PhysicalDeltaX) * 10.0
        except Exception:
            spacing = None
    bits = int(ds.get("BitsStored", 8) or 8)
    return UltrasoundImage(
        pixels=_to_rgb(np.asarray(arr), name),
        source=name,
        format="DICOM",
        original_mode=photometric,
        bit_depth=bits,
        pixel_spacing_mm=spacing,
        frame=index,
        n_frames=n_frames,
        meta={"modality": str(ds.get("Modality", ""))},  # never patient fields
    )


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
    """
    data, src_name = _read_bytes(src, max_bytes)
    label = name or src_name
    if _looks_like_dicom(data):
        return _load_dicom(data, label, frame, max_pixels)
    if label.lower().endswith((".dcm", ".dicom")):
        # a preamble-less (ACR-NEMA style) DICOM, or an ordinary image given a .dcm name
        try:
            return _load_dicom(data, label, frame, max_pixels)
        except PayloadTooLargeError:
            raise
        except BadInputError as dicom_error:
            try:
                return _load_pil(data, label, frame, max_pixels)
            except BadInputError:
                raise dicom_error from None
    return _load_pil(data, label, frame, max_pixels)
