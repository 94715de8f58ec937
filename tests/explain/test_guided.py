"""Guided backprop must be guided on every activation type the registry uses, not only nn.ReLU."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import GuidedBackprop
from torch import nn

from fetalscope.errors import UnsupportedError
from fetalscope.explain import explain
from fetalscope.explain.guided import guided_activations, guided_gradients, plain_gradients
from fetalscope.models import create_model


def _count_module_calls(model: nn.Module, x: torch.Tensor, types: tuple[type, ...]) -> int:
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules() if isinstance(m, types)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return len(calls)


def _check_guided(model: nn.Module, x: torch.Tensor, act_types: tuple[type, ...]) -> None:
    model.eval()
    grads, targets, _, log = guided_gradients(model, x, None, record=True)
    plain, _, _ = plain_gradients(model, x, targets)
    # every activation module the forward pass ran was guided
    assert log.count == _count_module_calls(model, x, act_types) > 0
    # the gradient leaving every guided activation is non-negative ...
    assert all(r.min_grad >= 0.0 for r in log.records)
    # ... while the true derivative chain had negative parts there (so guidance did something)
    assert max(r.negative_fraction_before for r in log.records) > 0.05
    assert torch.isfinite(grads).all()
    rel = float((grads - plain).abs().max() / plain.abs().max())
    assert rel > 0.1, f"guided gradients barely differ from plain gradients (relative {rel:.3g})"


def test_guided_backprop_on_relu6_mobilenet_v2():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=3)  # ReLU6(inplace=True) everywhere
    _check_guided(model, torch.randn(1, 3, 32, 32), (nn.ReLU6,))


def test_guided_backprop_on_relu6_efficientnet_lite():
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3)
    _check_guided(model, torch.randn(1, 3, 32, 32), (nn.ReLU6,))


def test_guided_backprop_on_silu_efficientnet_b0():
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=3)  # SiLU + sigmoid SE gates
    _check_guided(model, torch.randn(1, 3, 32, 32), (nn.SiLU,))


def test_guided_backprop_on_registry_fetalnet():
    torch.manual_seed(0)
    model = create_model("fetalnet", 3)  # ReLU6 backbone, ReLU in the head, sigmoid SE gate (not guided)
    # a random MobileNetV2 in eval mode has vanishing activations; give BatchNorm realistic statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    _check_guided(model, torch.randn(1, 3, 32, 32), (nn.ReLU6, nn.ReLU))


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations")  # Captum's own notice
def test_matches_captum_exactly_on_plain_relu_models():
    """On nn.ReLU networks Captum's GuidedBackprop is right; ours must agree with it."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()  # ReLU(inplace=True), reused module
    x = torch.randn(2, 3, 48, 48)
    t = torch.tensor([1, 3])
    ours, _, _, _ = guided_gradients(model, x, t)
    ref = GuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=t)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-7)


class _Functional(nn.Module):
    """Activations as function calls, in place and not, including a non-rectifying hardtanh."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x), inplace=True)
        x = torch.relu(self.c2(x))
        x = F.silu(self.c3(x))
        x = F.hardtanh(x, -1.0, 1.0)  # a clip, not a rectifier: left alone
        return self.fc(x.mean(dim=(2, 3)))


def test_functional_and_inplace_activations_are_guided():
    torch.manual_seed(0)
    model = _Functional().eval()
    x = torch.randn(1, 1, 16, 16)
    grads, _, _, log = guided_gradients(model, x, torch.tensor([1]), record=True)
    assert [r.function for r in log.records] == ["relu", "relu", "silu"]
    assert all(r.min_grad >= 0 for r in log.records)
    # forward values are untouched by the guiding
    with guided_activations():
        out = model(x.requires_grad_(True))
    torch.testing.assert_close(out, model(x))


def test_model_without_rectifiers_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(UnsupportedError, match="no rectifying activation"):
        explain(model, torch.randn(1, 8, 8), "guided_backprop", target=0)


def test_guided_gradcam_is_guided_backprop_weighted_by_gradcam(trained):
    x = trained.test_x[1]
    gb = explain(trained.model, x, "guided_backprop", target=1).map
    cam = explain(trained.model, x, "gradcam", target=1).map
    ggc = explain(trained.model, x, "guided_gradcam", target=1).map
    grads, _, _, _ = guided_gradients(trained.model.eval(), x[None], torch.tensor([1]))
    expected = (grads[0] * torch.from_numpy(cam)).abs().amax(dim=0).numpy()
    np.testing.assert_allclose(ggc, expected, rtol=1e-5, atol=1e-8)
    assert not np.allclose(ggc / ggc.max(), gb / gb.max())
