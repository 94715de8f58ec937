"""Do the maps mean something? Localisation on a known region, IG completeness, faithfulness
against random order, and sensitivity to the model's weights (Adebayo et al. 2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetalscope.explain import explain, explain_batch
from fetalscope.explain import methods as methods_mod
from fetalscope.explain.common import make_baseline
from fetalscope.explain.faithfulness import auc, evaluate_maps, summarise
from fetalscope.explain.sanity import (
    SanityResult,
    cascade_stages,
    cascading_randomisation,
    randomise_,
    rank_correlation,
)


def _quadrant_share(m: np.ndarray) -> float:
    pos = np.clip(m, 0, None)
    return float(pos[:32, :32].sum() / max(pos.sum(), 1e-12))


def test_tiny_model_learned_the_task(trained):
    assert trained.accuracy >= 0.9


@pytest.mark.parametrize("method,params", [("gradcam", {}), ("occlusion", {"window": 16, "stride": 8})])
def test_evidence_lands_in_the_known_region(trained, method, params):
    """The 'blob' class's evidence is a disc in the top-left quadrant: most of the map's mass must be there."""
    idx = [i for i in range(len(trained.test_y)) if trained.test_y[i] == 1][:8]
    es = explain_batch(trained.model, trained.test_x[idx], method, target=1, preprocess=trained.preprocess, **params)
    shares = [_quadrant_share(e.map) for e in es]
    assert np.mean(shares) > 0.6, shares  # chance is 0.25
    assert min(shares) > 0.3, shares
    # and the peak sits near the disc
    dists = []
    for e, i in zip(es, idx, strict=True):
        py, px = np.unravel_index(np.argmax(e.map), e.map.shape)
        cy, cx = trained.centres[i]
        dists.append(np.hypot(py - cy, px - cx))
    assert np.median(dists) < 16, dists


@pytest.mark.parametrize("baseline", ["black", "blur"])
def test_integrated_gradients_completeness_holds(trained, baseline):
    """Sum of attributions equals F(x) - F(baseline) within 2 % with 64 steps."""
    for i in (0, 1):
        e = explain(trained.model, trained.test_x[i], "ig", n_steps=64, baseline=baseline,
                    preprocess=trained.preprocess)
        c = e.extra["completeness"]
        with torch.no_grad():
            x = trained.test_x[i:i + 1]
            b = make_baseline(x, baseline, trained.preprocess)
            diff = float(trained.model(x)[0, e.target] - trained.model(b)[0, e.target])
        assert c["output_difference"] == pytest.approx(diff, rel=1e-4, abs=1e-5)
        assert abs(c["sum_attributions"] - diff) <= 0.02 * abs(diff) + 1e-4, c
        assert c["relative_error"] < 0.02


def test_faithfulness_gradcam_beats_random_and_a_reversed_map_does_not(trained):
    idx = [i for i in range(len(trained.test_y)) if trained.test_y[i] == 1][:3]
    per_image = []
    for i in idx:
        x = trained.test_x[i:i + 1]
        cam = explain(trained.model, x, "gradcam", target=1).map
        occ = explain(trained.model, x, "occlusion", target=1, window=16, stride=8).map
        per_image.append(evaluate_maps(trained.model, x, 1, {"gradcam": cam, "occlusion": occ, "reversed": -occ},
                                       steps=16, n_random=2, preprocess=trained.preprocess, seed=i))
    s = summarise(per_image)
    for good in ("gradcam", "occlusion"):
        r = s["methods"][good]
        assert r["deletion_auc"] < r["random_deletion_auc"], r
        assert r["insertion_auc"] > r["random_insertion_auc"], r
        assert r["beats_random"]
    bad = s["methods"]["reversed"]
    assert bad["deletion_auc"] > s["methods"]["occlusion"]["deletion_auc"]
    assert not bad["beats_random"]
    # the curves start at the model's probability of the unperturbed image
    with torch.no_grad():
        p0 = float(torch.softmax(trained.model(trained.test_x[idx[0]:idx[0] + 1]), 1)[0, 1])
    c = per_image[0]["methods"]["gradcam"]
    assert c.deletion[0] == pytest.approx(p0, abs=1e-5) and c.insertion[-1] == pytest.approx(p0, abs=1e-5)
    assert c.fractions[0] == 0 and c.fractions[-1] == 1 and len(c.fractions) == 17


def test_auc_is_the_trapezoid_area():
    x = np.linspace(0, 1, 5)
    assert auc(x, np.ones(5)) == pytest.approx(1.0)
    assert auc(x, x) == pytest.approx(0.5)


def test_cascade_stages_go_from_head_to_input(trained):
    names = [n for n, _ in cascade_stages(trained.model)]
    assert names == ["head", "backbone.block4", "backbone.block3", "backbone.block2", "backbone.block1"]


def test_randomise_changes_weights_reproducibly(trained):
    import copy

    a, b = copy.deepcopy(trained.model), copy.deepcopy(trained.model)
    assert randomise_(a.backbone.block4, seed=3) == 2  # conv + batchnorm
    randomise_(b.backbone.block4, seed=3)
    w0 = trained.model.backbone.block4[0].weight
    assert not torch.allclose(a.backbone.block4[0].weight, w0)
    assert torch.equal(a.backbone.block4[0].weight, b.backbone.block4[0].weight)
    assert torch.equal(a.backbone.block1[0].weight, trained.model.backbone.block1[0].weight)


def test_rank_correlation_basics():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8))
    assert rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a)) is None


@pytest.fixture
def weight_blind_method():
    """A fake 'method' whose map is the image itself: it cannot depend on the weights."""

    def image_map(model, x, targets, pp, p):
        from fetalscope.explain.common import resolve_targets, to_maps

        targets, probs = resolve_targets(model, x, targets)
        return methods_mod._Result(to_maps(x.mean(dim=1)), targets, probs, [{}] * x.shape[0], p)

    spec = methods_mod.MethodSpec("image_copy", image_map, {}, False, "test only")
    methods_mod.register_method(spec)
    yield "image_copy"
    methods_mod._METHODS.pop("image_copy", None)


def test_randomisation_changes_real_maps_and_flags_a_weight_blind_one(trained, weight_blind_method):
    x = trained.test_x[[1, 3]]
    res = cascading_randomisation(trained.model, x, ["gradcam", "occlusion", weight_blind_method], target=[1, 1],
                                  method_params={"occlusion": {"window": 16, "stride": 8}}, threshold=0.5)
    assert res.stages == ["head", "backbone.block4", "backbone.block3", "backbone.block2", "backbone.block1"]
    assert len(res.spearman["gradcam"]) == 5
    assert res.final(weight_blind_method) == pytest.approx(1.0)
    assert res.flagged() == [weight_blind_method]
    assert len(res.reasons(weight_blind_method)) == 2  # unchanged after the head and after everything
    for m in ("gradcam", "occlusion"):
        assert res.final(m) < 0.5, (m, res.spearman[m], res.spearman_abs[m])
    d = res.to_dict()
    assert d["flagged"] == [weight_blind_method] and d["methods"]["gradcam"]["flagged"] is False
    # the trained model itself was not touched
    e = explain(trained.model, trained.test_x[1], "gradcam", target=1)
    assert e.probability > 0.5


def test_max_stages_merges_the_bottom_of_the_cascade(trained):
    res = cascading_randomisation(trained.model, trained.test_x[1:2], ["gradcam"], target=1, max_stages=2)
    assert res.stages == ["head", "backbone.block4 + backbone.block3 + backbone.block2 + backbone.block1"]


def test_flag_rules_first_stage_and_full_cascade():
    r = SanityResult(stages=["head", "b2", "b1"], threshold=0.5, first_stage_threshold=0.9,
                     spearman={"gbp_like": [0.97, 0.6, 0.2], "edge_like": [0.4, 0.5, 0.7], "good": [0.1, 0.0, -0.1]},
                     spearman_abs={"gbp_like": [0.95, 0.5, 0.3], "edge_like": [0.3, 0.4, 0.2],
                                   "good": [None, 0.2, 0.1]})
    assert r.flagged() == ["gbp_like", "edge_like"]
    assert "head is randomised" in r.reasons("gbp_like")[0] and len(r.reasons("gbp_like")) == 1
    assert "every layer" in r.reasons("edge_like")[0]
    assert r.first("good") == pytest.approx(0.1) and r.final("good") == pytest.approx(0.1)
