"""Heatmap overlays of attribution maps on the image they explain, and raw ``.npy`` maps.

Unsigned maps (Grad-CAM, guided backprop) are scaled from 0 to a high percentile of their
values and drawn with a sequential colour map (default ``jet``); signed maps (Integrated
Gradients, occlusion, LIME) are scaled symmetrically around zero and drawn with a diverging map
(default ``RdBu_r``: red supports the class, blue speaks against it). Any matplotlib colour map
name is accepted. :func:`display_range` gives the values at the ends of the colour map, and the colour scale
beside an overlay (:func:`with_colour_scale`) states them.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError
from fetalscope.imaging.display import OVERLAY_SIDE, thumbnail
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.imaging.sector import find_sector

DEFAULT_CMAP = "jet"
DEFAULT_ALPHA = 0.5
DEFAULT_SIGNED_CMAP = "RdBu_r"


def _colormap(name: str):
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        names = sorted(matplotlib.colormaps)
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BadInputError(f"unknown colour map '{name}'.{hint} Use a matplotlib colour map name, e.g. jet, "
                            f"inferno, viridis, RdBu_r") from None


def display_range(attr: np.ndarray, signed: bool = False, clip_percentile: float = 99.5) -> tuple[float, float]:
    """The map values drawn at the two ends of the colour map (what the colour scale states).

    Signed maps: ``(-top, +top)``, symmetric around zero, ``top`` the ``clip_percentile`` of ``|map|``
    (0 when the map is all zero). Unsigned maps: ``(min, min + top)``, ``top`` the ``clip_percentile`` of
    ``map - min`` (its maximum when that is 0). Values beyond the range are drawn as its end colour."""
    a = np.asarray(attr, dtype=np.float32)
    if a.ndim != 2:
        raise BadInputError(f"an attribution map must be H x W, got shape {a.shape}")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if not a.size:
        return (0.0, 0.0)
    if signed:
        top = max(0.0, float(np.percentile(np.abs(a), clip_percentile)))
        return (-top, top)
    low = float(a.min())
    top = float(np.percentile(a - low, clip_percentile))
    if top <= 0:
        top = float((a - low).max())
    return (low, low + max(0.0, top))


def scale_map(attr: np.ndarray, signed: bool = False, clip_percentile: float = 99.5) -> np.ndarray:
    """Map -> [0, 1] for display over :func:`display_range`. Signed: 0.5 is zero; unsigned: 0 is the map's
    minimum."""
    low, high = display_range(attr, signed, clip_percentile)
    a = np.nan_to_num(np.asarray(attr, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if signed:
        if high <= 0:
            return np.full(a.shape, 0.5, dtype=np.float32)
        return np.clip(0.5 + 0.5 * a / high, 0.0, 1.0).astype(np.float32)
    if high - low <= 0:
        return np.zeros(a.shape, dtype=np.float32)
    return np.clip((a - low) / (high - low), 0.0, 1.0).astype(np.float32)


def fit_map(attr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``attr`` as float32 at ``shape[:2]`` (bilinear), as :func:`overlay` draws it on an image of that shape."""
    a = np.asarray(attr, dtype=np.float32)
    if a.shape != tuple(shape[:2]):
        a = cv2.resize(a, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return a


def colorize(attr: np.ndarray, cmap: str | None = None, signed: bool = False,
             clip_percentile: float = 99.5) -> np.ndarray:
    """``H x W`` map -> ``H x W x 3`` uint8 RGB heatmap."""
    name = cmap or (DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP)
    rgba = _colormap(name)(scale_map(attr, signed, clip_percentile))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def scale_labels(signed: bool, value_range: tuple[float, float] | None = None) -> list[tuple[list[str], float]]:
    """The words (and, given ``value_range``, the values) written beside the colour bar: lines of text and
    where they sit (0 top, 1 bottom). Signed maps: evidence *for* the class at the top, *0* in the middle,
    *against* at the bottom; unsigned maps: *high* at the top, *low* at the bottom."""
    if value_range is None:
        return [(["for"], 0.0), (["0"], 0.5), (["against"], 1.0)] if signed else [(["high"], 0.0), (["low"], 1.0)]
    low, high = value_range
    if signed:
        return [(["for", f"{high:+.2g}"], 0.0), (["0"], 0.5), ([f"{low:+.2g}", "against"], 1.0)]
    return [(["high", f"{high:.2g}"], 0.0), ([f"{low:.2g}", "low"], 1.0)]


def with_colour_scale(overlay_rgb: np.ndarray, signed: bool = False, cmap: str | None = None,
                      value_range: tuple[float, float] | None = None) -> np.ndarray:
    """``overlay_rgb`` with its colour scale on the right: a bar of the colour map with its meaning written
    beside it (:func:`scale_labels`; with ``value_range``, from :func:`display_range`, the map values at the
    bar's ends too), so every map reads the same way."""
    h, w = overlay_rgb.shape[:2]
    scale = max(0.3, h / 900)
    labels = scale_labels(signed, value_range)
    widest = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for lines, _ in labels
                 for line in lines)
    bar_w, text_w = max(8, h // 40), max(44, h // 6, widest + 6)
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    name = cmap or (DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP)
    bar = (_colormap(name)(ramp)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    panel = np.full((h, bar_w + text_w, 3), 255, np.uint8)
    panel[:, :bar_w] = bar
    for lines, where in labels:
        (_, th), base = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        step = th + base + 2
        block = step * len(lines)
        top = int(np.clip(where * (h - 1) - block / 2, 1, h - block - 1))
        for k, text in enumerate(lines):
            cv2.putText(panel, text, (bar_w + 3, top + th + k * step), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return np.concatenate([np.ascontiguousarray(overlay_rgb[..., :3]), panel], axis=1)


def model_region(image: UltrasoundImage | np.ndarray, preprocess: PreprocessConfig,
                 side: int = OVERLAY_SIDE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of ``image`` the model saw (its ultrasound sector when ``preprocess`` crops to it), at most
    ``side`` px on its longest side: what every explanation is drawn on, in the CLI, the API and the app; and
    that part's box ``(x0, y0, x1, y1)`` in the image's own pixels (x1, y1 exclusive)."""
    rgb = image.pixels if isinstance(image, UltrasoundImage) else np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if not preprocess.crop_sector:
        return thumbnail(rgb, side), (0, 0, int(rgb.shape[1]), int(rgb.shape[0]))
    box = find_sector(rgb)
    return thumbnail(rgb[box.y0:box.y1, box.x0:box.x1], side), (box.x0, box.y0, box.x1, box.y1)


def overlay(image: np.ndarray, attr: np.ndarray, cmap: str | None = None, alpha: float = DEFAULT_ALPHA,
            signed: bool = False, clip_percentile: float = 99.5) -> np.ndarray:
    """Blend a heatmap of ``attr`` over ``image`` (``H x W`` or ``H x W x 3`` uint8).

    ``alpha`` is the heatmap's opacity (0: image only, 1: heatmap only). A map of another size is
    resized to the image with bilinear interpolation.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise BadInputError(f"overlay opacity alpha must be between 0 and 1, got {alpha}")
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise BadInputError(f"overlay needs an H x W or H x W x 3 image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    heat = colorize(fit_map(attr, img.shape), cmap, signed, clip_percentile).astype(np.float32)
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * heat
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def overlay_png(image: np.ndarray, attr: np.ndarray, cmap: str | None = None, alpha: float = 0.5,
                signed: bool = False) -> bytes:
    """PNG bytes of :func:`overlay` (for the API and the UI)."""
    return png_bytes(overlay(image, attr, cmap, alpha, signed))


def save_overlay(path: str | Path, image: np.ndarray, attr: np.ndarray, cmap: str | None = None,
                 alpha: float = 0.5, signed: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(overlay_png(image, attr, cmap, alpha, signed))
    return path


def save_map(path: str | Path, attr: np.ndarray) -> Path:
    """The raw ``H x W`` float32 map as ``.npy`` (``np.load`` reads it back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(attr, dtype=np.float32))
    return path
