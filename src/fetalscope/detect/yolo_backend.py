"""Optional Ultralytics YOLO backend (``pip install fetalscope[yolo]``).

Licence: Ultralytics is **AGPL-3.0**. fetalscope's core never imports it; this module is loaded only
when the YOLO backend is asked for, and models trained with it are not bundled with fetalscope.
Using it in a network service brings AGPL obligations (or an Ultralytics enterprise licence).

Fully offline:

- ``YOLO_OFFLINE=1`` is set before import (Ultralytics then skips its online checks);
- ``YOLO_CONFIG_DIR`` points into fetalscope's cache (``cache_dir()/ultralytics``), so settings and
  fonts never land in the user's home;
- its plotting font (``Arial.ttf``) is satisfied with matplotlib's bundled DejaVu Sans, copied into
  that folder, so nothing is downloaded; training runs with ``plots=False`` anyway;
- models are built from a model yaml (``yolov8n.yaml``, ``yolo11n.yaml``), never from a ``.pt``
  download (``pretrained=False``).

This module is inference only (:class:`UltralyticsDetector` behind the :class:`~fetalscope.detect.types.Detector`
face); training an Ultralytics model with the project's protocol lives in :mod:`fetalscope.train.detector.yolo`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope import config
from fetalscope.detect.types import Box
from fetalscope.errors import UnsupportedError
from fetalscope.imaging.loader import UltrasoundImage

LICENCE = "AGPL-3.0 (Ultralytics)"
INSTALL_HINT = "install the optional extra: pip install 'fetalscope[yolo]' (Ultralytics, AGPL-3.0)"


def ultralytics_config_dir() -> Path:
    """Where Ultralytics keeps settings and fonts: ``cache_dir()/ultralytics``."""
    path = config.cache_dir() / "ultralytics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _import_ultralytics() -> Any:
    """Import Ultralytics offline, with its config dir in the cache and a local font in place."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ultralytics_config_dir()))
    from PIL import Image

    pil_open = Image.open
    try:
        import ultralytics
        from ultralytics.utils import SETTINGS, USER_CONFIG_DIR
    except ModuleNotFoundError as exc:
        raise UnsupportedError(f"the YOLO backend needs Ultralytics, which is not installed: {INSTALL_HINT}") from exc
    finally:
        # Ultralytics replaces PIL.Image.open process-wide with a version that tries to install a HEIF
        # plugin on any unreadable file; fetalscope's one loader must keep PIL's own behaviour.
        Image.open = pil_open
    import matplotlib

    font_src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists() and font_src.is_file():
            shutil.copyfile(font_src, target)
    SETTINGS.update({"sync": False})
    return ultralytics


def yolo_class() -> Any:
    """Ultralytics' ``YOLO`` model class, imported offline (see :func:`_import_ultralytics`)."""
    _import_ultralytics()
    from ultralytics import YOLO

    return YOLO


def is_available() -> bool:
    """Whether the optional Ultralytics package is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ultralytics") is not None


class UltralyticsDetector:
    """A trained Ultralytics model behind the :class:`~fetalscope.detect.types.Detector` face."""

    def __init__(self, model: Any, classes: Sequence[str], imgsz: int = 320, min_score: float = 0.01) -> None:
        self.model = model
        self.classes = tuple(classes)
        self.imgsz = imgsz
        self.min_score = min_score

    @classmethod
    def load(cls, weights: str | Path, classes: Sequence[str], imgsz: int = 320) -> UltralyticsDetector:
        return cls(yolo_class()(str(weights)), classes, imgsz)

    def predict_batch(self, images: list[UltrasoundImage]) -> list[list[Box]]:
        if not images:
            return []
        # Ultralytics expects BGR numpy arrays for in-memory images
        arrays = [np.ascontiguousarray(im.pixels[..., ::-1]) for im in images]
        results = self.model.predict(arrays, imgsz=self.imgsz, conf=self.min_score, device="cpu", verbose=False)
        out = []
        for res in results:
            boxes = res.boxes
            xyxy = boxes.xyxy.cpu().numpy().tolist()
            conf = boxes.conf.cpu().numpy().tolist()
            cls = boxes.cls.cpu().numpy().astype(int).tolist()
            out.append(
                sorted(
                    (Box(self.classes[c], float(s), *map(float, b)) for b, s, c in zip(xyxy, conf, cls, strict=True)),
                    key=lambda b: -b.score,
                )
            )
        return out

    def predict(self, image: UltrasoundImage) -> list[Box]:
        return self.predict_batch([image])[0]
