"""SonoNet-16: architecture, the npz loader, the plane mapping head and real-image predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.transforms import to_tensor
from fetalscope.errors import BadInputError, MissingWeightsError, UnsupportedError
from fetalscope.imaging import load_image
from fetalscope.models import create_model, get_spec, list_models
from fetalscope.models.sononet import (
    PLANES_COVERED,
    PLANES_NOT_COVERED,
    SONONET_CLASSES,
    SONONET_TO_PLANES,
    PlaneMappingHead,
)
from fetalscope.models.weights.sononet_npz import SONONET16_NPZ, read_sononet16_npz

HC18_BRAIN = "hc18/training_set/189_HC.png"  # a trans-thalamic head plane from HC18 (CC BY 4.0)


@pytest.fixture(scope="module")
def pretrained_planes(shared_weights):
    if not (shared_weights / SONONET16_NPZ).is_file():
        pytest.skip("SonoNet16.npz not present")
    return create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()


def test_registered_variants_and_spec():
    names = list_models()
    for name in ("sononet16", "sononet16_native", "sononet16_planes"):
        assert name in names
        spec = get_spec(name)
        assert spec.preprocess.input_size == (224, 288)
        assert spec.preprocess.channels == 1
        assert spec.preprocess.normalisation == "per_image_standardise"
        assert spec.preprocess.scale == 255.0
        assert spec.gradcam_layer == "backbone.stage5"
    assert PLANES_NOT_COVERED == ("Maternal cervix",)
    assert set(PLANES_COVERED) | set(PLANES_NOT_COVERED) == set(PLANE_CLASSES)


def test_forward_shapes_and_blocks():
    native = create_model("sononet16_native", 14).eval()
    x = torch.randn(2, 1, 224, 288)
    with torch.no_grad():
        feats = native.forward_features(x)
        assert feats.shape == (2, 128, 14, 18)
        assert native(x).shape == (2, 14)
    assert len(native.blocks()) == 5
    assert native.get_submodule(native.spec.gradcam_layer) is native.blocks()[-1]
    planes = create_model("sononet16_planes", 5).eval()
    fine = create_model("sononet16", 3, head="linear").eval()
    with torch.no_grad():
        out, nat = planes.logits_and_native(x)
        assert out.shape == (2, 5) and nat.shape == (2, 14)
        assert fine(x).shape == (2, 3)
        assert create_model("sononet16", 4)(x).shape == (2, 4)
    with pytest.raises(UnsupportedError):
        fine.native_logits(x)
    with pytest.raises(BadInputError):
        create_model("sononet16_native", 5)
    with pytest.raises(BadInputError):
        create_model("sononet16", 3, head="transformer")


def test_finetune_variant_freezes_and_trains():
    model = create_model("sononet16", 3, head="adaptation")
    model.freeze_backbone(trainable_last_blocks=1)
    trainable = {n.split(".")[0] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"stage5"}
    x, y = torch.randn(4, 1, 64, 96), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.head.classify.weight.grad is not None
    assert model.backbone.stage1[0].conv.weight.grad is None
    assert model.backbone.stage5[-1].conv.weight.grad is not None


def test_mapping_probabilities_are_group_sums():
    head = PlaneMappingHead()
    assert head.classes == PLANES_COVERED
    z = torch.randn(64, 14) * 6
    z[0] = torch.tensor([30.0] + [-30.0] * 13)  # extreme logits stay exact
    for log_t in (0.0, 0.7, -0.5):
        with torch.no_grad():
            head.log_temperature.fill_(log_t)
            mapped = head(z).softmax(1)
        native = (z / np.exp(log_t)).softmax(1)
        assert torch.allclose(mapped.sum(1), torch.ones(64), atol=1e-6)
        for i, cls in enumerate(head.classes):
            members = [SONONET_CLASSES.index(m) for m in SONONET_TO_PLANES[cls]]
            assert torch.allclose(mapped[:, i], native[:, members].sum(1), atol=1e-6)
            # the mapped logit is exactly the log-sum-exp of the member logits
            assert torch.allclose(head(z)[:, i], torch.logsumexp(z[:, members] / np.exp(log_t), 1), atol=1e-5)
    # a per-class bias shifts only its class
    with torch.no_grad():
        head.reset()
        before = head(z)
        head.bias[1] = 2.0
        after = head(z)
    assert torch.allclose(after[:, 1] - before[:, 1], torch.full((64,), 2.0))
    assert torch.allclose(after[:, [0, 2, 3, 4]], before[:, [0, 2, 3, 4]])


def test_mapping_fit_recovers_a_temperature():
    torch.manual_seed(0)
    head = PlaneMappingHead()
    # labels drawn from softmax(z / 2) grouped: the NLL-optimal temperature is near 2
    z = torch.randn(3000, 14) * 4
    probs = PlaneMappingHead()(z / 2.0).softmax(1)
    y = torch.multinomial(probs, 1).squeeze(1)
    result = head.fit(z, y)
    assert result["nll_after"] < result["nll_before"]
    assert 1.7 < head.temperature < 2.3
    with pytest.raises(BadInputError):
        head.fit(z[:, :5], y)


def test_missing_weights_error_names_file_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FETALSCOPE_SHARED", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        create_model("sononet16_planes", 5, pretrained=True)
    message = str(err.value)
    assert str(tmp_path / "weights" / SONONET16_NPZ) in message
    assert "FETALSCOPE_SHARED" in message
    with pytest.raises(MissingWeightsError, match="nowhere.npz"):
        create_model("sononet16", 3, pretrained=True, weights_path=tmp_path / "nowhere.npz")


def test_npz_loads_into_every_layer(shared_weights, pretrained_planes):
    layers = read_sononet16_npz()
    assert len(layers) == 15
    with np.load(shared_weights / SONONET16_NPZ) as z:
        inv_std = z["arr_4"]
    first_bn = pretrained_planes.backbone.stage1[0].bn
    assert np.allclose(first_bn.running_var.numpy(), 1.0 / inv_std.astype(np.float64) ** 2 - 1e-4, rtol=1e-5)
    last = pretrained_planes.head.native.classify.conv.weight
    assert torch.equal(last, torch.from_numpy(layers[-1].weight))
    fine = create_model("sononet16", 3, pretrained=True)
    for a, b in zip(fine.backbone.state_dict().values(), pretrained_planes.backbone.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert torch.equal(fine.head.adapt.conv.weight, pretrained_planes.head.native.adapt.conv.weight)


def test_real_hc18_head_is_brain(shared_data, pretrained_planes):
    image = load_image(shared_data / HC18_BRAIN)
    x = to_tensor(image, pretrained_planes.spec.preprocess)[None]
    with torch.no_grad():
        mapped, native = pretrained_planes.logits_and_native(x)
    native_top = SONONET_CLASSES[int(native.argmax())]
    assert native_top in ("Brain (Cb.)", "Brain (Tv.)")
    probs = mapped.softmax(1)[0]
    assert PLANES_COVERED[int(probs.argmax())] == "Fetal brain"
    assert float(probs[PLANES_COVERED.index("Fetal brain")]) > 0.9
    native_probs = native.softmax(1)[0]
    assert float(probs[PLANES_COVERED.index("Fetal brain")]) == pytest.approx(
        float(native_probs[4] + native_probs[5]), abs=1e-5)
    # the greyscale statistics matter: without the x255 factor SonoNet calls everything Background
    x_unscaled = x / 255.0
    with torch.no_grad():
        assert SONONET_CLASSES[int(pretrained_planes.native_logits(x_unscaled).argmax())] == "Background"
