"""SonoNet-16's outputs on the real images (cached) and its 14 planes mapped onto the FETAL_PLANES_DB planes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from fetalscope.data import transforms as transforms_module
from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.real_sets import RealImage
from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.imaging import load_image
from fetalscope.imaging import loader as loader_module
from fetalscope.imaging import sector as sector_module
from fetalscope.models.sononet import PLANES_COVERED, SONONET_CLASSES, SONONET_TO_PLANES, SonoNetClassifier
from fetalscope.train.recipes.sononet.common import image_list_sha256

BATCH = 32


@torch.inference_mode()
def sononet_outputs(
    model: SonoNetClassifier, images: list[RealImage], cfg: PreprocessConfig, cache: Path, weights_sha: str
) -> dict[str, np.ndarray]:
    """SonoNet's 14 logits and the spatial mean of the backbone output (128) for every image (cached).

    The cache key covers the image list, the preprocessing config, the weights and the source code
    of the loader, the sector crop and the transforms, so a change in any of them recomputes."""
    code = hashlib.sha256()
    for module in (loader_module, sector_module, transforms_module):
        code.update(Path(module.__file__).read_bytes())
    key = hashlib.sha256(
        json.dumps(
            {"images": image_list_sha256(images), "cfg": cfg.to_dict(), "weights": weights_sha,
             "code": code.hexdigest(), "v": 1},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    path = cache / f"outputs-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    model.eval()
    native, feats = [], []
    t0 = time.time()
    for i in range(0, len(images), BATCH):
        x = torch.stack([to_tensor(load_image(im.path), cfg) for im in images[i : i + BATCH]])
        f = model.backbone(x)
        native.append(model.head.native(f).numpy())
        feats.append(f.mean(dim=(2, 3)).numpy())
        print(
            f"  crop_sector={cfg.crop_sector}: {min(i + BATCH, len(images))}/{len(images)} images "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )
    out = {"native": np.concatenate(native), "features": np.concatenate(feats)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def mapped_probs(native: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities over :data:`PLANES_COVERED`: sums of SonoNet's softmax(z / T) over each group."""
    p = softmax(np.asarray(native, np.float64) / temperature, axis=1)
    return np.stack(
        [p[:, [SONONET_CLASSES.index(m) for m in SONONET_TO_PLANES[c]]].sum(1) for c in PLANES_COVERED],
        axis=1,
    )


def to_plane_space(p_covered: np.ndarray) -> np.ndarray:
    """Probabilities over all of :data:`PLANE_CLASSES` (0 for the classes not covered)."""
    out = np.zeros((len(p_covered), len(PLANE_CLASSES)))
    for j, c in enumerate(PLANES_COVERED):
        out[:, PLANE_CLASSES.index(c)] = p_covered[:, j]
    return out
