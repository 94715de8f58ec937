"""The one segmentation trainer (fetalscope.train.segmenter):
a tiny real training run, bundle round trip, ONNX twin, augmentation, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetalscope.biometry.ellipse import Ellipse, fit_ellipse, mask_iou
from fetalscope.biometry.segbundle import export_seg_onnx, load_seg_bundle, save_seg_bundle
from fetalscope.errors import DataError, MissingWeightsError
from fetalscope.train.runtime_opts import resolve_device
from fetalscope.train.segmenter.trainer import (
    SegTrainConfig,
    augment_pair,
    boundary_band,
    circumference_loss,
    dice_bce_loss,
    moment_circumferences,
    pixel_size_weights,
    prepare_arrays,
    prepare_sample,
    prepared_cache_file,
    train_segmenter,
)


def test_loss_prefers_the_right_mask():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    good = (target * 2 - 1) * 8
    assert dice_bce_loss(good, target) < 0.05 < dice_bce_loss(-good, target)


def test_boundary_band_marks_the_outline_only():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    band = boundary_band(target, width=1)
    assert band[0, 0, 8, 8] == 0 and band[0, 0, 0, 0] == 0  # deep inside, far outside
    assert band[0, 0, 4, 8] == 1 and band[0, 0, 3, 8] == 1  # the edge pixel and the one beside it
    assert band[0, 0, 5, 8] == 0
    assert band.sum() == 10 * 10 - 6 * 6  # a 2-pixel ring around the 8 x 8 square's edge


def test_boundary_weight_counts_outline_errors_more():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    logits = (target * 2 - 1) * 8
    edge_error, bulk_error = logits.clone(), logits.clone()
    edge_error[..., 3, 4:12] = 8  # the outline one pixel too far out
    bulk_error[..., 0, 4:12] = 8  # the same number of wrong pixels far from it
    plain = [dice_bce_loss(e, target) for e in (edge_error, bulk_error)]
    weighted = [dice_bce_loss(e, target, boundary_weight=4.0) for e in (edge_error, bulk_error)]
    assert torch.isclose(plain[0], plain[1], rtol=0.05)
    assert weighted[0] > 1.5 * weighted[1]
    assert dice_bce_loss(logits, target, boundary_weight=4.0) < 0.05


def _filled_ellipse(shape: tuple[int, int], a: float, b: float, angle: float) -> torch.Tensor:
    h, w = shape
    ell = Ellipse(cx=w / 2, cy=h / 2, a=a, b=b, angle_deg=angle)
    return torch.from_numpy(ell.rasterise(shape).astype(np.float32))


@pytest.mark.parametrize(("a", "b", "angle"), [(60, 40, 0), (60, 40, 35), (30, 30, 0), (70, 22, 80)])
def test_moment_circumference_is_the_ellipse_circumference(a, b, angle):
    maps = _filled_ellipse((160, 240), a, b, angle)[None, None]
    circumference, present = moment_circumferences(maps)
    expected = Ellipse(cx=0, cy=0, a=a, b=b, angle_deg=angle).circumference()
    assert bool(present.all())
    assert abs(float(circumference) / expected - 1) < 0.015  # pixel steps of the rasterised outline


def test_circumference_loss_counts_a_too_small_outline_and_ignores_absent_targets():
    target = torch.stack([_filled_ellipse((96, 144), 40, 25, 10), torch.zeros(96, 144)])[None]
    exact = (target * 2 - 1) * 12
    small = (torch.stack([_filled_ellipse((96, 144), 36, 22.5, 10), torch.zeros(96, 144)])[None] * 2 - 1) * 12
    assert float(circumference_loss(exact, target)) < 0.002
    assert abs(float(circumference_loss(small, target)) - 0.10) < 0.02  # 10% smaller; the empty channel skipped
    assert float(circumference_loss(exact, torch.zeros_like(target))) == 0.0
    small.requires_grad_(True)
    circumference_loss(small, target).backward()
    assert small.grad is not None and float(small.grad.abs().sum()) > 0


def test_sample_weights_scale_each_image_loss():
    torch.manual_seed(0)
    target = torch.zeros(3, 1, 16, 16)
    target[..., 4:12, 4:12] = 1
    logits = torch.randn(3, 1, 16, 16)
    for bw in (0.0, 4.0):
        plain = dice_bce_loss(logits, target, boundary_weight=bw)
        assert torch.isclose(dice_bce_loss(logits, target, boundary_weight=bw, sample_weight=torch.ones(3)), plain)
        alone = dice_bce_loss(logits[:1], target[:1], boundary_weight=bw, sample_weight=torch.ones(1))
        # only the first image counts, three times over, in a mean over three images: its own loss
        only_first = dice_bce_loss(logits, target, boundary_weight=bw, sample_weight=torch.tensor([3.0, 0.0, 0.0]))
        assert torch.isclose(only_first, alone, rtol=1e-5)


def test_pixel_size_weights_follow_what_a_pixel_costs_in_mm(synthetic_heads):
    from dataclasses import replace

    sizes = [0.1, 0.2, 0.3]
    samples = [replace(s, meta={"pixel_size_mm": px}) for s, px in zip(synthetic_heads, sizes, strict=False)]
    assert np.allclose(pixel_size_weights(samples, 1.0), [0.5, 1.0, 1.5])
    assert np.allclose(pixel_size_weights(samples, 0.0), 1.0)
    assert np.allclose(pixel_size_weights(samples, 2.0), [0.25, 1.0, 2.25])
    unmeasured = [*samples, replace(synthetic_heads[3], meta={})]
    with pytest.raises(DataError, match="pixel size; 1 have none"):
        pixel_size_weights(unmeasured, 1.0)


def test_a_pixel_size_weighted_training_run_weighs_its_images(synthetic_heads):
    from dataclasses import replace

    heads = [replace(s, meta={"pixel_size_mm": 0.1 + 0.05 * i}) for i, s in enumerate(synthetic_heads)]
    base = dict(structures=("head",), input_size=(48, 72), pretrained=False, epochs=1, batch_size=5, lr=3e-3,
                min_epochs=1, threads=1, seed=0, augment=False)
    plain = train_segmenter(heads[:10], heads[10:], SegTrainConfig(**base), log=lambda _: None)
    weighted = train_segmenter(heads[:10], heads[10:], SegTrainConfig(**base, pixel_size_weight=1.0),
                               log=lambda _: None)
    assert np.isfinite(weighted.history[0]["loss"]) and weighted.history[0]["loss"] != plain.history[0]["loss"]
    assert weighted.config.to_dict()["pixel_size_weight"] == 1.0
    with pytest.raises(DataError, match="pixel size"):
        train_segmenter([replace(s, meta={}) for s in heads[:10]], heads[10:],
                        SegTrainConfig(**base, pixel_size_weight=1.0), log=lambda _: None)


@pytest.mark.parametrize("field", ["boundary_weight", "circumference_weight", "pixel_size_weight"])
@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_a_negative_or_missing_loss_weight_is_refused_before_training(synthetic_heads, field, weight):
    from fetalscope.errors import BadInputError

    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, epochs=1,
                         **{field: weight})
    with pytest.raises(BadInputError, match=f"{field} must be >= 0"):
        train_segmenter(synthetic_heads[:4], synthetic_heads[4:6], cfg, log=lambda m: None)


def test_augmentation_moves_image_and_target_together(synthetic_heads):
    cfg = SegTrainConfig(structures=("head",), input_size=(96, 144), pretrained=False)
    rgb, tgt = prepare_sample(synthetic_heads[0], cfg.structures, cfg.preprocess())
    assert rgb.shape == (96, 144, 3) and tgt.shape == (1, 96, 144) and 0 < tgt.mean() < 1
    for seed in range(4):
        a_rgb, a_tgt = augment_pair(rgb, tgt, np.random.default_rng(seed))
        bright = a_rgb[..., 0] > 140
        assert mask_iou(bright, a_tgt[0] > 0.5) > 0.8


def test_the_augmentation_zoom_follows_its_scale_range(synthetic_heads):
    cfg = SegTrainConfig(structures=("head",), input_size=(96, 144), pretrained=False)
    rgb, tgt = prepare_sample(synthetic_heads[0], cfg.structures, cfg.preprocess())
    area = {}
    for scale in (0.7, 1.0, 1.3):
        areas = [augment_pair(rgb, tgt, np.random.default_rng(seed), (scale, scale))[1].sum() for seed in range(3)]
        area[scale] = float(np.mean(areas))
    assert area[0.7] / area[1.0] == pytest.approx(0.49, rel=0.1)
    assert area[1.3] / area[1.0] == pytest.approx(1.69, rel=0.15)  # a little of the head may leave the frame


@pytest.mark.parametrize("scales", [(0.0, 1.1), (1.2, 0.9), (-1.0, 1.0)])
def test_a_bad_scale_range_is_refused_before_training(synthetic_heads, scales):
    from fetalscope.errors import BadInputError

    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, epochs=1, scale_range=scales)
    with pytest.raises(BadInputError, match="scale_range must be"):
        train_segmenter(synthetic_heads[:4], synthetic_heads[4:6], cfg, log=lambda m: None)


def test_targets_are_soft_area_averages(synthetic_heads):
    s = synthetic_heads[1]
    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False)
    _, tgt = prepare_sample(s, cfg.structures, cfg.preprocess())
    truth = Ellipse.from_dict(s.ellipses["head"])
    assert tgt.sum() * 4 == pytest.approx(truth.area(), rel=0.02)  # 2x2 full-res pixels per target pixel
    fit = fit_ellipse(tgt[0], out_shape=(96, 144))
    assert fit.circumference() == pytest.approx(truth.circumference(), rel=0.01)


def test_missing_structure_is_a_data_error(synthetic_heads):
    cfg = SegTrainConfig(structures=("heart",), input_size=(48, 72), pretrained=False)
    with pytest.raises(DataError, match="heart"):
        prepare_sample(synthetic_heads[0], cfg.structures, cfg.preprocess())


def test_a_circumference_loss_training_run_adds_its_term(synthetic_heads):
    base = dict(structures=("head",), input_size=(48, 72), pretrained=False, epochs=2, batch_size=5, lr=3e-3,
                min_epochs=1, threads=1, seed=0, augment=False)
    plain = train_segmenter(synthetic_heads[:10], synthetic_heads[10:], SegTrainConfig(**base), log=lambda _: None)
    weighted = train_segmenter(synthetic_heads[:10], synthetic_heads[10:],
                               SegTrainConfig(**base, circumference_weight=1.0), log=lambda _: None)
    assert all(np.isfinite(h["loss"]) for h in weighted.history)
    # the same seed, images and batches: the added (non-negative) term raises the first epoch's loss
    assert weighted.history[0]["loss"] > plain.history[0]["loss"]
    assert weighted.config.to_dict()["circumference_weight"] == 1.0


def test_tiny_training_run_and_bundle_round_trip(synthetic_heads, tmp_path):
    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, epochs=3, batch_size=5,
                         lr=3e-3, patience=5, min_epochs=1, threads=1, seed=0)
    logs: list[str] = []
    result = train_segmenter(synthetic_heads[:10], synthetic_heads[10:], cfg, log=logs.append)
    assert len(result.history) == 3 and all(np.isfinite(h["loss"]) for h in result.history)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert 1 <= result.best_epoch <= 3 and any("best epoch" in line for line in logs)
    x = torch.randn(2, 3, 48, 72)
    with torch.no_grad():
        ref = result.model(x)
    assert ref.shape == (2, 1, 48, 72)

    folder = save_seg_bundle(result.model, tmp_path / "tiny", cfg.preprocess(), {"name": "tiny", "measurement": "head"})
    assert (folder / "card.md").read_text().startswith("# Model card: tiny")
    bundle = load_seg_bundle(folder)
    assert bundle.structures == ["head"] and bundle.preprocess.input_size == (48, 72)
    with torch.no_grad():
        assert torch.allclose(bundle.model(x), ref, atol=1e-5)

    import onnxruntime as ort

    export_seg_onnx(bundle.model, folder / "model.onnx", bundle.preprocess)
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"image": x.numpy()})
    assert np.allclose(out, ref.numpy(), atol=1e-3)


def test_load_rejects_non_segmentation_bundles(tmp_path):
    with pytest.raises(MissingWeightsError):
        load_seg_bundle(tmp_path / "nothing")
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "card.json").write_text('{"task": "classification", "architecture": "small_cnn"}')
    with pytest.raises(MissingWeightsError, match="not a segmentation bundle"):
        load_seg_bundle(tmp_path / "cls")


def test_prepared_arrays_cache_round_trip(synthetic_heads, tmp_path, monkeypatch):
    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False)
    fresh = prepare_arrays(synthetic_heads[:4], cfg)
    cached = prepare_arrays(synthetic_heads[:4], cfg, cache=tmp_path)
    file = prepared_cache_file(synthetic_heads[:4], cfg, tmp_path)
    assert file.is_file() and list(tmp_path.iterdir()) == [file]
    # a second read comes from the file alone: the images are no longer decoded
    import fetalscope.train.segmenter.trainer as segtrain

    monkeypatch.setattr(segtrain, "load_image", lambda path: (_ for _ in ()).throw(AssertionError("decoded")))
    again = prepare_arrays(synthetic_heads[:4], cfg, cache=tmp_path)
    for (r0, t0), (r1, t1), (r2, t2) in zip(fresh, cached, again, strict=True):
        assert np.array_equal(r0, r2) and np.array_equal(r1, r2) and r2.shape == (48, 72, 3)
        assert np.array_equal(t0, t2) and np.array_equal(t1, t2) and t2.dtype == np.float32
    # another sample list or input size is another file
    other = SegTrainConfig(structures=("head",), input_size=(64, 96), pretrained=False)
    assert prepared_cache_file(synthetic_heads[:4], other, tmp_path) != file
    assert prepared_cache_file(synthetic_heads[:3], cfg, tmp_path) != file


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="no CUDA"):
            resolve_device("cuda")


def test_keep_last_epoch_for_refits(synthetic_heads):
    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, epochs=2, batch_size=5,
                         lr=3e-3, min_epochs=1, patience=1, threads=1, seed=0, keep="last")
    result = train_segmenter(synthetic_heads[:10], synthetic_heads[10:], cfg, log=lambda _: None)
    assert len(result.history) == 2 and result.best_epoch == 2
    assert result.best_score == result.history[-1]["early_stop_dice"]
    with pytest.raises(DataError, match="keep"):
        train_segmenter(synthetic_heads[:10], synthetic_heads[10:],
                        SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, keep="first"))


def test_weight_averaging_keeps_the_mean_of_the_last_epochs(synthetic_heads, monkeypatch):
    import fetalscope.train.segmenter.trainer as trainer

    epoch_states: list[dict[str, torch.Tensor]] = []
    scores = trainer.dice_scores

    def recording(model, *args, **kwargs):  # called once per epoch on the early-stop split, and once more
        epoch_states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return scores(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "dice_scores", recording)
    cfg = SegTrainConfig(structures=("head",), input_size=(48, 72), pretrained=False, epochs=3, batch_size=5,
                         lr=3e-3, min_epochs=1, threads=1, seed=0, keep="last", average_last=2)
    result = train_segmenter(synthetic_heads[:10], synthetic_heads[10:], cfg, log=lambda _: None)
    assert result.averaged_epochs == 2 and len(result.history) == 3
    kept = result.model.state_dict()
    second, third = epoch_states[1], epoch_states[2]
    for name, value in kept.items():
        if value.is_floating_point():  # weights and BatchNorm statistics: the mean of epochs 2 and 3
            torch.testing.assert_close(value, (second[name] + third[name]) / 2, rtol=1e-5, atol=1e-6)
        else:  # BatchNorm's batch counters stay the last epoch's
            assert torch.equal(value, third[name])
    assert any(not torch.equal(v, third[k]) for k, v in kept.items() if v.is_floating_point())  # not the last
    # the kept score is the averaged model's own early-stop Dice (the extra call after the last epoch)
    assert len(epoch_states) == 4 and 0 < result.best_score <= 1


@pytest.mark.parametrize("kwargs", [{"average_last": 4}, {"average_last": -1}, {"average_last": 2, "keep": "best"}])
def test_bad_weight_averaging_is_refused_before_training(synthetic_heads, kwargs):
    from fetalscope.errors import BadInputError

    cfg = SegTrainConfig(**{"structures": ("head",), "input_size": (48, 72), "pretrained": False, "epochs": 3,
                            "keep": "last", **kwargs})
    with pytest.raises(BadInputError, match="average_last"):
        train_segmenter(synthetic_heads[:10], synthetic_heads[10:], cfg, log=lambda _: None)


def test_weight_averaging_needs_a_fixed_last_epoch(synthetic_heads, tmp_path):
    from fetalscope.errors import BadInputError
    from fetalscope.train.segmenter.recipes import train_measurement

    with pytest.raises(BadInputError, match="--refit or --cv-fold"):
        train_measurement("head", samples=synthetic_heads, out=tmp_path / "never", epochs=3, average_last=2)
    assert not (tmp_path / "never").exists()


def test_refit_needs_its_epoch_count(tmp_path):
    from fetalscope.errors import BadInputError
    from fetalscope.train.segmenter.recipes import train_measurement

    with pytest.raises(BadInputError, match="number of epochs"):
        train_measurement("head", out=tmp_path / "never", refit=True)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("kwargs", [{"cv_fold": (0, 3)}, {"cv_fold": (0, 3), "epochs": 2, "refit": True},
                                    {"cv_fold": (3, 3), "epochs": 2}, {"cv_fold": (0, 1), "epochs": 2}])
def test_a_bad_cross_validation_fold_is_refused_before_training(synthetic_heads, tmp_path, kwargs):
    from fetalscope.errors import BadInputError
    from fetalscope.train.segmenter.recipes import train_measurement

    with pytest.raises(BadInputError):
        train_measurement("head", samples=synthetic_heads, out=tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()


def test_cross_validation_folds_hold_out_every_non_validation_image_once(synthetic_heads, tmp_path):
    import json
    from pathlib import Path

    from fetalscope.train.segmenter.recipes import read_split, train_measurement

    held, validation = [], set()
    for k in range(3):
        folder = train_measurement("head", samples=synthetic_heads, out=tmp_path / f"cv{k}", epochs=1,
                                   input_size=(48, 72), pretrained=False, onnx=False, cache=False,
                                   split_seed=0, cv_fold=(k, 3), log=lambda m: None)
        fold, train = read_split(folder, "fold"), read_split(folder, "train")
        assert fold and train and not set(fold) & set(train)
        validation.add(tuple(read_split(folder, "validation")))
        assert not set(fold) & set(validation.copy().pop())
        held += fold
        card = json.loads((folder / "card.json").read_text())
        assert card["training"]["cv_fold"]["fold"] == k and card["training"]["config"]["keep"] == "last"
        assert card["training"]["epochs_run"] == 1
    assert len(validation) == 1  # every fold model holds out the same validation split
    non_validation = {s.path.name for s in synthetic_heads} - {Path(v).name for v in validation.pop()}
    assert sorted(Path(h).name for h in held) == sorted(non_validation)


def _saved(net, folder, data_source: str = "tiny heads"):
    from fetalscope.models.segmentation import segmentation_preprocess

    return save_seg_bundle(net, folder, segmentation_preprocess("efficientnet_lite0", (32, 48)),
                           {"name": folder.name, "measurement": "head",
                            "data": {"source": data_source, "licence": "CC BY 4.0"},
                            "base_weights": {"name": "random", "source": "none", "licence": "none"}})


def test_a_start_from_another_structures_bundle_takes_its_first_network_but_not_its_output_layer(tmp_path):
    from fetalscope.models.segmentation import EllipseUNet, EllipseUNetEnsemble
    from fetalscope.train.segmenter.recipes import started_from_card
    from fetalscope.train.segmenter.trainer import start_from_bundle

    torch.manual_seed(0)
    first, second = EllipseUNet(("head",)), EllipseUNet(("head",))
    folder = _saved(EllipseUNetEnsemble([first, second]), tmp_path / "heads")
    model = EllipseUNet(("heart", "thorax"))
    fresh_head = model.head.weight.detach().clone()
    said = start_from_bundle(model, folder)
    assert "first network" in said and "output layer for heart, thorax starts fresh" in said
    loaded = load_seg_bundle(folder).model.members[0].state_dict()
    ours = model.state_dict()
    for name, value in loaded.items():  # every layer but the output layer is the first member's
        if not name.startswith("head.") and value.is_floating_point():
            assert torch.equal(ours[name], value), name
    assert not torch.equal(ours["up1.conv.0.weight"], second.state_dict()["up1.conv.0.weight"])  # not member 2
    assert torch.equal(model.head.weight, fresh_head) and model.head.weight.shape[0] == 2
    card = started_from_card(folder)
    assert "heads bundle's first network" in card["name"] and "tiny heads" in card["name"]
    assert "CC BY 4.0" in card["licence"]


def test_a_start_with_another_encoder_is_refused(tmp_path):
    from fetalscope.models.segmentation import EllipseUNet
    from fetalscope.train.segmenter.trainer import start_from_bundle

    folder = _saved(EllipseUNet(("head",), decoder_channels=(64, 48, 32, 16)), tmp_path / "narrow")
    with pytest.raises(DataError, match="decoder_channels"):
        start_from_bundle(EllipseUNet(("heart", "thorax")), folder)


def test_a_start_with_the_same_structures_loads_every_weight(tmp_path):
    from fetalscope.models.segmentation import EllipseUNet
    from fetalscope.train.segmenter.trainer import start_from_bundle

    torch.manual_seed(1)
    folder = _saved(EllipseUNet(("head",)), tmp_path / "one")
    model = EllipseUNet(("head",))
    assert "its network" in start_from_bundle(model, folder)
    loaded = load_seg_bundle(folder).model.state_dict()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in loaded.items())
