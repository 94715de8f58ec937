"""Ensembles of segmentation bundles (fetalscope.train.segmenter.ensemble): members trained alike with
different seeds on one split become one bundle that averages their probabilities, stored in float16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetalscope.biometry.segbundle import load_seg_bundle
from fetalscope.errors import BadInputError
from fetalscope.models.segmentation import EllipseUNetEnsemble
from fetalscope.train.segmenter.ensemble import build_ensemble
from fetalscope.train.segmenter.recipes import train_measurement


def _member(samples, folder, seed, split_seed=0):
    return train_measurement("head", out=folder, samples=samples, epochs=1, input_size=(48, 72), batch_size=6,
                             threads=1, pretrained=False, seed=seed, split_seed=split_seed, onnx=False,
                             cache=False, log=lambda m: None)


@pytest.fixture(scope="module")
def members(synthetic_heads, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [_member(synthetic_heads, root / f"seed{s}", s) for s in (1, 2)]


def test_ensemble_averages_member_probabilities(members, tmp_path):
    out = build_ensemble(members, tmp_path / "ens", log=lambda m: None)
    bundle = load_seg_bundle(out)
    assert isinstance(bundle.model, EllipseUNetEnsemble) and bundle.card["arch_kwargs"]["members"] == 2
    assert bundle.card["storage"] == "float16"
    assert [m["seed"] for m in bundle.card["training"]["members"]] == [1, 2]
    assert (out / "splits.json").read_text() == (members[0] / "splits.json").read_text()
    # float16 storage: half the bytes of the two float32 members together
    member_bytes = sum((m / "model.safetensors").stat().st_size for m in members)
    assert (out / "model.safetensors").stat().st_size < 0.6 * member_bytes

    x = torch.randn(3, 3, 48, 72)
    with torch.no_grad():
        probs = [torch.sigmoid(load_seg_bundle(m).model(x)) for m in members]
        ens = torch.sigmoid(bundle.model(x))
    expected = (probs[0] + probs[1]) / 2
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # the seeds gave different networks
    assert torch.allclose(ens, expected, atol=2e-3)

    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"image": x.numpy()})
    assert np.allclose(1 / (1 + np.exp(-logits)), ens.numpy(), atol=1e-3)


def test_ensemble_refuses_members_from_other_splits(members, synthetic_heads, tmp_path):
    other = _member(synthetic_heads, tmp_path / "other_split", seed=3, split_seed=5)
    with pytest.raises(BadInputError, match="split"):
        build_ensemble([members[0], other], tmp_path / "ens", log=lambda m: None)
    assert not (tmp_path / "ens").exists()
    with pytest.raises(BadInputError, match="at least two"):
        build_ensemble(members[:1], tmp_path / "ens", log=lambda m: None)
    with pytest.raises(BadInputError, match="one of the members"):
        build_ensemble(members, members[0], log=lambda m: None)
    nested = build_ensemble(members, tmp_path / "nested", log=lambda m: None)
    for order in ([nested, members[0]], [members[0], nested]):  # a network may not be averaged in twice
        with pytest.raises(BadInputError, match="seed 1 appears twice"):
            build_ensemble(order, tmp_path / "ens", log=lambda m: None)
    assert not (tmp_path / "ens").exists()


def test_an_ensemble_grows_by_a_member_without_its_members_folders(members, synthetic_heads, tmp_path):
    """An ensemble bundle given as a member contributes its networks (the members' folders may be gone)."""
    pair = build_ensemble(members, tmp_path / "pair", log=lambda m: None)
    third = _member(synthetic_heads, tmp_path / "seed3", seed=3)
    grown = build_ensemble([pair, third], tmp_path / "grown", name="grown", log=lambda m: None)
    bundle = load_seg_bundle(grown)
    assert bundle.card["arch_kwargs"]["members"] == 3
    assert [m["seed"] for m in bundle.card["training"]["members"]] == [1, 2, 3]
    assert "seeds 1, 2, 3" in bundle.card["training"]["ensemble"]

    x = torch.randn(2, 3, 48, 72)
    with torch.no_grad():
        probs = [torch.sigmoid(load_seg_bundle(m).model(x)) for m in (*members, third)]
        ens = torch.sigmoid(bundle.model(x))
    assert torch.allclose(ens, sum(probs) / 3, atol=2e-3)


def test_members_started_from_a_bundle_say_so_in_the_card_and_the_rebuild_command(members, synthetic_heads,
                                                                                   tmp_path):
    started = [train_measurement("head", out=tmp_path / f"started{s}", samples=synthetic_heads, epochs=1,
                                 input_size=(48, 72), batch_size=6, threads=1, pretrained=False, seed=s,
                                 split_seed=0, onnx=False, cache=False, init_from=members[0], log=lambda m: None)
               for s in (1, 2)]
    card = load_seg_bundle(started[0]).card
    assert card["base_weights"]["name"].startswith("the seed1 bundle's first network")
    assert card["training"]["config"]["init_from"] == str(members[0])
    out = build_ensemble(started, tmp_path / "ens", log=lambda m: None)
    assert f"--init-from {members[0]}" in load_seg_bundle(out).card["training"]["how_to_rebuild"]
    plain = build_ensemble(members, tmp_path / "plain", log=lambda m: None)
    assert "--init-from" not in load_seg_bundle(plain).card["training"]["how_to_rebuild"]


def test_the_rebuild_command_names_every_flag_that_differs_from_the_recipe():
    from fetalscope.train.segmenter.ensemble import recipe_flags

    shipped = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "scale_range": [0.9, 1.1],
               "boundary_weight": 0.0, "average_last": 0, "pixel_size_weight": 0.0, "init_from": None}
    assert recipe_flags(shipped, "head") == ""
    changed = {**shipped, "encoder": "efficientnet_lite2", "input_size": [256, 384], "scale_range": [0.9, 1.3],
               "circumference_weight": 2.0, "average_last": 3, "pixel_size_weight": 1.0, "init_from": "b/hc18-head"}
    assert recipe_flags(changed, "cardiothoracic") == (
        " --encoder efficientnet_lite2 --input-size 256 384 --circumference-weight 2 --pixel-size-weight 1"
        " --scale-range 0.9 1.3 --average-last 3 --init-from b/hc18-head")


def test_an_ensemble_re_stored_as_int8_keeps_its_networks_in_a_quarter_of_the_bytes(members, tmp_path):
    """``storage="int8"``: weight matrices as int8 with a scale per output channel, in both files; the networks
    (computed in float32) agree with the float16 ensemble, and the card and the rebuild command say so."""
    import onnxruntime as ort

    pair = build_ensemble(members, tmp_path / "pair", log=lambda m: None)
    messages: list[str] = []
    small = build_ensemble([pair], tmp_path / "small", storage="int8", log=messages.append)
    half_b, int8_b = load_seg_bundle(pair), load_seg_bundle(small)
    assert int8_b.card["storage"] == "int8" and int8_b.card["arch_kwargs"]["members"] == 2
    assert [m["seed"] for m in int8_b.card["training"]["members"]] == [1, 2]
    assert int8_b.card["training"]["how_to_rebuild"].endswith("--out BUNDLE --storage int8`")
    assert "--storage" not in half_b.card["training"]["how_to_rebuild"]
    assert any("stored as int8" in m and "model.onnx" in m for m in messages)
    float32_bytes = sum(p.numel() * 4 for p in half_b.model.state_dict().values() if p.is_floating_point())
    for name in ("model.safetensors", "model.onnx"):
        assert (small / name).stat().st_size < 0.4 * float32_bytes, name

    x = torch.randn(2, 3, 48, 72)
    with torch.no_grad():
        p_half, p_int8 = torch.sigmoid(half_b.model(x)), torch.sigmoid(int8_b.model(x))
    assert 0 < (p_half - p_int8).abs().max() < 0.02  # quantised (not a copy), yet close
    sess = ort.InferenceSession(str(small / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"image": x.numpy()})
    assert np.allclose(1 / (1 + np.exp(-logits)), p_int8.numpy(), atol=2e-3)  # one network, as float16 does
    with pytest.raises(BadInputError, match="float16 or int8"):
        build_ensemble([pair], tmp_path / "f32", storage="float32", log=lambda m: None)
    assert not (tmp_path / "f32").exists()
