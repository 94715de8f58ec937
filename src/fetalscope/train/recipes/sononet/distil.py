"""Fine-tune ``sononet16_planes`` without erasing what SonoNet knows: label-corrected self-distillation.

The student starts as SonoNet-16 and sees *perturbed* images (speckle, compression, zoom, ... through a
``perturb(rgb, rng)`` callable, e.g. :func:`fetalscope.imaging.perturb.random_perturbation`); its target is
the frozen teacher's full 14-way SonoNet distribution on the *clean* image, in the same view (sector crop or
whole image). On an image with a plane label the teacher's mass is moved onto the members of the labelled
plane, keeping how the teacher splits it among them (e.g. Brain (Tv.) vs Brain (Cb.)):
``target = label_mix * renorm(p_teacher * members + floor) + (1 - label_mix) * p_teacher``.
Images without a label (``label = -1``) keep the teacher's distribution as it is. So the planes that have
no images here (abdomen, femur, Other) are never pushed down by a label, and the student learns to give
the teacher's clean answer under perturbation. Early stages stay frozen (computed without gradients);
BatchNorm statistics stay SonoNet's (the model stays in ``eval`` mode).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.models.sononet import (
    FEATURE_STAGES,
    PLANES_COVERED,
    SONONET_CLASSES,
    SONONET_TO_PLANES,
    SonoNetClassifier,
)

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]
FIT_SALT = "fetalscope/sononet-planes/v2-fit"
VIEWS = (True, False)  # crop_sector on, off


@dataclass(frozen=True)
class DistilSettings:
    """How the student is trained (every field goes into the card)."""

    epochs: int = 4
    batch_size: int = 16
    steps_per_epoch: int | None = None  # default: one pass over the items
    lr: float = 2e-4
    train_from_stage: int = 4  # stages >= this one and SonoNet's head are trained; earlier ones frozen
    label_mix: float = 0.9
    floor: float = 0.02
    perturb_share: float = 0.8  # share of training images perturbed (the rest clean)
    whole_image_share: float = 0.5  # share shown as the whole image resized (the rest sector-cropped)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DistilItem:
    """One training image: RGB uint8 pixels, its plane index in :data:`PLANES_COVERED` (-1: no label), the
    source it comes from (for balancing), and the teacher's clean 14 logits per view (filled by
    :func:`teacher_logits`)."""

    rgb: np.ndarray
    label: int
    source: str = ""
    teacher: dict[bool, np.ndarray] = field(default_factory=dict)


def fit_or_hold(group: str) -> str:
    """``fit`` (3 groups in 4) or ``hold`` (temperature and choices), a fixed hash of the group."""
    digest = hashlib.sha256(f"{FIT_SALT}:{group}".encode()).digest()
    return "hold" if digest[0] % 4 == 0 else "fit"


def member_mask() -> torch.Tensor:
    """``len(PLANES_COVERED) x 14``: 1 where a SonoNet class belongs to a plane."""
    mask = torch.zeros(len(PLANES_COVERED), len(SONONET_CLASSES))
    for i, plane in enumerate(PLANES_COVERED):
        for member in SONONET_TO_PLANES[plane]:
            mask[i, SONONET_CLASSES.index(member)] = 1.0
    return mask


def target_distribution(teacher: torch.Tensor, labels: torch.Tensor, label_mix: float,
                        floor: float) -> torch.Tensor:
    """The 14-way training target of each image (see the module docstring); ``labels`` -1: the teacher's."""
    p = teacher.softmax(dim=1)
    labelled = labels >= 0
    if not labelled.any():
        return p
    members = member_mask()[labels.clamp(min=0)]
    moved = p * members + floor * members / members.sum(1, keepdim=True)
    moved = moved / moved.sum(1, keepdim=True)
    mixed = label_mix * moved + (1.0 - label_mix) * p
    return torch.where(labelled[:, None], mixed, p)


def source_weights(items: Sequence[DistilItem]) -> np.ndarray:
    """Sampling weights: every (source, label) cell weighs the same in total, so one set does not swamp."""
    cells = [(it.source, it.label) for it in items]
    counts: dict[tuple[str, int], int] = {}
    for c in cells:
        counts[c] = counts.get(c, 0) + 1
    w = np.array([1.0 / counts[c] for c in cells])
    return w / w.sum()


@torch.inference_mode()
def teacher_logits(teacher: SonoNetClassifier, items: Sequence[DistilItem], cfg: PreprocessConfig,
                   batch: int = 32) -> None:
    """Fill each item's ``teacher`` with the frozen teacher's 14 logits on the clean image, per view."""
    teacher.eval()
    for crop in VIEWS:
        view = cfg.replace(crop_sector=crop)
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            z = teacher.native_logits(torch.stack([to_tensor(it.rgb, view) for it in chunk])).numpy()
            for it, row in zip(chunk, z, strict=True):
                it.teacher[crop] = row


def _split_stages(model: SonoNetClassifier, train_from: int) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    stages = model.backbone.stages()
    return stages[: train_from - 1], [*stages[train_from - 1 :], model.head.native]


def student_native(model: SonoNetClassifier, x: torch.Tensor, train_from: int) -> torch.Tensor:
    """SonoNet's 14 logits of ``model``, the frozen stages run without gradients."""
    frozen, trained = _split_stages(model, train_from)
    with torch.no_grad():
        for m in frozen:
            x = m(x)
    for m in trained:
        x = m(x)
    return x


def distil(student: SonoNetClassifier, items: Sequence[DistilItem], cfg: PreprocessConfig,
           settings: DistilSettings, perturb: Perturb | None = None,
           log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``student`` in place (its 14-way head) on ``items`` (teacher logits filled). Returns the
    history: mean KL loss and agreement of the student's top-1 SonoNet class with the target's per epoch,
    seconds."""
    if not 1 <= settings.train_from_stage <= len(FEATURE_STAGES) + 1:
        raise ValueError(f"train_from_stage must be 1..{len(FEATURE_STAGES) + 1}")
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    student.eval()  # BatchNorm keeps SonoNet's statistics
    frozen, trained = _split_stages(student, settings.train_from_stage)
    for p in student.parameters():
        p.requires_grad_(False)
    params = [p for m in trained for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    weights = source_weights(items)
    steps = settings.steps_per_epoch or max(1, len(items) // settings.batch_size)
    history: list[dict[str, float]] = []
    t0 = time.time()
    for epoch in range(settings.epochs):
        losses, agree = [], []
        for _ in range(steps):
            idx = rng.choice(len(items), size=settings.batch_size, p=weights)
            xs, zs, ys = [], [], []
            for i in idx:
                it = items[int(i)]
                crop = bool(rng.random() >= settings.whole_image_share)
                rgb = it.rgb
                if perturb is not None and rng.random() < settings.perturb_share:
                    rgb = perturb(rgb, rng)
                xs.append(to_tensor(rgb, cfg.replace(crop_sector=crop)))
                zs.append(it.teacher[crop])
                ys.append(it.label)
            target = target_distribution(torch.from_numpy(np.stack(zs)).float(), torch.tensor(ys),
                                         settings.label_mix, settings.floor)
            logits = student_native(student, torch.stack(xs), settings.train_from_stage)
            loss = F.kl_div(logits.log_softmax(1), target, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            agree.append(float((logits.argmax(1) == target.argmax(1)).float().mean()))
        history.append({"epoch": epoch + 1, "kl": float(np.mean(losses)), "top1_agreement": float(np.mean(agree)),
                        "seconds": time.time() - t0})
        log(f"  epoch {epoch + 1}/{settings.epochs}: KL {history[-1]['kl']:.4f}, "
            f"top-1 agreement {history[-1]['top1_agreement']:.3f} ({time.time() - t0:.0f}s)")
    for p in student.parameters():
        p.requires_grad_(False)
    return {"history": history, "seconds": time.time() - t0, "steps_per_epoch": steps,
            "trained_modules": [f"backbone.stage{i}" for i in range(settings.train_from_stage, len(FEATURE_STAGES) + 1)]
            + ["head.native"], "settings": settings.to_dict()}


@torch.inference_mode()
def kl_to_teacher(student: SonoNetClassifier, items: Sequence[DistilItem], cfg: PreprocessConfig,
                  crop: bool = True) -> dict[str, float]:
    """Mean KL(teacher || student) and top-1 agreement on the clean images of ``items`` in one view."""
    x = torch.stack([to_tensor(it.rgb, cfg.replace(crop_sector=crop)) for it in items])
    z = student.native_logits(x)
    p = torch.from_numpy(np.stack([it.teacher[crop] for it in items])).float().softmax(1)
    kl = F.kl_div(z.log_softmax(1), p, reduction="batchmean")
    return {"kl": float(kl), "top1_agreement": float((z.argmax(1) == p.argmax(1)).float().mean())}


@torch.inference_mode()
def target_loss(student: SonoNetClassifier, items: Sequence[DistilItem], cfg: PreprocessConfig,
                settings: DistilSettings) -> float:
    """Mean KL(training target || student) on the clean images of ``items``, both views averaged."""
    out = []
    for crop in VIEWS:
        x = torch.stack([to_tensor(it.rgb, cfg.replace(crop_sector=crop)) for it in items])
        target = target_distribution(torch.from_numpy(np.stack([it.teacher[crop] for it in items])).float(),
                                     torch.tensor([it.label for it in items]), settings.label_mix, settings.floor)
        out.append(float(F.kl_div(student.native_logits(x).log_softmax(1), target, reduction="batchmean")))
    return float(np.mean(out))
