"""Registry architectures: shapes, backbone/head split, blocks, Grad-CAM layers, options, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fetalscope.errors import BadInputError, MissingWeightsError, UnsupportedError
from fetalscope.models import create_model, get_spec, list_models

OURS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "fetalnet", "resnet18", "small_cnn"]


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=3).eval() for name in OURS}


def test_registry_lists_all_architectures():
    names = list_models()
    for name in OURS:
        assert name in names
        spec = get_spec(name)
        assert spec.name == name
        assert spec.preprocess.channels == 3


@pytest.mark.parametrize("name", OURS)
def test_forward_tiny_input_is_backbone_then_head(models, name):
    model = models[name]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        again = model.forward_head(features)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, again)
    assert model.spec.name == name
    assert model.arch_name == name


@pytest.mark.parametrize("name", OURS)
def test_blocks_are_backbone_stages_in_order(models, name):
    model = models[name]
    blocks = model.blocks()
    assert len(blocks) >= 4
    backbone_modules = list(model.backbone.modules())
    positions = [next(i for i, m in enumerate(backbone_modules) if m is b) for b in blocks]
    assert positions == sorted(positions), "blocks() must run input -> output"
    # run the input through the stages and make sure each stage consumes the previous one's output
    seen: list[int] = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: seen.append(k)) for k, b in enumerate(blocks)]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == list(range(len(blocks)))


@pytest.mark.parametrize("name", OURS)
def test_gradcam_layer_is_hookable_by_pytorch_grad_cam(models, name):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = models[name]
    layer = model.get_submodule(model.spec.gradcam_layer)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=torch.randn(1, 3, 64, 64), targets=[ClassifierOutputTarget(1)])
    assert maps.shape == (1, 64, 64)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6


def test_freeze_backbone_unfreezes_last_blocks_only():
    model = create_model("small_cnn", num_classes=4)
    model.freeze_backbone(0)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.freeze_backbone(2)
    blocks = model.blocks()
    assert not any(p.requires_grad for b in blocks[:2] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[2:] for p in b.parameters())
    model.freeze_backbone(-1)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_backbone_efficientnet_last_block_is_conv_head(models):
    model = create_model("efficientnet_lite0", num_classes=2)
    model.freeze_backbone(1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith(("backbone.conv_head.", "head.")) for n in trainable)


def test_small_cnn_options_flow_into_spec():
    model = create_model("small_cnn", num_classes=5, input_size=48, in_chans=1)
    assert model.spec.preprocess.input_size == (48, 48)
    assert model.spec.preprocess.channels == 1
    assert get_spec("small_cnn").preprocess.input_size == (128, 128)  # registry default untouched
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 <= n_params <= 200_000
    with torch.no_grad():
        assert model(torch.randn(3, 1, 48, 48)).shape == (3, 5)
    with pytest.raises(BadInputError):
        create_model("small_cnn", num_classes=2, in_chans=2)
    with pytest.raises(UnsupportedError):
        create_model("small_cnn", num_classes=2, pretrained=True)


def test_fetalnet_without_se_block():
    with_se = create_model("fetalnet", num_classes=4)
    without = create_model("fetalnet", num_classes=4, se=False)
    assert isinstance(without.head.se, nn.Identity)
    assert not isinstance(with_se.head.se, nn.Identity)
    n_with = sum(p.numel() for p in with_se.parameters())
    n_without = sum(p.numel() for p in without.parameters())
    assert n_with > n_without
    with torch.no_grad():
        assert without.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 4)


def test_unknown_model_name_suggests_close_match():
    with pytest.raises(BadInputError, match="efficientnet_lite0"):
        create_model("efficientnet_lit0", num_classes=2)
    with pytest.raises(BadInputError, match="Available"):
        get_spec("no_such_net")


def test_resnet18_pretrained_needs_local_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match="weights_path"):
        create_model("resnet18", num_classes=3, pretrained=True)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        create_model("resnet18", num_classes=3, pretrained=True, weights_path=str(tmp_path / "nope.pth"))


def test_resnet18_loads_a_local_torchvision_state_dict(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    source = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", num_classes=3, pretrained=True, weights_path=str(path))
    torch.testing.assert_close(model.backbone.stem[0].weight, source.conv1.weight)
    torch.testing.assert_close(model.backbone.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.head[-1].out_features == 3
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(MissingWeightsError, match="not a torchvision resnet18"):
        create_model("resnet18", num_classes=3, weights_path=str(bad))
