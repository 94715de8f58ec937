"""Named, seeded perturbations of an ultrasound image at a strength, for robustness reports and augmentation.

Each perturbation is ``f(rgb, strength, rng) -> rgb``: ``rgb`` is ``H x W x 3`` uint8, the result has the same
shape and dtype, ``strength`` lies in ``[0, 1]`` (0 returns an unchanged copy, 1 is the strongest setting
below) and ``rng`` (a ``numpy.random.Generator``) is the only source of randomness, so a seed gives the same
image every time. What a strength means physically is in :data:`PERTURBATIONS` (``describe(strength)``).

- ``speckle``: multiplicative Gaussian noise per pixel, standard deviation up to 35 % (live frames: ~12 %).
- ``speckle_correlated``: the same, but the noise field is Gaussian-filtered (correlation length ~0.6 % of
  the longest side) and re-scaled to the same standard deviation, as speckle in compressed clips looks.
- ``gain_down`` / ``gain_up``: every grey level times 1 - 0.6 s / 1 + 1.5 s (clipped at 255).
- ``contrast``: contrast around the image mean reduced to 1 - 0.7 s of itself (a flat, washed-out image).
- ``blur``: Gaussian blur, sigma up to 1.2 % of the longest side.
- ``jpeg``: JPEG quality 95 - 85 s (10 at full strength).
- ``video_codec``: a short clip of the image encoded and decoded through OpenCV's FFmpeg (H.264 when the
  wheel can encode it, else MPEG-4 Part 2, else Motion JPEG; :func:`video_codec` says which), at a
  resolution reduced to 1 - 0.75 s and a low bitrate, as in a recorded or streamed scan.
- ``rotation``: up to 15 degrees, direction drawn from ``rng``, black fill.
- ``zoom_in`` / ``zoom_out``: scale 1 + 0.3 s / 1 - 0.3 s about the centre (0.7-1.3).
- ``shift``: up to 15 % of the side in a direction drawn from ``rng``, black fill.
- ``letterbox``: the image padded with dark bars on the left and right (up to 40 % of the new width) and
  resized back, as a 4:3 scan in a 16:9 screen grab.
- ``ui_chrome``: synthetic scanner user interface drawn around and over the sector: header bar with text,
  side panel with a TGC curve, depth ticks, calipers with a dotted line and a measurement label.
- ``crop``: a window of 1 - 0.4 s of each side, placed by ``rng``, resized back to the full size.

:func:`random_perturbation` draws a random chain of them for training-time augmentation.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fetalscope.errors import BadInputError
from fetalscope.imaging import degrade

PerturbFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

#: the strengths a robustness report runs each perturbation at (mild, moderate, strong)
REPORT_STRENGTHS: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)

SPECKLE_MAX = 0.35
SPECKLE_CORRELATION = 0.006  # filter sigma as a fraction of the longest side
ROTATION_MAX_DEG = 15.0
ZOOM_MAX = 0.3
SHIFT_MAX = 0.15
BLUR_MAX = 0.012
LETTERBOX_MAX = 0.4
CROP_MAX = 0.4
VIDEO_SCALE_MAX = 0.75
VIDEO_BITRATE = 50_000
VIDEO_FRAMES = 6


def _check(rgb: np.ndarray, strength: float) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        got = getattr(rgb, "shape", type(rgb).__name__), getattr(rgb, "dtype", "")
        raise BadInputError(f"a perturbation needs an H x W x 3 uint8 RGB array, got {got}")
    if min(rgb.shape[:2]) < 8:
        raise BadInputError(f"image of {rgb.shape[1]}x{rgb.shape[0]} pixels is too small to perturb (min 8)")
    if not isinstance(strength, int | float | np.floating) or not 0.0 <= float(strength) <= 1.0:
        raise BadInputError(f"perturbation strength must lie in [0, 1], got {strength!r}")
    return np.ascontiguousarray(rgb)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _multiply(rgb: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Every channel of each pixel times the same factor (grey stays grey)."""
    return _to_uint8(rgb.astype(np.float32) * field[..., None])


def speckle(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    sigma = SPECKLE_MAX * strength
    field = 1.0 + sigma * rng.standard_normal(rgb.shape[:2], dtype=np.float32)
    return _multiply(rgb, np.maximum(field, 0.0))


def speckle_correlated(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    sigma = SPECKLE_MAX * strength
    noise = rng.standard_normal(rgb.shape[:2], dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), max(1.0, SPECKLE_CORRELATION * max(rgb.shape[:2])))
    smooth /= max(float(smooth.std()), 1e-6)
    return _multiply(rgb, np.maximum(1.0 + sigma * smooth, 0.0))


def gain_down(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return degrade.darken(rgb, 1.0 - 0.6 * strength)


def gain_up(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return degrade.over_gain(rgb, 1.0 + 1.5 * strength)


def contrast(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    x = rgb.astype(np.float32)
    mean = float(x.mean())
    return _to_uint8(mean + (x - mean) * (1.0 - 0.7 * strength))


def blur(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return degrade.blur(rgb, BLUR_MAX * strength)


def jpeg(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    quality = round(95 - 85 * strength)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadInputError("OpenCV could not JPEG-encode the image")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """FFmpeg prints failed encoder probes straight to file descriptor 2; hide them while probing."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_CODECS = (("avc1", ".mp4", "H.264"), ("mp4v", ".mp4", "MPEG-4 Part 2"), ("MJPG", ".avi", "Motion JPEG"))


def _writer(path: Path, fourcc: str, size: tuple[int, int]) -> cv2.VideoWriter:
    return cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 25.0, size,
                           [cv2.VIDEOWRITER_PROP_BITRATE, VIDEO_BITRATE])


@functools.cache
def _codec() -> tuple[str, str, str]:
    with tempfile.TemporaryDirectory() as tmp, _quiet_stderr():
        for fourcc, suffix, name in _CODECS:
            writer = _writer(Path(tmp) / f"probe{suffix}", fourcc, (64, 48))
            if writer.isOpened():
                writer.release()
                return fourcc, suffix, name
    raise BadInputError("this OpenCV build can encode no video codec (tried H.264, MPEG-4, Motion JPEG)")


def video_codec() -> str:
    """The codec ``video_codec`` encodes with in this installation, e.g. ``"MPEG-4 Part 2 (mp4v)"``."""
    fourcc, _, name = _codec()
    return f"{name} ({fourcc})"


def video_codec_roundtrip(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    fourcc, suffix, _ = _codec()
    h, w = rgb.shape[:2]
    scale = 1.0 - VIDEO_SCALE_MAX * strength
    size = (max(16, round(w * scale)) // 2 * 2, max(16, round(h * scale)) // 2 * 2)  # codecs want even sides
    small = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    frame = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        writer = _writer(path, fourcc, size)
        for _ in range(VIDEO_FRAMES):
            writer.write(small)
        writer.release()
        capture = cv2.VideoCapture(str(path))
        while True:
            ok, decoded = capture.read()
            if not ok:
                break
            frame = decoded  # the last frame: predicted from the earlier ones, as most frames of a clip
        capture.release()
    if frame is None:
        raise BadInputError(f"the {video_codec()} clip could not be decoded again")
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_LINEAR)


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _warp(rgb: np.ndarray, angle_deg: float, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle_deg, scale)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def rotation(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return _warp(rgb, _sign(rng) * ROTATION_MAX_DEG * strength, 1.0)


def zoom_in(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return _warp(rgb, 0.0, 1.0 + ZOOM_MAX * strength)


def zoom_out(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return degrade.zoom_out(rgb, 1.0 - ZOOM_MAX * strength)


def shift(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    dx = round(math.cos(angle) * SHIFT_MAX * strength * w)
    dy = round(math.sin(angle) * SHIFT_MAX * strength * h)
    return degrade.shift(rgb, dx, dy)


def letterbox(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    bar = round(w * LETTERBOX_MAX * strength / (1 - LETTERBOX_MAX * strength) / 2)
    level = int(rng.integers(0, 40))
    wide = cv2.copyMakeBorder(rgb, 0, 0, bar, bar, cv2.BORDER_CONSTANT, value=(level, level, level))
    return cv2.resize(wide, (w, h), interpolation=cv2.INTER_AREA)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, grey: int = 220) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (grey, grey, grey), max(1, round(scale * 2)),
                cv2.LINE_AA)


def ui_chrome(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    if strength == 0:
        return rgb.copy()
    out = rgb.copy()
    h, w = out.shape[:2]
    unit = max(h, w) / 600  # sizes below are for a 600-pixel image
    font = 0.45 * unit
    # header bar with hospital, probe, date and safety indices
    header = max(2, round(h * 0.09 * strength))
    out[:header] = (20, 24, 28)
    line = max(1, round(14 * unit))
    hospital = f"HOSPITAL {int(rng.integers(1, 99)):02d}  C5-{int(rng.integers(1, 9))}  OB 2/3"
    _text(out, hospital, (round(6 * unit), min(header - 2, line)), font)
    if header > 2 * line:
        stamp = f"2026/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d}  MI 0.{int(rng.integers(5, 10))}"
        _text(out, stamp + "  TIs 0.3", (round(6 * unit), 2 * line), font)
    # side panel with a TGC curve and a depth scale
    panel = max(2, round(w * 0.08 * strength))
    out[:, w - panel:] = (16, 16, 16)
    ys = np.linspace(header, h - 1, 8).astype(int)
    xs = (w - panel + panel * (0.3 + 0.4 * rng.random(len(ys)))).astype(int)
    cv2.polylines(out, [np.stack([xs, ys], axis=1).astype(np.int32)], False, (200, 200, 120), max(1, round(unit)))
    for i, y in enumerate(range(header, h, max(4, round(h / (4 + 8 * strength))))):
        cv2.line(out, (w - panel - round(8 * unit), y), (w - panel, y), (230, 230, 230), max(1, round(unit)))
        if strength > 0.5:
            _text(out, str(i * 2), (w - panel + 2, min(h - 2, y + line // 2)), 0.8 * font)
    # calipers with a dotted line and a measurement label inside the image
    n_calipers = 1 + round(2 * strength)
    for _ in range(n_calipers):
        p = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.25, 0.85) * h])
        q = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.25, 0.85) * h])
        arm = round(7 * unit)
        for x, y in (p.astype(int), q.astype(int)):
            cv2.line(out, (x - arm, y), (x + arm, y), (255, 255, 0), max(1, round(unit)))
            cv2.line(out, (x, y - arm), (x, y + arm), (255, 255, 0), max(1, round(unit)))
        for t in np.linspace(0, 1, 16)[1:-1]:
            x, y = (p + t * (q - p)).astype(int)
            cv2.circle(out, (int(x), int(y)), max(1, round(unit)), (255, 255, 0), -1)
    label = f"HC {rng.uniform(80, 330):.1f} mm  GA {int(rng.integers(14, 40))}w{int(rng.integers(0, 7))}d"
    _text(out, label, (round(8 * unit), h - round(10 * unit)), font, 255)
    return out


def crop(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    keep = 1.0 - CROP_MAX * strength
    ch, cw = max(2, round(h * keep)), max(2, round(w * keep))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return cv2.resize(rgb[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation: the function and what a strength means for it."""

    name: str
    fn: PerturbFn
    describe: Callable[[float], str]

    def __call__(self, rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        rgb = _check(rgb, strength)
        if not isinstance(rng, np.random.Generator):
            raise BadInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if float(strength) == 0.0:
            return rgb.copy()
        out = self.fn(rgb, float(strength), rng)
        assert out.shape == rgb.shape and out.dtype == np.uint8, (self.name, out.shape, out.dtype)
        return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("speckle", speckle, lambda s: f"pixel-wise {_pct(SPECKLE_MAX * s)}"),
    Perturbation("speckle_correlated", speckle_correlated, lambda s: f"correlated {_pct(SPECKLE_MAX * s)}"),
    Perturbation("gain_down", gain_down, lambda s: f"x{1 - 0.6 * s:.2f}"),
    Perturbation("gain_up", gain_up, lambda s: f"x{1 + 1.5 * s:.2f}"),
    Perturbation("contrast", contrast, lambda s: f"contrast x{1 - 0.7 * s:.2f}"),
    Perturbation("blur", blur, lambda s: f"sigma {100 * BLUR_MAX * s:.1f}% of side"),
    Perturbation("jpeg", jpeg, lambda s: f"quality {round(95 - 85 * s)}"),
    Perturbation("video_codec", video_codec_roundtrip,
                 lambda s: f"{_pct(1 - VIDEO_SCALE_MAX * s)} size, {VIDEO_BITRATE // 1000} kbit/s"),
    Perturbation("rotation", rotation, lambda s: f"{ROTATION_MAX_DEG * s:.0f} deg"),
    Perturbation("zoom_in", zoom_in, lambda s: f"x{1 + ZOOM_MAX * s:.2f}"),
    Perturbation("zoom_out", zoom_out, lambda s: f"x{1 - ZOOM_MAX * s:.2f}"),
    Perturbation("shift", shift, lambda s: f"{_pct(SHIFT_MAX * s)} of side"),
    Perturbation("letterbox", letterbox, lambda s: f"bars {_pct(LETTERBOX_MAX * s)} of width"),
    Perturbation("ui_chrome", ui_chrome, lambda s: f"UI {_pct(s)}"),
    Perturbation("crop", crop, lambda s: f"keep {_pct(1 - CROP_MAX * s)} of each side"),
)}


def get_perturbation(name: str) -> Perturbation:
    """The perturbation called ``name``; a clear :class:`BadInputError` for an unknown one."""
    try:
        return PERTURBATIONS[name]
    except (KeyError, TypeError):
        raise BadInputError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}") from None


def perturb(rgb: np.ndarray, name: str, strength: float, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``rgb`` perturbed by ``name`` at ``strength`` with a generator seeded by ``seed`` (or given)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return get_perturbation(name)(rgb, strength, rng)


#: perturbations :func:`random_perturbation` draws from by default (all of them)
AUGMENTATION_NAMES: tuple[str, ...] = tuple(PERTURBATIONS)


def random_chain(rng: np.random.Generator, max_strength: float = 1.0, *, max_length: int = 3,
                 names: Sequence[str] = AUGMENTATION_NAMES) -> list[tuple[str, float]]:
    """A random chain of 1 to ``max_length`` distinct perturbations with strengths uniform in
    ``[0, max_strength]``, in a random order."""
    if not 0.0 <= max_strength <= 1.0:
        raise BadInputError(f"max_strength must lie in [0, 1], got {max_strength!r}")
    for name in names:
        get_perturbation(name)
    if not names or max_length < 1:
        raise BadInputError("random_chain needs at least one perturbation name and max_length >= 1")
    length = int(rng.integers(1, min(max_length, len(names)) + 1))
    chosen = rng.choice(len(names), size=length, replace=False)
    return [(names[int(i)], float(rng.uniform(0.0, max_strength))) for i in chosen]


def apply_chain(rgb: np.ndarray, chain: Sequence[tuple[str, float]], rng: np.random.Generator) -> np.ndarray:
    out = rgb
    for name, strength in chain:
        out = get_perturbation(name)(out, strength, rng)
    return out


def random_perturbation(rgb: np.ndarray, rng: np.random.Generator, max_strength: float = 1.0, *,
                        max_length: int = 3, names: Sequence[str] = AUGMENTATION_NAMES) -> np.ndarray:
    """Training-time augmentation: ``rgb`` through a random chain of perturbations (:func:`random_chain`)."""
    return apply_chain(rgb, random_chain(rng, max_strength, max_length=max_length, names=names), rng)
