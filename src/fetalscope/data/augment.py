"""Training-time augmentation for B-mode ultrasound (numpy + OpenCV).

Takes and returns an ``H x W x 3`` uint8 RGB array, so it sits between
:func:`fetalscope.data.transforms.prepare_array` and :func:`~fetalscope.data.transforms.normalise`.
Every operation is plausible for ultrasound: a small probe rotation, zoom and shift (black
fill, the background of a B-mode display), a left-right flip, gain (brightness), contrast and
gamma (dynamic range) changes, a little blur, and multiplicative speckle noise. Photometric
changes apply the same factor to all channels, so grey stays grey.

Randomness: each :class:`UltrasoundAugment` owns a ``numpy`` generator. In a ``DataLoader``
worker it re-seeds itself from ``seed`` and the worker id (or from torch's per-worker seed when
``seed`` is ``None``), so workers never repeat each other's draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from fetalscope.errors import BadInputError

Augment = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of each random operation (probabilities in [0, 1])."""

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.06  # fraction of the side
    p_affine: float = 0.8
    p_hflip: float = 0.5
    brightness: float = 0.15  # gain factor 1 +- this
    contrast: float = 0.2  # contrast factor 1 +- this around the mean
    gamma: tuple[float, float] = (0.8, 1.25)
    p_photometric: float = 0.8
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    p_blur: float = 0.25
    speckle_shape: tuple[float, float] = (6.0, 20.0)  # gamma shape k: mean 1, variance 1/k
    p_speckle: float = 0.4


LEVELS: dict[str, AugmentParams | None] = {
    "none": None,
    "light": AugmentParams(
        rotate_deg=5.0,
        scale=(0.95, 1.05),
        translate=0.03,
        p_affine=0.6,
        brightness=0.08,
        contrast=0.1,
        gamma=(0.9, 1.1),
        p_photometric=0.6,
        p_blur=0.0,
        speckle_shape=(15.0, 30.0),
        p_speckle=0.25,
    ),
    "default": AugmentParams(),
}


def _identity(rgb: np.ndarray) -> np.ndarray:
    return rgb


class UltrasoundAugment:
    """Callable ``H x W x 3`` uint8 -> ``H x W x 3`` uint8 applying :class:`AugmentParams` at random."""

    def __init__(self, params: AugmentParams, seed: int | None = None):
        self.params = params
        self.seed = seed
        self._pid = os.getpid()
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"UltrasoundAugment({self.params}, seed={self.seed})"

    def _generator(self) -> np.random.Generator:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: give each worker its own stream
            self._pid = os.getpid()
            import torch.utils.data

            info = torch.utils.data.get_worker_info()
            if self.seed is not None:
                wid = info.id if info is not None else self._pid
                self._rng = np.random.default_rng([self.seed, wid])
            else:
                self._rng = np.random.default_rng(info.seed if info is not None else None)
        return self._rng

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if not (
            isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        ):
            got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise BadInputError(f"augmentation expects an H x W x 3 uint8 array, got {got}")
        rng = self._generator()
        p = self.params
        out = rgb
        if rng.random() < p.p_affine:
            out = self._affine(out, rng)
        if rng.random() < p.p_hflip:
            out = out[:, ::-1]
        img = out.astype(np.float32)
        if rng.random() < p.p_photometric:
            img = self._photometric(img, rng)
        if p.p_blur > 0 and rng.random() < p.p_blur:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*p.blur_sigma)))
        if p.p_speckle > 0 and rng.random() < p.p_speckle:
            k = float(rng.uniform(*p.speckle_shape))
            noise = rng.gamma(k, 1.0 / k, size=img.shape[:2]).astype(np.float32)
            img = img * noise[..., None]
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def _affine(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        h, w = rgb.shape[:2]
        angle = float(rng.uniform(-p.rotate_deg, p.rotate_deg))
        scale = float(rng.uniform(*p.scale))
        tx, ty = (float(rng.uniform(-p.translate, p.translate)) * s for s in (w, h))
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
        m[:, 2] += (tx, ty)
        return cv2.warpAffine(
            np.ascontiguousarray(rgb),
            m,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )

    def _photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        img = img * float(rng.uniform(1 - p.brightness, 1 + p.brightness))
        c = float(rng.uniform(1 - p.contrast, 1 + p.contrast))
        img = (img - float(img.mean())) * c + float(img.mean())
        g = float(math.exp(rng.uniform(math.log(p.gamma[0]), math.log(p.gamma[1]))))
        return 255.0 * np.power(np.clip(img, 0, 255) / 255.0, g)


def build_augment(
    level: str = "default", seed: int | None = None, **overrides: float | tuple[float, float]
) -> Augment:
    """The augmentation for a level: ``default``, ``light`` or ``none`` (identity).

    ``overrides`` replace single :class:`AugmentParams` fields (e.g. ``p_hflip=0`` for sets where
    left and right matter).
    """
    if level not in LEVELS:
        raise BadInputError(f"unknown augmentation level {level!r}; use one of {sorted(LEVELS)}")
    params = LEVELS[level]
    if params is None:
        if overrides:
            raise BadInputError("augmentation level 'none' takes no parameter overrides")
        return _identity
    try:
        params = replace(params, **overrides)
    except TypeError as exc:
        raise BadInputError(f"unknown augmentation parameter in {sorted(overrides)} ({exc})") from exc
    return UltrasoundAugment(params, seed=seed)
