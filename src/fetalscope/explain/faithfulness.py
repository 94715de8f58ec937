"""Do the maps point at what the model uses? Deletion and insertion curves (Petsiuk et al. 2018).

Deletion: pixels are replaced by a baseline in the map's order, most important first, and the
target probability is tracked; a faithful map makes it fall fast (small area under the curve).
Insertion: starting from the baseline image, pixels of the real image come back in the map's
order; a faithful map makes the probability rise fast (large AUC). Both are compared with the
same curves for random pixel orders - a map that does no better than random order carries no
information about the model.

The default baseline for both is a strong Gaussian blur of the image (sigma 4 % of the shorter
side). Replacing scattered pixels with black or a constant grey sprinkles impulse noise over a
speckled B-mode image, and models react to the noise itself: on the bundled SonoNet model, 10 %
of random pixels set to the image's mean grey send a thorax image's probability from 0.91 to
0.01 (to 0.21 when they take the blurred value instead), so that every order looks alike.
Blurred pixels remove detail while adding fewer new edges. ``deletion_baseline`` /
``insertion_baseline`` accept ``black``, ``mean``, ``zero`` or a number as well.

Every perturbed image of a curve is evaluated in batches under ``torch.inference_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError
from fetalscope.explain.common import as_batch, inference_setup, make_baseline, model_device


@dataclass
class Curves:
    """Target probability after removing (deletion) or adding (insertion) each fraction of pixels."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        return auc(self.fractions, self.deletion)

    @property
    def insertion_auc(self) -> float:
        return auc(self.fractions, self.insertion)

    def to_dict(self) -> dict[str, Any]:
        return {"fractions": self.fractions.tolist(), "deletion": self.deletion.tolist(),
                "insertion": self.insertion.tolist(), "deletion_auc": self.deletion_auc,
                "insertion_auc": self.insertion_auc}


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)``; x runs over [0, 1], so the AUC is a mean probability."""
    return float(np.trapezoid(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)))


def pixel_order(attr: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Flat pixel indices from most to least important; ties (flat CAM regions, LIME superpixels)
    are broken at random so that raster order never decides."""
    a = np.asarray(attr, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        raise BadInputError("attribution map contains NaN or infinite values")
    tie = (rng or np.random.default_rng(0)).random(a.size)
    return np.lexsort((tie, -a))


def random_order(n_pixels: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(n_pixels)


def _fractions(steps: int) -> np.ndarray:
    if steps < 2:
        raise BadInputError(f"faithfulness curves need steps >= 2, got {steps}")
    return np.linspace(0.0, 1.0, steps + 1)


def curves(model: nn.Module, x: torch.Tensor, target: int, orders: list[np.ndarray],
           deletion_baseline: torch.Tensor, insertion_baseline: torch.Tensor, steps: int = 20,
           batch_size: int = 16) -> list[Curves]:
    """Deletion and insertion curves of one image ``1 x C x H x W`` for each pixel order.

    All ``2 x (steps + 1)`` perturbed images per order are built as masks over the flat pixel
    ranks and run through the model in batches of ``batch_size``.
    """
    x = as_batch(x)
    if x.shape[0] != 1:
        raise BadInputError("faithfulness curves take one image at a time")
    n_pix = x.shape[2] * x.shape[3]
    fr = _fractions(steps)
    counts = np.round(fr * n_pix).astype(np.int64)
    device = model_device(model)
    x = x.to(device)
    dele = deletion_baseline.to(device).expand_as(x)
    ins = insertion_baseline.to(device).expand_as(x)
    ranks = []
    for order in orders:
        if order.shape != (n_pix,):
            raise BadInputError(f"a pixel order must list all {n_pix} pixels, got {order.shape}")
        rank = torch.empty(n_pix, dtype=torch.long, device=device)
        rank[torch.from_numpy(order).to(device)] = torch.arange(n_pix, device=device)
        ranks.append(rank.view(1, 1, *x.shape[2:]))
    # (order, insertion?, k) for every perturbed image; images are built batch by batch
    jobs = [(j, ins_flag, int(k)) for j in range(len(orders)) for ins_flag in (False, True) for k in counts]
    probs = []
    with inference_setup(model), torch.inference_mode():
        for i in range(0, len(jobs), batch_size):
            batch = torch.cat([torch.where(ranks[j] < k, x, ins) if ins_flag else torch.where(ranks[j] < k, dele, x)
                               for j, ins_flag, k in jobs[i:i + batch_size]])
            probs.append(torch.softmax(model(batch).float(), dim=1)[:, target].cpu())
    p = torch.cat(probs).numpy().astype(np.float64)
    out = []
    m = len(counts)
    for j in range(len(orders)):
        block = p[2 * m * j: 2 * m * (j + 1)]
        out.append(Curves(fr, block[:m], block[m:]))
    return out


def evaluate_maps(model: nn.Module, x: torch.Tensor, target: int, maps: dict[str, np.ndarray], *,
                  steps: int = 20, n_random: int = 3, deletion_baseline: str | float = "blur",
                  insertion_baseline: str | float = "blur", preprocess: PreprocessConfig | None = None,
                  seed: int = 0, batch_size: int = 16) -> dict[str, Any]:
    """Faithfulness of several maps of one image, plus the random-order reference.

    Returns ``{"methods": {name: Curves}, "random": Curves (mean of n_random orders)}``.
    """
    x = as_batch(x)
    if preprocess is None:
        preprocess = getattr(getattr(model, "spec", None), "preprocess", None)
    d_base = make_baseline(x, deletion_baseline, preprocess)
    i_base = make_baseline(x, insertion_baseline, preprocess)
    rng = np.random.default_rng(seed)
    names = list(maps)
    orders = [pixel_order(maps[n], rng) for n in names]
    orders += [random_order(x.shape[2] * x.shape[3], rng) for _ in range(max(1, n_random))]
    res = curves(model, x, target, orders, d_base, i_base, steps=steps, batch_size=batch_size)
    rand = res[len(names):]
    random_mean = Curves(rand[0].fractions, np.mean([c.deletion for c in rand], axis=0),
                         np.mean([c.insertion for c in rand], axis=0))
    return {"methods": dict(zip(names, res[:len(names)], strict=True)), "random": random_mean}


def summarise(per_image: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean curves and AUCs over images, per method and for the random order.

    For each method: ``deletion_auc`` (lower is better), ``insertion_auc`` (higher is better),
    the random order's AUCs on the same images, the gains over random (positive = better than
    random) and ``beats_random`` when both gains are positive.
    """
    if not per_image:
        raise BadInputError("no images to summarise")
    names = list(per_image[0]["methods"])
    fr = per_image[0]["random"].fractions
    rd = np.array([r["random"].deletion_auc for r in per_image])
    ri = np.array([r["random"].insertion_auc for r in per_image])
    out: dict[str, Any] = {
        "random": {"deletion_auc": float(rd.mean()), "insertion_auc": float(ri.mean()),
                   "curves": {"fractions": fr.tolist(),
                              "deletion": np.mean([r["random"].deletion for r in per_image], 0).tolist(),
                              "insertion": np.mean([r["random"].insertion for r in per_image], 0).tolist()}},
        "methods": {},
    }
    for n in names:
        d = np.array([r["methods"][n].deletion_auc for r in per_image])
        i = np.array([r["methods"][n].insertion_auc for r in per_image])
        out["methods"][n] = {
            "deletion_auc": float(d.mean()), "deletion_auc_std": float(d.std()),
            "insertion_auc": float(i.mean()), "insertion_auc_std": float(i.std()),
            "random_deletion_auc": float(rd.mean()), "random_insertion_auc": float(ri.mean()),
            "deletion_gain": float((rd - d).mean()), "insertion_gain": float((i - ri).mean()),
            "deletion_wins": int((d < rd).sum()), "insertion_wins": int((i > ri).sum()), "n_images": len(d),
            "beats_random": bool((rd - d).mean() > 0 and (i - ri).mean() > 0),
            "per_image": {"deletion_auc": d.tolist(), "insertion_auc": i.tolist(),
                          "random_deletion_auc": rd.tolist(), "random_insertion_auc": ri.tolist()},
            "curves": {"fractions": fr.tolist(),
                       "deletion": np.mean([r["methods"][n].deletion for r in per_image], 0).tolist(),
                       "insertion": np.mean([r["methods"][n].insertion for r in per_image], 0).tolist()},
        }
    return out
