"""The sononet-planes distillation recipe (fetalscope.train.recipes.sononet.distil) on a tiny generated set:
training lowers the loss, labelled images move to their plane, and images of a class without labels keep
the teacher's answer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.models import create_model
from fetalscope.models.sononet import PLANES_COVERED, SONONET_CLASSES, SONONET_PREPROCESS
from fetalscope.train.recipes.sononet.distil import (
    DistilItem,
    DistilSettings,
    distil,
    fit_or_hold,
    kl_to_teacher,
    member_mask,
    target_distribution,
    target_loss,
)

CFG: PreprocessConfig = SONONET_PREPROCESS.replace(input_size=(48, 64))
BRAIN, THORAX = PLANES_COVERED.index("Fetal brain"), PLANES_COVERED.index("Fetal thorax")
TEACHER_SAYS = {0: "Background", 1: "4CH", 2: "Femur"}


def _image(kind: int, rng: np.random.Generator) -> np.ndarray:
    """Three generated kinds: a bright ring, horizontal stripes, a bright corner block, on speckle."""
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    img = rng.uniform(10, 40, (h, w))
    if kind == 0:
        r = np.hypot(yy - h / 2 - rng.integers(-3, 4), xx - w / 2 - rng.integers(-3, 4))
        img[(r > 15) & (r < 22)] += 180
    elif kind == 1:
        img[(yy // (5 + rng.integers(0, 2))) % 2 == 0] += 150
    else:
        img[: h // 2, : w // 2] += 200
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rgb * rng.uniform(0.85, 1.15, rgb.shape[:2])[..., None], 0, 255).astype(np.uint8)


def _start_and_items() -> tuple[torch.nn.Module, list[DistilItem]]:
    """A random SonoNet (BatchNorm statistics of the items, so it can tell them apart) and 3 x 8 items whose
    teacher is written down: kind 0 -> Background (a wrong answer its label Fetal brain corrects),
    kind 1 -> 4CH (label Fetal thorax), kind 2 -> Femur (no label: a plane with no images)."""
    torch.manual_seed(0)
    model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=False)
    rng = np.random.default_rng(0)
    labels = {0: BRAIN, 1: THORAX, 2: -1}
    items = [DistilItem(_image(k, rng), labels[k], source=f"set{k}") for k in (0, 1, 2) for _ in range(8)]
    for it, k in zip(items, [k for k in (0, 1, 2) for _ in range(8)], strict=True):
        z = np.zeros(len(SONONET_CLASSES), np.float32)
        z[SONONET_CLASSES.index(TEACHER_SAYS[k])] = 5.0
        it.teacher = {True: z, False: z}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.stack([to_tensor(it.rgb, CFG) for it in items]))
    return model.eval(), items


@pytest.fixture(scope="module")
def tiny_set() -> tuple[torch.nn.Module, list[DistilItem]]:
    return _start_and_items()


def test_target_moves_mass_onto_the_labelled_plane_and_keeps_unlabelled() -> None:
    z = torch.randn(3, len(SONONET_CLASSES))
    t = target_distribution(z, torch.tensor([BRAIN, THORAX, -1]), label_mix=0.9, floor=0.02)
    assert torch.allclose(t.sum(1), torch.ones(3))
    mapped = t @ member_mask().T
    assert mapped[0, BRAIN] > 0.9 and mapped[1, THORAX] > 0.9
    assert torch.allclose(t[2], z[2].softmax(0))  # no label: the teacher's distribution
    members = member_mask()[BRAIN].bool()  # within the plane, the teacher's split is kept
    p = z[0].softmax(0)[members]
    assert torch.allclose((t[0][members] / t[0][members].sum()), (p + 0.01) / (p + 0.01).sum(), atol=0.05)


def test_fit_or_hold_is_fixed_and_about_one_in_four() -> None:
    groups = [f"g{i}" for i in range(400)]
    held = [g for g in groups if fit_or_hold(g) == "hold"]
    assert held == [g for g in groups if fit_or_hold(g) == "hold"]
    assert 60 < len(held) < 140


def test_distillation_lowers_loss_corrects_labels_and_keeps_the_teacher_on_unlabelled(tiny_set) -> None:
    start, items = tiny_set
    student = copy.deepcopy(start)
    settings = DistilSettings(epochs=4, batch_size=8, steps_per_epoch=6, lr=1e-3, train_from_stage=4)
    before = target_loss(student, items, CFG, settings)
    result = distil(student, items, CFG, settings, perturb=_noise, log=lambda _: None)
    after = target_loss(student, items, CFG, settings)
    assert after < 0.5 * before
    assert result["trained_modules"] == ["backbone.stage4", "backbone.stage5", "head.native"]
    for name, p in student.backbone.stage1.named_parameters():  # frozen stages untouched
        assert torch.equal(p, dict(start.backbone.stage1.named_parameters())[name])
    with torch.no_grad():
        planes = student(torch.stack([to_tensor(it.rgb, CFG) for it in items])).argmax(1).numpy()
    labels = np.array([it.label for it in items])
    assert (planes[labels == BRAIN] == BRAIN).mean() >= 0.75  # the label wins over the teacher's Background
    assert (planes[labels == THORAX] == THORAX).mean() >= 0.75
    unlabelled = [it for it in items if it.label < 0]  # the teacher's Femur is kept, not swallowed
    assert kl_to_teacher(student, unlabelled, CFG, crop=True)["top1_agreement"] >= 0.75
    assert (planes[labels < 0] == PLANES_COVERED.index("Fetal femur")).mean() >= 0.75
