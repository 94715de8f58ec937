"""Frame readers for cine loops and video: one face over video files, multi-frame DICOM, multi-page TIFF and a
folder of numbered frames.

:func:`open_frames` checks what it can before any pixel is decoded (bytes, frame count, duration, frame size)
and returns a :class:`FrameSource`; :meth:`FrameSource.frames` yields :class:`Frame` objects (``H x W x 3``
uint8 RGB, its index in the file and its time in seconds) one at a time, keeping at most ``max_frames`` of
them by raising the stride (the frame budget), and :meth:`FrameSource.read` decodes chosen frames again.
Nothing is written to disk: uploads are decoded from memory (OpenCV reads a video from a Python stream).

Video files go through OpenCV's ``VideoCapture`` (its FFmpeg back-end, already a dependency). Measured here
on 300 real HC18/FOCUS frames (800x544, 2 shared cores): OpenCV, PyAV 18.1 and imageio-ffmpeg 0.8.1 return
identical pixels (max difference 0 on MPEG-4, MJPEG, VP8 and FFV1), so all are equally faithful (PSNR vs the
source 38.9 dB MPEG-4, 42.6 dB MJPEG, lossless FFV1 exact); all decode at 150-650 frames/s, far above what the
plane model classifies, and OpenCV needs no new dependency (``benchmarks/bench_video.py`` measures it again).

Every failure is a :class:`~fetalscope.errors.BadInputError` (or :class:`~fetalscope.errors.PayloadTooLargeError`
for limits) naming the input: truncated or unreadable files, zero frames, absurd sizes, clips too long.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fetalscope.errors import BadInputError, PayloadTooLargeError
from fetalscope.imaging.decoding import check_dims, decoding, pixels_to_rgb, read_bytes, stretch_to_uint8
from fetalscope.imaging.dicom_fields import check_decodable, dicom_identity, dicom_int, dicom_spacing, dicom_value
from fetalscope.imaging.loader import DEFAULT_MAX_BYTES, is_image_path, load_image

VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".webm", ".mkv")
DEFAULT_FRAME_BUDGET = 600  # frames analysed at most; a longer clip is sampled with a larger stride
ANISOTROPY_TOLERANCE = 0.02  # PhysicalDeltaX and Y that differ by more are reported


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may hold: ``max_bytes`` of file, ``max_frames`` frames, ``max_duration_s`` seconds and
    ``max_pixels`` per frame."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_frames: int = 100_000
    max_duration_s: float = 2 * 3600.0
    max_pixels: int = 4096 * 4096


@dataclass
class Frame:
    """One decoded frame: ``index`` in the file (0-based), ``time_s`` from the start (``None`` when the file
    gives no frame rate) and ``pixels`` (``H x W x 3`` uint8 RGB)."""

    index: int
    time_s: float | None
    pixels: np.ndarray


@dataclass
class VideoInfo:
    """What the file says about itself: ``format`` (the container or ``DICOM``, ``TIFF``, ``FRAMES``), frame
    count, frames per second (``None`` when unknown), frame size, pixel size in mm and where it came from."""

    source: str
    format: str
    n_frames: int
    fps: float | None
    width: int
    height: int
    pixel_spacing_mm: float | None = None
    pixel_spacing_source: str | None = None
    frame_times_s: list[float] | None = None  # a DICOM FrameTimeVector, cumulated
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.frame_times_s:
            return self.frame_times_s[-1]
        return None if not self.fps else self.n_frames / self.fps

    def time_of(self, index: int) -> float | None:
        if self.frame_times_s is not None and index < len(self.frame_times_s):
            return round(self.frame_times_s[index], 6)
        return None if not self.fps else round(index / self.fps, 6)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "n_frames": self.n_frames, "fps": self.fps,
                "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
                "width": self.width, "height": self.height, "pixel_spacing_mm": self.pixel_spacing_mm,
                "pixel_spacing_source": self.pixel_spacing_source, **self.meta}


def effective_stride(n_frames: int, stride: int = 1, max_frames: int | None = DEFAULT_FRAME_BUDGET) -> int:
    """The stride that keeps at most ``max_frames`` of ``n_frames`` (never below ``stride``)."""
    if stride < 1:
        raise BadInputError(f"stride must be at least 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise BadInputError(f"max_frames must be at least 1, got {max_frames}")
    if max_frames is None or n_frames <= 0:
        return stride
    return max(stride, math.ceil(n_frames / max_frames))


class FrameSource:
    """An opened clip: :attr:`info`, :meth:`frames` (every ``stride``-th frame, within a budget) and
    :meth:`read` (chosen frames again)."""

    def __init__(self, info: VideoInfo, limits: VideoLimits) -> None:
        self.info = info
        self.limits = limits

    # subclasses decode -----------------------------------------------------------------------------
    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def _checked(self, index: int, arr: np.ndarray) -> Frame:
        name = self.info.source
        with decoding(name, "corrupt frame"):
            rgb = pixels_to_rgb(arr, name)
            check_dims(name, rgb.shape[0], rgb.shape[1], self.limits.max_pixels)
            return Frame(index, self.info.time_of(index), np.ascontiguousarray(rgb))

    def frames(self, stride: int = 1, max_frames: int | None = DEFAULT_FRAME_BUDGET) -> Iterator[Frame]:
        """Every ``stride``-th frame from the first, at most ``max_frames`` (the stride grows to fit)."""
        step = effective_stride(self.info.n_frames, stride, max_frames)
        indices = list(range(0, self.info.n_frames, step))
        if max_frames is not None:
            indices = indices[:max_frames]
        yielded = 0
        for index, arr in self._decode(indices):
            yielded += 1
            yield self._checked(index, arr)
        if yielded == 0:
            raise BadInputError(f"{self.info.source}: no frame could be decoded (empty or truncated file)")

    def read(self, indices: Iterable[int]) -> dict[int, Frame]:
        """The frames at ``indices`` (decoded again), by index."""
        wanted = sorted({int(i) for i in indices if 0 <= int(i) < self.info.n_frames})
        return {index: self._checked(index, arr) for index, arr in self._decode(wanted)}


# ------------------------------------------------------------------------------------------ video files
def _silence_opencv() -> None:
    import cv2

    with contextlib.suppress(AttributeError):  # builds without the logging module
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class _OpenCVSource(FrameSource):
    """A video file (MP4, AVI, MOV, WebM, MKV) through OpenCV's FFmpeg back-end, from a path or memory."""

    def __init__(self, src: Path | bytes, name: str, limits: VideoLimits, fps: float | None) -> None:
        self._src = src
        cap, stream = self._open(name)
        import cv2

        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            file_fps = float(cap.get(cv2.CAP_PROP_FPS))
            codec = int(cap.get(cv2.CAP_PROP_FOURCC))
        finally:
            cap.release()
            del stream
        check_dims(name, height, width, limits.max_pixels)
        if count <= 0:
            raise BadInputError(f"{name}: the video has no frames (or its frame count is unreadable)")
        rate = fps or (file_fps if math.isfinite(file_fps) and 0 < file_fps <= 1000 else None)
        fourcc = "".join(chr((codec >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
        info = VideoInfo(name, "VIDEO", count, rate, width, height,
                         meta={"codec": fourcc if fourcc.isprintable() else ""})
        super().__init__(info, limits)
        _check_extent(info, limits)

    def _open(self, name: str) -> tuple[Any, io.BytesIO | None]:
        """An opened capture and the stream it reads (keep it referenced while the capture lives)."""
        import cv2

        _silence_opencv()
        with decoding(name, "unreadable video"):
            stream = None if isinstance(self._src, Path) else io.BytesIO(self._src)
            if stream is None:
                cap = cv2.VideoCapture(str(self._src), cv2.CAP_FFMPEG)
            else:
                cap = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])
        if not cap.isOpened():
            raise BadInputError(f"{name}: not a readable video, DICOM, TIFF or image folder (supported: "
                                f"{', '.join(s.lstrip('.').upper() for s in VIDEO_SUFFIXES)}, multi-frame DICOM, "
                                "multi-page TIFF, a folder of numbered frames); the file may be truncated")
        return cap, stream

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        import cv2

        if not indices:
            return
        name = self.info.source
        cap, stream = self._open(name)
        wanted = set(indices)
        last = indices[-1]
        try:
            position = 0
            while position <= last:
                with decoding(name, "corrupt video stream"):
                    grabbed = cap.grab()
                if not grabbed:
                    if position < self.info.n_frames:
                        self.info.warnings.append(
                            f"the video ended after {position} of the {self.info.n_frames} frames its header "
                            "announces (truncated file?)")
                    break
                if position in wanted:
                    with decoding(name, "corrupt video frame"):
                        ok, bgr = cap.retrieve()
                    if ok and bgr is not None:
                        yield position, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                position += 1
        finally:
            cap.release()
            del stream


# ------------------------------------------------------------------------------------ multi-frame DICOM
def _frame_rate(ds: Any, name: str, n_frames: int) -> tuple[float | None, list[float] | None]:
    """Frames per second and, from a FrameTimeVector, each frame's time: FrameTimeVector (ms between frames),
    FrameTime (ms), CineRate, RecommendedDisplayFrameRate (frames/s); ``(None, None)`` when none is usable."""
    vector = dicom_value(ds, "FrameTimeVector", name)
    if vector is not None:
        try:
            steps = [float(v) for v in (vector if isinstance(vector, (list, tuple)) or hasattr(vector, "__len__")
                                        and not isinstance(vector, (str, bytes)) else [vector])]
        except (TypeError, ValueError):
            steps = []
        if len(steps) == n_frames and all(math.isfinite(s) and s >= 0 for s in steps) and sum(steps) > 0:
            times = np.cumsum(steps) / 1000.0
            times = times - times[0]
            return round((n_frames - 1) / float(times[-1]), 6) if times[-1] > 0 else None, times.tolist()
    frame_time = dicom_value(ds, "FrameTime", name)
    try:
        ms = float(frame_time) if frame_time not in (None, "") else 0.0
    except (TypeError, ValueError):
        ms = 0.0
    if math.isfinite(ms) and ms > 0:
        return round(1000.0 / ms, 6), None
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = dicom_int(ds, key, name, 0)
        if 0 < rate <= 1000:
            return float(rate), None
    return None, None


def _ultrasound_calibration(ds: Any, warnings: list[str]) -> float | None:
    """mm per pixel from the first 2D region (RegionSpatialFormat 1) of SequenceOfUltrasoundRegions whose
    physical units are cm (code 3) in x and y; PhysicalDeltaX/Y are cm per pixel."""
    try:
        regions = list(ds.SequenceOfUltrasoundRegions)
    except Exception:  # an unreadable sequence is no scale
        return None
    for region in regions:
        try:
            if int(region.get("RegionSpatialFormat", 1)) != 1:
                continue
            if int(region.get("PhysicalUnitsXDirection", 0)) != 3 or int(region.get("PhysicalUnitsYDirection", 3)) != 3:
                continue
            dx = float(region.PhysicalDeltaX) * 10.0
            dy = float(region.get("PhysicalDeltaY", region.PhysicalDeltaX)) * 10.0
        except Exception:
            continue
        if not (math.isfinite(dx) and dx > 0):
            continue
        if math.isfinite(dy) and dy > 0 and abs(dx - dy) > ANISOTROPY_TOLERANCE * dx:
            warnings.append(f"the ultrasound region's pixels are not square (x {dx:.4f} mm, y {dy:.4f} mm); "
                            "measurements use the x size")
        return round(dx, 8)
    return None


class _DicomSource(FrameSource):
    """A multi-frame DICOM (any transfer syntax the still loader decodes); colour (RGB, YBR_FULL, YBR_FULL_422)
    comes out as RGB."""

    def __init__(self, data: bytes, name: str, limits: VideoLimits, fps: float | None) -> None:
        import pydicom

        self._data = data
        with decoding(name, "unreadable DICOM"):
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=False)
        if "PixelData" not in ds:
            raise BadInputError(f"{name}: DICOM file has no pixel data")
        identity = dicom_identity(ds, name)
        rows, cols = dicom_int(ds, "Rows", name, 0), dicom_int(ds, "Columns", name, 0)
        check_dims(name, rows, cols, limits.max_pixels)
        n_frames = dicom_int(ds, "NumberOfFrames", name, 1) or 1
        if n_frames < 1:
            raise BadInputError(f"{name}: DICOM NumberOfFrames is {n_frames}; it must be at least 1")
        check_decodable(identity["transfer_syntax_uid"], name)
        file_fps, times = _frame_rate(ds, name, n_frames)
        warnings: list[str] = []
        spacing, source = None, None
        if "PixelSpacing" in ds or "ImagerPixelSpacing" in ds:
            spacing = dicom_spacing(ds, name)
            source = "PixelSpacing" if spacing is not None else None
        if spacing is None and "SequenceOfUltrasoundRegions" in ds:
            spacing = _ultrasound_calibration(ds, warnings)
            source = "SequenceOfUltrasoundRegions" if spacing is not None else None
        self._photometric = str(dicom_value(ds, "PhotometricInterpretation", name) or "MONOCHROME2").strip().upper()
        self._samples = dicom_int(ds, "SamplesPerPixel", name, 1)
        self._ds = ds
        info = VideoInfo(name, "DICOM", n_frames, fps or file_fps, cols, rows, spacing, source,
                         None if fps else times, meta={**identity, "photometric": self._photometric},
                         warnings=warnings)
        super().__init__(info, limits)
        _check_extent(info, limits)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut, iter_pixels

        if not indices:
            return
        name = self.info.source
        with decoding(name, "DICOM pixel data cannot be decoded"):
            for index, arr in zip(indices, iter_pixels(io.BytesIO(self._data), indices=indices), strict=False):
                if self._samples == 1:
                    arr = stretch_to_uint8(np.asarray(apply_voi_lut(apply_modality_lut(arr, self._ds), self._ds)))
                    if self._photometric == "MONOCHROME1":
                        arr = 255 - arr
                yield index, arr


# ----------------------------------------------------------------------------------- multi-page TIFF
class _TiffSource(FrameSource):
    def __init__(self, data: bytes, name: str, limits: VideoLimits, fps: float | None) -> None:
        import tifffile

        self._data = data
        with decoding(name, "corrupt or unsupported TIFF"), tifffile.TiffFile(io.BytesIO(data)) as tif:
            n_frames = len(tif.pages)
            first = tif.pages[0]
            height, width = int(first.imagelength), int(first.imagewidth)  # type: ignore[union-attr]
        check_dims(name, height, width, limits.max_pixels)
        info = VideoInfo(name, "TIFF", n_frames, fps, width, height)
        super().__init__(info, limits)
        _check_extent(info, limits)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        import tifffile

        name = self.info.source
        with decoding(name, "corrupt or unsupported TIFF"), tifffile.TiffFile(io.BytesIO(self._data)) as tif:
            for index in indices:
                page = tif.pages[index]
                check_dims(name, int(page.imagelength), int(page.imagewidth),  # type: ignore[union-attr]
                            self.limits.max_pixels)
                yield index, np.asarray(page.asarray())


# ------------------------------------------------------------------------------ folder of numbered frames
def _natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name))


class _FolderSource(FrameSource):
    """Image files in one folder, in the order of the numbers in their names (frame2 before frame10)."""

    def __init__(self, folder: Path, limits: VideoLimits, fps: float | None) -> None:
        self._paths = sorted((p for p in folder.iterdir() if p.is_file() and is_image_path(p)), key=_natural_key)
        if not self._paths:
            raise BadInputError(f"{folder}: folder holds no image frames (PNG, JPEG, TIFF, BMP, DICOM)")
        first = load_image(self._paths[0], max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        info = VideoInfo(str(folder), "FRAMES", len(self._paths), fps, first.width, first.height,
                         first.pixel_spacing_mm, "dicom" if first.pixel_spacing_mm else None)
        super().__init__(info, limits)
        _check_extent(info, limits)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            image = load_image(self._paths[index], max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels)
            yield index, image.pixels


# ------------------------------------------------------------------------------------------- the door
def _check_extent(info: VideoInfo, limits: VideoLimits) -> None:
    if info.n_frames > limits.max_frames:
        raise PayloadTooLargeError(f"{info.source}: the clip has {info.n_frames} frames, over the limit of "
                                   f"{limits.max_frames}; cut it shorter")
    duration = info.duration_s
    if duration is not None and duration > limits.max_duration_s:
        raise PayloadTooLargeError(f"{info.source}: the clip lasts {duration:.0f} s, over the limit of "
                                   f"{limits.max_duration_s:.0f} s; cut it shorter")


def _kind(data: bytes) -> str:
    if len(data) > 132 and data[128:132] == b"DICM":
        return "dicom"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" or data[:2] == b"BM":
        return "still"
    return "video"


def open_frames(src: str | Path | bytes | bytearray | BinaryIO, *, name: str | None = None,
                fps: float | None = None, limits: VideoLimits | None = None) -> FrameSource:
    """Open a clip for reading frames: a video file (MP4, AVI, MOV, WebM, MKV), a multi-frame DICOM, a
    multi-page TIFF (path, bytes or stream) or a folder of numbered image frames. ``fps`` overrides (or
    supplies) the frame rate. Raises :class:`BadInputError` (``PayloadTooLargeError`` for limits) naming
    the input."""
    limits = limits or VideoLimits()
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise BadInputError(f"fps must be a frame rate in (0, 1000], got {fps}")
    if isinstance(src, (str, Path)) and Path(src).is_dir():
        return _FolderSource(Path(src), limits, fps)
    label = name or (str(src) if isinstance(src, (str, Path)) else
                     "<upload>" if isinstance(src, (bytes, bytearray)) else str(getattr(src, "name", "<stream>")))
    with decoding(label, "cannot be read"):
        data, _ = read_bytes(src, limits.max_bytes)
    kind = _kind(data)
    if kind == "dicom":
        return _DicomSource(data, label, limits, fps)
    if kind == "tiff":
        return _TiffSource(data, label, limits, fps)
    if kind == "still":
        raise BadInputError(f"{label}: is a single still image, not a clip; analyse it with `fetalscope predict` "
                            "(or /v1/predict)")
    return _OpenCVSource(Path(src) if isinstance(src, (str, Path)) else data, label, limits, fps)
