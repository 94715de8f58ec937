"""Every method through the one interface: shapes, finiteness, parameters, batching and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fetalscope.errors import BadInputError
from fetalscope.explain import Explanation, explain, explain_batch, list_methods, parse_methods
from fetalscope.explain.common import make_baseline

FAST = {"integrated_gradients": {"n_steps": 8}, "lime": {"n_samples": 40}, "occlusion": {"window": 16, "stride": 8}}


@pytest.mark.parametrize("method", list_methods())
def test_each_method_returns_a_finite_map_at_input_resolution(trained, method):
    x = trained.test_x[1]
    e = explain(trained.model, x, method, preprocess=trained.preprocess, **FAST.get(method, {}))
    assert isinstance(e, Explanation)
    assert e.map.shape == (64, 64) and e.map.dtype == np.float32
    assert np.isfinite(e.map).all()
    assert np.abs(e.map).max() > 0, "a trained model's map should not be empty"
    assert e.method == method and e.target == 1  # the blob image is predicted as 'blob'
    assert 0.5 < e.probability <= 1.0
    assert e.seconds > 0
    d = e.to_dict()
    assert d["shape"] == [64, 64] and "map" not in d


def test_batch_gives_one_explanation_per_image_and_respects_targets(trained):
    x = trained.test_x[:3]
    for method in ("gradcam", "guided_backprop", "integrated_gradients", "occlusion"):
        es = explain_batch(trained.model, x, method, target=[0, 1, 0], preprocess=trained.preprocess,
                           **FAST.get(method, {}))
        assert [e.target for e in es] == [0, 1, 0]
        assert all(e.map.shape == (64, 64) for e in es)
    # batched and single-image results agree
    single = explain(trained.model, x[1], "gradcam", target=1)
    batched = explain_batch(trained.model, x, "gradcam", target=1)[1]
    np.testing.assert_allclose(single.map, batched.map, atol=1e-5)


def test_target_none_explains_the_predicted_class(trained):
    with torch.no_grad():
        pred = trained.model(trained.test_x[:4]).argmax(1).tolist()
    es = explain_batch(trained.model, trained.test_x[:4], "gradcam")
    assert [e.target for e in es] == pred


def test_gradcam_layer_defaults_to_spec_and_can_be_overridden(trained):
    e = explain(trained.model, trained.test_x[1], "gradcam")
    assert e.params["layer"] == trained.model.spec.gradcam_layer == "backbone.block4"
    assert e.extra["feature_map"] == [4, 4]
    e3 = explain(trained.model, trained.test_x[1], "gradcam", layer="backbone.block3")
    assert e3.params["layer"] == "backbone.block3" and e3.extra["feature_map"] == [8, 8]
    assert not np.allclose(e.map, e3.map)


def test_default_layer_for_a_plain_torch_model():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    e = explain(net, torch.randn(1, 20, 20), "gradcam", target=2)
    assert e.params["layer"] == "3"  # the last module with a spatial output (the second ReLU)
    assert e.map.shape == (20, 20)


def test_occlusion_window_and_stride_are_used(trained):
    e = explain(trained.model, trained.test_x[1], "occlusion", window=16, stride=16)
    assert e.extra["n_perturbations"] == 16
    assert (e.params["window"], e.params["stride"]) == (16, 16)
    e2 = explain(trained.model, trained.test_x[1], "occlusion", window=8, stride=4)
    assert e2.extra["n_perturbations"] == 15 * 15


def test_integrated_gradients_baselines_differ_and_completeness_is_reported(trained):
    x = trained.test_x[1]
    black = explain(trained.model, x, "ig", n_steps=16, preprocess=trained.preprocess)
    blur = explain(trained.model, x, "ig", n_steps=16, baseline="blur", preprocess=trained.preprocess)
    assert black.method == "integrated_gradients"
    assert not np.allclose(black.map, blur.map)
    for e in (black, blur):
        c = e.extra["completeness"]
        assert set(c) >= {"sum_attributions", "output_difference", "delta", "relative_error"}
        # the map (channel sum) is what the completeness check sums
        assert abs(float(e.map.sum()) - c["sum_attributions"]) < 1e-3 * max(1.0, abs(c["sum_attributions"]))


def test_black_baseline_is_the_preprocessed_black_pixel(trained):
    x = trained.test_x[:1]
    base = make_baseline(x, "black", trained.preprocess)
    expected = (0.0 - trained.preprocess.mean[0]) / trained.preprocess.std[0]
    assert torch.allclose(base, torch.full_like(x, expected))
    # without a preprocessing config, black is the darkest value of the image
    assert torch.allclose(make_baseline(x, "black", None), x.amin(dim=(2, 3), keepdim=True).expand_as(x))


def test_lime_uses_superpixels_and_sample_count(trained):
    e = explain(trained.model, trained.test_x[1], "lime", n_samples=60, n_segments=30)
    assert e.params["n_samples"] == 60
    k = e.extra["n_superpixels"]
    assert 10 <= k <= 60
    assert len(np.unique(e.map)) <= k  # one coefficient per superpixel


def test_parse_methods_accepts_aliases_lists_and_all():
    assert parse_methods("gradcam, IG ,lime") == ["gradcam", "integrated_gradients", "lime"]
    assert parse_methods(["gbp", "guided_backprop"]) == ["guided_backprop"]
    assert "occlusion" in parse_methods("all")


# ------------------------------------------------------------------------------------ errors

def test_unknown_method_lists_valid_ones_and_suggests(trained):
    with pytest.raises(BadInputError) as err:
        explain(trained.model, trained.test_x[0], "gradcma")
    msg = str(err.value)
    assert "unknown explanation method 'gradcma'" in msg and "Did you mean 'gradcam'" in msg
    for name in list_methods():
        assert name in msg


@pytest.mark.parametrize("target", [2, -1, 99])
def test_target_out_of_range_is_a_clear_error(trained, target):
    with pytest.raises(BadInputError, match=r"out of range for a model with 2 classes \(valid: 0..1\)"):
        explain(trained.model, trained.test_x[0], "gradcam", target=target)


def test_target_out_of_range_without_num_classes_attribute():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    for method in ("gradcam", "guided_backprop", "integrated_gradients", "occlusion"):
        with pytest.raises(BadInputError, match="out of range for a model with 3 classes"):
            explain(net, torch.randn(1, 16, 16), method, target=3)


def test_layer_typo_suggests_real_layer_names(trained):
    with pytest.raises(BadInputError) as err:
        explain(trained.model, trained.test_x[0], "gradcam", layer="backbone.blok4")
    assert "no layer named 'backbone.blok4'" in str(err.value)
    assert "'backbone.block4'" in str(err.value)


def test_unknown_parameter_is_rejected_with_suggestion(trained):
    with pytest.raises(BadInputError, match="has no parameter 'n_step'.*Did you mean 'n_steps'"):
        explain(trained.model, trained.test_x[0], "ig", n_step=8)
    with pytest.raises(BadInputError, match="unknown baseline 'blurr'.*'blur'"):
        explain(trained.model, trained.test_x[0], "occlusion", baseline="blurr")
    with pytest.raises(BadInputError, match="occlusion window"):
        explain(trained.model, trained.test_x[0], "occlusion", window=200)


def test_bad_input_tensors_are_rejected(trained):
    with pytest.raises(BadInputError, match="shape C x H x W"):
        explain(trained.model, torch.zeros(64, 64), "gradcam")
    bad = trained.test_x[0].clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(BadInputError, match="NaN"):
        explain(trained.model, bad, "gradcam")
    with pytest.raises(BadInputError, match="one image"):
        explain(trained.model, trained.test_x[:2], "gradcam")
    with pytest.raises(BadInputError, match="2 targets for 3 images"):
        explain_batch(trained.model, trained.test_x[:3], "gradcam", target=[0, 1])


def test_precision_is_recorded_and_bf16_agrees_with_fp32(trained):
    from scipy.stats import spearmanr

    x = trained.test_x[1]
    e32 = explain(trained.model, x, "occlusion", window=16, stride=8, precision="fp32")
    e16 = explain(trained.model, x, "occlusion", window=16, stride=8, precision="bf16")
    assert e32.params["precision"] == "fp32" and e16.params["precision"] == "bf16"
    assert spearmanr(e32.map.ravel(), e16.map.ravel()).statistic > 0.95
    assert explain(trained.model, x, "ig", n_steps=4).params["precision"] == "fp32"  # IG stays exact by default
    assert explain(trained.model, x, "lime", n_samples=20).params["precision"] in ("fp32", "bf16")
    with pytest.raises(BadInputError, match="precision must be one of auto, fp32, bf16"):
        explain(trained.model, x, "occlusion", precision="fp16")
