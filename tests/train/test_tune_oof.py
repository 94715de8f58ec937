"""Out-of-fold choices of the post-processing tuners (scripts/tune_head_measure.py): an HC correction is fitted
on the other folds only, removes a bias it has seen, and a head held out by two fold models is refused; the
seed comparison of scripts/tune_ctr_measure.py averages what an ensemble averages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tune():
    return _script("tune_head_measure")


@pytest.fixture(scope="module")
def tune_ctr():
    return _script("tune_ctr_measure")


@pytest.fixture(scope="module")
def folds():
    return _script("tune_folds")


def test_corrections_remove_the_bias_they_were_fitted_on(folds):
    rng = np.random.default_rng(0)
    ref = rng.uniform(60, 340, 400)
    pred = ref * 0.98 - 0.5 + rng.normal(0, 0.3, ref.size)  # 2% and 0.5 mm too small
    for kind in ("scale", "offset", "linear"):
        params = folds.fit_correction(kind, pred, ref)
        fixed = folds.apply_correction(kind, params, pred)
        assert abs(np.mean(fixed - ref)) < 0.2 < 4.0 < abs(np.mean(pred - ref))
    lin = folds.apply_correction("linear", folds.fit_correction("linear", pred, ref), pred)
    assert np.abs(lin - ref).mean() < 0.35  # only the noise is left
    assert np.array_equal(folds.apply_correction("none", folds.fit_correction("none", pred, ref), pred), pred)
    with pytest.raises(ValueError, match="unknown correction"):
        folds.fit_correction("quadratic", pred, ref)


def test_a_linear_correction_shrinks_noisy_predictions_towards_the_mean(folds):
    rng = np.random.default_rng(1)
    ref = rng.normal(0.5, 0.035, 2000)
    pred = ref + rng.normal(0, 0.035, ref.size)  # as noisy as the spread: the best line has slope ~0.5
    a, b = folds.fit_correction("linear", pred, ref)
    assert 0.4 < 1 - b < 0.6  # x - (a + b x) = -a + (1 - b) x
    fixed = folds.apply_correction("linear", np.array([a, b]), pred)
    assert np.abs(fixed - ref).mean() < 0.85 * np.abs(pred - ref).mean()


def test_cross_fitting_never_uses_the_fold_it_corrects(folds):
    ref = np.full(20, 100.0)
    pred = ref.copy()
    pred[:10] += 10.0  # fold 0 is 10 mm too large, fold 1 exact
    fold = np.repeat([0, 1], 10)
    fixed = folds.cross_fitted_correction("scale", pred, ref, fold)
    # fold 0 is corrected by fold 1's fit (no bias: unchanged) and fold 1 by fold 0's (shrunk by ~9%)
    assert np.allclose(fixed[:10], pred[:10])
    assert np.allclose(fixed[10:], 100.0 * (1 - 10 / 110))


def test_a_head_held_out_twice_is_refused(tune, tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "CACHE_ROOT", tmp_path)
    for name in ("cv0", "cv1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "fold.json").write_text(json.dumps([{"name": "001_HC.png", "group": "001"}]))
        np.savez_compressed(tmp_path / name / "001_HC.png.npz", plain=np.zeros((2, 2)))
    with pytest.raises(SystemExit, match="held out by two fold models"):
        tune.load_oof([str(tmp_path / "cv0"), str(tmp_path / "cv1")])


def _cached(name: str, heart: float, thorax: float) -> dict:
    arr = {"plain_heart": np.full((4, 6), heart), "plain_thorax": np.full((4, 6), thorax),
           "zoom0.1_heart": np.zeros((4, 6)), "zoom0.1_thorax": np.zeros((4, 6))}
    return {"name": name, "group": name, "shape": [40, 60], "crops": {"0.1": [0, 0, 6, 4]}, "arr": arr}


def test_seed_average_is_the_mean_of_the_image_maps_and_drops_crops(tune_ctr):
    a = [_cached("x.png", 0.2, 0.9), _cached("y.png", 0.4, 0.1)]
    b = [_cached("y.png", 0.8, 0.3), _cached("x.png", 0.6, 0.5)]  # the same images in another order
    mean = {m["name"]: m for m in tune_ctr.seed_average([a, b])}
    x, y = mean["x.png"]["arr"], mean["y.png"]["arr"]
    assert np.allclose(x["plain_heart"], 0.4) and np.allclose(x["plain_thorax"], 0.7)
    assert np.allclose(y["plain_heart"], 0.6) and np.allclose(y["plain_thorax"], 0.2)
    assert set(mean["x.png"]["arr"]) == {"plain_heart", "plain_thorax"} and mean["x.png"]["crops"] == {}
    with pytest.raises(SystemExit, match="hold out different images"):
        tune_ctr.seed_average([a, [_cached("x.png", 0.1, 0.1), _cached("z.png", 0.1, 0.1)]])


def test_paired_bootstrap_brackets_the_difference_of_means(tune_ctr):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 0.04, 300)
    lo, hi = tune_ctr.paired_bootstrap(a, a)
    assert lo == hi == 0.0  # the same errors: no difference in any resample
    lo, hi = tune_ctr.paired_bootstrap(a, a + 0.01 + rng.normal(0, 0.002, a.size))
    assert -0.02 < lo < -0.01 < hi < 0  # the true difference is -0.01


def test_error_agreement_tells_shared_errors_from_seed_noise(tune_ctr):
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.02, 300)
    alike = tune_ctr._error_agreement([shared + rng.normal(0, 0.002, 300) for _ in range(3)], "image view")[0]
    apart = tune_ctr._error_agreement([rng.normal(0, 0.02, 300) for _ in range(2)], "image view")[0]
    r_alike = float(alike.split("r = ")[1].split(" ")[0])
    r_apart = float(apart.split("r = ")[1].split(" ")[0])
    assert r_alike > 0.95 and abs(r_apart) < 0.2
    assert "(pairwise, 3 pairs)" in alike and "(pairwise, 1 pair)" in apart
    assert "more seeds cannot remove it" in alike and "averaging more of them can remove part" in apart
    spread = float(alike.split("differ by ")[1].split(" ")[0])
    assert 0.001 < spread < 0.003  # the seeds' own noise (sd 0.002), not the shared error (sd 0.02)


def _fold_set(root: Path, encoder: str, seed: int = 0) -> list[str]:
    folder = root / f"{encoder}-s{seed}"
    folder.mkdir()
    card = {"training": {"config": {"encoder": encoder, "input_size": [160, 240], "seed": seed}}}
    (folder / "card.json").write_text(json.dumps(card))
    return [str(folder)]


def test_recipes_refuse_two_sets_of_one_recipe_or_other_held_out_images(tune_ctr, folds, tmp_path, monkeypatch):
    held_out = {"efficientnet_lite0": ["x.png", "y.png"], "sononet16": ["x.png", "z.png"]}
    monkeypatch.setattr(tune_ctr, "load_cached_folds",
                        lambda folds: [{"name": n, "fold": 0} for n in held_out[Path(folds[0]).name[:-3]]])
    lite = _fold_set(tmp_path, "efficientnet_lite0")
    sono = _fold_set(tmp_path, "sononet16")
    with pytest.raises(SystemExit, match="hold out different images"):
        tune_ctr.recipes_report([lite, sono], tmp_path / "out.md")
    with pytest.raises(SystemExit, match="same recipe"):
        tune_ctr.recipes_report([lite, lite], tmp_path / "out.md")
    assert not (tmp_path / "out.md").exists()
    assert folds.recipe_name(json.loads((Path(sono[0]) / "card.json").read_text())) == "sononet16, 160x240, seed 0"


def test_a_recipe_name_says_its_extra_loss_terms_zoom_averaging_and_start(folds):
    config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": 1}
    assert folds.recipe_name({"training": {"config": {**config, "boundary_weight": 0.0}}}) == \
        "efficientnet_lite0, 160x240, seed 1"
    named = folds.recipe_name({"training": {"config": {**config, "circumference_weight": 2.0}}})
    assert named == "efficientnet_lite0, 160x240, circumference weight 2, seed 1"
    assert folds.recipe_name({"training": {"config": {**config, "scale_range": [0.9, 1.1]}}}) == \
        "efficientnet_lite0, 160x240, seed 1"
    assert folds.recipe_name({"training": {"config": {**config, "scale_range": [0.7, 1.4]}}}) == \
        "efficientnet_lite0, 160x240, zoom 0.7-1.4, seed 1"
    assert folds.recipe_name({"training": {"config": {**config, "average_last": 3}}}) == \
        "efficientnet_lite0, 160x240, mean of the last 3 epochs, seed 1"
    assert folds.recipe_name({"training": {"config": {**config, "average_last": 1}}}) == \
        "efficientnet_lite0, 160x240, seed 1"  # one epoch's weights: no averaging
    assert folds.recipe_name({"training": {"config": {**config, "pixel_size_weight": 1.0}}}) == \
        "efficientnet_lite0, 160x240, pixel-size weight 1, seed 1"
    assert folds.recipe_name({"training": {"config": {**config, "pixel_size_weight": 0.0}}}) == \
        "efficientnet_lite0, 160x240, seed 1"
    started = {**config, "init_from": "src/fetalscope/models/bundled/hc18-head"}
    assert folds.recipe_name({"training": {"config": started}}) == \
        "efficientnet_lite0, 160x240, started from hc18-head, seed 1"


def test_every_ellipse_fitter_recovers_an_ellipse_from_its_outline(tune):
    from fetalscope.biometry.ellipse import Ellipse

    truth = Ellipse(cx=320.0, cy=240.0, a=150.0, b=110.0, angle_deg=25.0)
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    rng = np.random.default_rng(0)
    c, s = np.cos(np.deg2rad(truth.angle_deg)), np.sin(np.deg2rad(truth.angle_deg))
    u, v = truth.a * np.cos(t), truth.b * np.sin(t)
    arc = t < 1.4 * np.pi  # a skull wall lost in shadow: only part of the outline is seen
    xy = np.stack([truth.cx + u * c - v * s, truth.cy + u * s + v * c], axis=1)[arc]
    xy = xy + rng.normal(0, 0.5, xy.shape)
    for name, (_, fit) in tune.FITTERS.items():
        got = fit(xy)
        assert got is not None, name
        assert abs(got.circumference() / truth.circumference() - 1) < 0.01, name
        assert abs(got.cx - truth.cx) < 2 and abs(got.cy - truth.cy) < 2, name
    assert tune.FITTERS["radial"][1](xy[:5]) is None  # too few points for any fit


def test_the_error_by_ellipse_section_names_the_ellipse_that_carries_the_error(tune_ctr):
    rng = np.random.default_rng(0)
    heart_only = rng.normal(0, 0.02, 100)  # the CTR error is the heart's: exact heart leaves nothing
    scored = {"errors": heart_only, "errors_exact_heart": np.zeros(100), "errors_exact_thorax": heart_only,
              "heart_relative": heart_only / 0.5, "thorax_relative": np.zeros(100)}
    lines = tune_ctr._error_by_ellipse(scored, "recipe")
    heart = next(line for line in lines if line.startswith("| heart"))
    thorax = next(line for line in lines if line.startswith("| thorax"))
    assert heart.endswith("| 0.0000 |") and thorax.endswith(f"| {np.abs(heart_only).mean():.4f} |")
    assert "| 0.0% | +0.0% |" in thorax
    assert lines[-1] == f"CTR MAE as measured: {np.abs(heart_only).mean():.4f}."


def _head_caches(root: Path, recipe: str, config: dict, scale: float, heads: list[str]) -> list[str]:
    """One fold model's cache of held-out heads: every view's map a disc ``scale`` times the reference's radius."""
    import cv2

    folder = root / "runs" / recipe
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"training": {"config": config}}))
    cache = root / "cache" / recipe
    cache.mkdir(parents=True)
    meta = []
    for i, name in enumerate(heads):
        radius = 20.0 + 5 * i
        disc = np.zeros((120, 160), np.float32)
        cv2.circle(disc, (80, 60), int(round(radius * scale)), 1.0, -1)
        arrays = {v: disc for v in ("plain", "flip", "zoom0.15", "zoom0.35")}
        np.savez_compressed(cache / f"{name}.npz", **arrays)
        meta.append({"name": name, "group": name[:3], "hc_ref_mm": 2 * np.pi * radius * 0.1, "px": 0.1,
                     "shape": [120, 160], "crops": {"0.15": [0, 0, 160, 120], "0.35": [0, 0, 160, 120]},
                     "ref": {"cx": 80, "cy": 60, "a": radius, "b": radius, "angle_deg": 0}})
    (cache / "fold.json").write_text(json.dumps(meta))
    return [str(folder)]


def test_head_recipes_report_scores_every_recipe_on_the_same_held_out_heads(tune, tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "CACHE_ROOT", tmp_path / "cache")
    config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": 0}
    heads = ["001_HC.png", "002_HC.png", "003_HC.png"]
    shipped = _head_caches(tmp_path, "plain", config, 0.9, heads)  # outlines 10% too small
    averaged = _head_caches(tmp_path, "avg3", {**config, "average_last": 3}, 0.98, heads)
    out = tmp_path / "recipes.md"
    tune.recipes_report([shipped, averaged], out)
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| efficientnet_lite0")]
    assert rows[0].startswith("| efficientnet_lite0, 160x240, seed 0 |")
    assert rows[1].startswith("| efficientnet_lite0, 160x240, mean of the last 3 epochs, seed 0 |")
    mad = [float(r.split("|")[2].split("(")[0]) for r in rows]
    assert mad[1] < mad[0] and mad[0] > 1.0  # 10% of a 13-28 mm head against 2%
    gain = float(text.split("reduced by ")[1].split(" mm")[0])
    assert gain == pytest.approx(mad[0] - mad[1], abs=0.002)
    assert "held out by its first 1 fold (the other folds' heads are not scored" in text  # 1 of 5 folds
    tune.recipes_report([shipped, averaged], out, of_folds=1)
    assert "predicts each of the 3 train and early-stop heads" in out.read_text()
    other = _head_caches(tmp_path, "other", {**config, "seed": 1}, 0.98, ["001_HC.png", "009_HC.png", "003_HC.png"])
    with pytest.raises(SystemExit, match="hold out different heads"):
        tune.recipes_report([shipped, other], tmp_path / "never.md")
    with pytest.raises(SystemExit, match="same recipe"):
        tune.recipes_report([shipped, shipped], tmp_path / "never.md")
    assert not (tmp_path / "never.md").exists()


@pytest.mark.parametrize("argv", [["recipes", "--folds", "runs/a0", "runs/a1"],
                                  ["recipes", "--folds", "runs/a0", "runs/a1", "--folds", "runs/b0"],
                                  ["oof", "--folds", "runs/a0", "--folds", "runs/b0"],
                                  ["interval", "--folds", "runs/a0", "--folds", "runs/b0"]])
def test_the_tuners_refuse_the_wrong_number_of_fold_sets(tune, tune_ctr, argv, capsys):
    for script in (tune, tune_ctr):
        with pytest.raises(SystemExit) as stop:
            script.main(argv)
        assert stop.value.code == 2
        assert "--folds" in capsys.readouterr().err


def _ctr_cached(name: str, fuzzy: bool) -> dict:
    """A cached FOCUS image whose heart map (a disc of radius 15 inside a thorax disc of radius 40) is sharp all
    round, or, with ``fuzzy``, fades slowly on its right side, so that its 0.5 contour bulges out there."""
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float32)
    r = np.hypot(xx - 80, yy - 60)
    thorax = np.clip(40.5 - r, 0, 1)
    heart = np.clip(15.5 - r, 0, 1)
    if fuzzy:
        heart = np.where(xx > 80, np.maximum(heart, np.clip(1 - (r - 15) / 12, 0, 1) * (xx - 80) / np.maximum(r, 1)),
                         heart)
    views = ("plain", "zoom0.1", "zoom0.2", "zoom0.35")
    arr = {f"{v}_{k}": m for v in views for k, m in (("heart", heart), ("thorax", thorax))}
    circle = {"cx": 80.0, "cy": 60.0, "angle_deg": 0.0}
    return {"name": name, "group": name, "fold": 0, "shape": [120, 160], "arr": arr,
            "crops": {m: [0, 0, 160, 120] for m in ("0.1", "0.2", "0.35")},
            "ref": {"heart": {**circle, "a": 15.0, "b": 15.0}, "thorax": {**circle, "a": 40.0, "b": 40.0}}}


def test_outline_options_choose_on_the_first_set_and_need_the_others_to_agree(tune_ctr, tmp_path, monkeypatch):
    names = ["a.png", "b.png", "c.png"]
    sets = {"fuzzy-s0": True, "fuzzy-s1": True, "clean-s2": False}
    monkeypatch.setattr(tune_ctr, "load_cached_folds",
                        lambda folds: [_ctr_cached(n, sets[Path(folds[0]).name]) for n in names])
    folders = {}
    for i, name in enumerate(sets):
        (tmp_path / name).mkdir()
        card = {"training": {"config": {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": i}}}
        (tmp_path / name / "card.json").write_text(json.dumps(card))
        folders[name] = [str(tmp_path / name)]
    shipped = tune_ctr.score([_ctr_cached("a.png", True)], "image + all crops")
    sharp = tune_ctr.score([_ctr_cached("a.png", True)], "image + all crops", tune_ctr.Outline(heart_sharpness=0.7))
    assert shipped["mae"] > 0.01 and sharp["mae"] < shipped["mae"] / 4  # the fuzzy side is left out of the fit
    assert tune_ctr.score([_ctr_cached("a.png", False)], "image + all crops")["mae"] < 0.002
    agree = tmp_path / "agree.md"
    tune_ctr.outline_report([folders["fuzzy-s0"], folders["fuzzy-s1"]], agree)
    last = agree.read_text().strip().splitlines()[-1]
    assert "sharpness" in last.split("Chosen on")[1].split(";")[0] and last.endswith("It goes on to validation.")
    disagree = tmp_path / "disagree.md"
    tune_ctr.outline_report([folders["fuzzy-s0"], folders["clean-s2"]], disagree)
    assert disagree.read_text().strip().endswith("the shipped way stays.")
    monkeypatch.setattr(tune_ctr, "OUTLINE_IOU_SLACK", -1.0)  # no option can keep its IoUs: nothing is chosen
    tune_ctr.outline_report([folders["fuzzy-s0"], folders["clean-s2"]], disagree)
    assert disagree.read_text().strip().endswith("the shipped way stays.") and "Chosen" not in disagree.read_text()


def test_outline_needs_a_second_cross_validation_to_confirm(tune_ctr, capsys):
    with pytest.raises(SystemExit) as stop:
        tune_ctr.main(["outline", "--folds", "runs/a0", "runs/a1"])
    assert stop.value.code == 2 and "outline needs --folds" in capsys.readouterr().err


def _varied(cached: dict, i: int) -> dict:
    """``cached`` in fold ``i % 2`` with a reference thorax ``i`` pixels wider, so that reference CTRs differ."""
    ref = {**cached["ref"], "thorax": {**cached["ref"]["thorax"], "a": 40.0 + i, "b": 40.0 + i}}
    return {**cached, "fold": i % 2, "ref": ref}


def test_recipes_report_pairs_each_recipe_ious_and_breaks_down_every_recipe(tune_ctr, tmp_path, monkeypatch):
    import types

    import fetalscope.data.focus as focus

    names = ["a.png", "b.png", "c.png", "d.png"]
    sets = {"clean-s0": False, "fuzzy-s1": True}
    monkeypatch.setattr(tune_ctr, "load_cached_folds",
                        lambda folds: [_varied(_ctr_cached(n, sets[Path(folds[0]).name]), i)
                                       for i, n in enumerate(names)])
    monkeypatch.setattr(focus, "load_focus", lambda with_masks=False: [
        types.SimpleNamespace(path=Path(n), meta={"focus_split": "training" if n < "c" else "validation"})
        for n in names])
    folders = []
    for i, (name, fuzzy) in enumerate(sets.items()):
        (tmp_path / name).mkdir()
        config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": i}
        if fuzzy:
            config["init_from"] = "bundles/hc18-head"
        (tmp_path / name / "card.json").write_text(json.dumps({"training": {"config": config}}))
        folders.append([str(tmp_path / name)])
    out = tmp_path / "recipes.md"
    tune_ctr.recipes_report(folders, out)
    text = out.read_text()
    line = next(x for x in text.splitlines() if x.startswith("efficientnet_lite0, 160x240, started from hc18-head"))
    heart = line.split("IoU heart ")[1]
    diff, (lo, hi) = float(heart.split(" ")[0]), (float(v) for v in heart.split("(")[1].split(")")[0].split(" to "))
    assert diff < 0 and lo <= diff <= hi < 0  # the fuzzy heart is worse on every image: the interval excludes 0
    for recipe in ("efficientnet_lite0, 160x240, seed 0",
                   "efficientnet_lite0, 160x240, started from hc18-head, seed 1"):
        assert f"## By FOCUS folder (out of fold: {recipe}, image + crops)" in text
        assert f"## Which ellipse carries the error (out of fold: {recipe}, image + crops)" in text
    assert "| training | 2 |" in text and "| validation | 2 |" in text
    row = next(x for x in text.splitlines() if x.startswith("| training | 2 |")).split(" | ")
    model_mae, const_mae, ratio = float(row[3]), float(row[4]), float(row[5])
    assert const_mae > 0 and ratio == pytest.approx(model_mae / const_mae, abs=0.02)  # both rounded in the table


def test_a_ctr_correction_goes_to_validation_only_when_both_cross_validations_gain(tune_ctr, tmp_path, monkeypatch):
    import types

    import fetalscope.data.focus as focus

    names = [f"{c}.png" for c in "abcdefghij"]
    sets = {"fuzzy-s0": True, "fuzzy-s1": True, "clean-s2": False}

    def cached(folds: list[str]) -> list[dict]:
        """The fuzzy sets measure every heart too large; the clean set measures right on average (each fold's
        reference thoraxes 1 px wider and narrower in turn), so no offset or line helps it."""
        if sets[Path(folds[0]).name]:
            return [_varied(_ctr_cached(n, True), i) for i, n in enumerate(names)]
        return [{**_varied(_ctr_cached(n, False), 1 if i % 2 else -1), "fold": (i // 2) % 2}
                for i, n in enumerate(names)]

    monkeypatch.setattr(tune_ctr, "load_cached_folds", cached)
    monkeypatch.setattr(focus, "load_focus", lambda with_masks=False: [
        types.SimpleNamespace(path=Path(n), meta={"focus_split": "training"}) for n in names])
    folders = {}
    for i, name in enumerate(sets):
        (tmp_path / name).mkdir()
        config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": i}
        (tmp_path / name / "card.json").write_text(json.dumps({"training": {"config": config}}))
        folders[name] = [str(tmp_path / name)]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "card.json").write_text(json.dumps({"metrics": {"ctr_circumference_mae": {"value": 0.05}}}))
    seen: list[str] = []

    def validation(split: str, folder: str) -> list[dict]:
        seen.append(split)
        return [_varied(_ctr_cached(n, True), i) for i, n in enumerate(names[:4])]

    monkeypatch.setattr(tune_ctr, "load", validation)
    out = tmp_path / "correction.md"
    # the fuzzy heart is measured too large on every image: an offset fitted on the other fold removes it
    assert tune_ctr.correction_report([folders["fuzzy-s0"], folders["fuzzy-s1"]], str(bundle), out)
    text = out.read_text()
    assert "goes to validation" in text and "passes" in text and seen == ["validation"]
    offset = next(x for x in text.splitlines() if x.startswith("| offset"))
    assert float(offset.split(" | ")[4].split(" ")[0]) < -0.005
    # the replication has no bias to remove, so nothing goes to validation and validation is not read
    seen.clear()
    assert not tune_ctr.correction_report([folders["fuzzy-s0"], folders["clean-s2"]], str(bundle), out)
    assert "does not go to validation (rule C1)" in out.read_text() and seen == []


def _disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)


def test_views_on_a_larger_input_map_back_to_image_pixels(tune):
    # a 160 x 120 image; its 0.15 crop is the 120 x 80 window at (10, 5); the @2 maps have twice the pixels
    meta = {"shape": [120, 160], "crops": {"0.15": [10.0, 5.0, 120, 80]},
            "arr": {"plain@2": _disc((240, 320), 160, 120, 50), "zoom0.15@2": _disc((160, 240), 120, 80, 40),
                    "zoom0.15": _disc((80, 120), 60, 40, 20)}}
    plain = tune.view_fit(meta, "plain@2")
    assert (plain.cx, plain.cy) == pytest.approx((80, 60), abs=0.3) and plain.a == pytest.approx(25, abs=0.3)
    for view in ("zoom0.15@2", "zoom0.15"):  # the same crop at 2x and 1x: the same ellipse in the image
        crop = tune.view_fit(meta, view)
        assert (crop.cx, crop.cy) == pytest.approx((70, 45), abs=0.3) and crop.a == pytest.approx(20, abs=0.3)
    assert tune.scaled_input_size((160, 240), 2) == (320, 480)
    for bad in (1.5, 0.5, -2):  # 240 x 360 and 80 x 120 are not multiples of the encoder's stride
        with pytest.raises(SystemExit, match="multiples of 32"):
            tune.scaled_input_size((160, 240), bad)
    views = tune.scale_views(2)
    assert views["shipped"] == tune.VIEW_SETS["current"] and all(
        any(v.endswith("@2") for v in vs) for k, vs in views.items() if k not in ("shipped", "(probe) plain alone"))


def _heart_cached(name: str, shipped_r: float, crop_r: float) -> dict:
    """A cached FOCUS image (reference heart radius 15 in a thorax of 40) whose shipped views draw the heart with
    radius ``shipped_r`` and whose heart crops (the whole 160 x 120 frame, offsets 0) with ``crop_r``."""
    thorax = _disc((120, 160), 80, 60, 40)
    arr = {f"{v}_thorax": thorax for v in ("plain", "zoom0.1", "zoom0.2", "zoom0.35", "hcrop0.25", "hcrop0.5",
                                           "hcrop1")}
    arr.update({f"{v}_heart": _disc((120, 160), 80, 60, shipped_r) for v in ("plain", "zoom0.1", "zoom0.2",
                                                                              "zoom0.35")})
    arr.update({f"{v}_heart": _disc((120, 160), 80, 60, crop_r) for v in ("hcrop0.25", "hcrop0.5", "hcrop1")})
    crops = {m: [0, 0, 160, 120] for m in ("0.1", "0.2", "0.35", "hcrop0.25", "hcrop0.5", "hcrop1")}
    circle = {"cx": 80.0, "cy": 60.0, "angle_deg": 0.0}
    return {"name": name, "group": name, "shape": [120, 160], "arr": arr, "crops": crops,
            "ref": {"heart": {**circle, "a": 15.0, "b": 15.0}, "thorax": {**circle, "a": 40.0, "b": 40.0}}}


@pytest.mark.parametrize(("crop_r", "passes"), [(15.0, True), (17.0, False)])
def test_heart_crops_go_to_validation_only_when_they_beat_the_shipped_heart_on_every_cross_validation(
        tune_ctr, tmp_path, monkeypatch, crop_r, passes):
    names = ["a.png", "b.png", "c.png"]
    monkeypatch.setattr(tune_ctr, "_with_heart_crops", lambda folder: [_heart_cached(n, 16.0, crop_r) for n in names])
    folders = []
    for seed in (0, 1):
        (tmp_path / f"s{seed}").mkdir()
        config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": seed}
        (tmp_path / f"s{seed}" / "card.json").write_text(json.dumps({"training": {"config": config}}))
        folders.append([str(tmp_path / f"s{seed}")])
    out = tmp_path / "heart.md"
    assert tune_ctr.heart_crops_report(folders, out) is passes
    text = out.read_text()
    rows = {r.split(" | ")[0][2:]: r.split(" | ") for r in text.splitlines() if r.startswith("| ")}
    shipped, crops_only = float(rows["shipped"][1]), float(rows["H4 heart crops only"][1])
    assert shipped > 0.01  # a heart 1/15 too large
    assert (crops_only < 0.002) is passes  # exact crops leave nothing; 17/15 crops miss by more than 16/15
    decision = text.strip().splitlines()[-1]
    assert decision.startswith("Best on efficientnet_lite0, 160x240, seed 0: ")
    assert ("goes to validation" in decision) is passes and ("not adopted" in decision) is not passes


def _ramp(shape: tuple[int, int], r: float, width: float) -> np.ndarray:
    """A disc of radius ``r`` (probability 0.5 there) whose edge falls linearly over ``width`` pixels."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return np.clip((r - np.hypot(xx - 80, yy - 60)) / width + 0.5, 0, 1).astype(np.float32)


def _pair(name: str, radius: float, px: float, blurry_b: bool) -> tuple[dict, dict, dict]:
    """One held-out head (reference radius ``radius``) seen by two networks: a draws it sharp and 10% too small; b
    draws it 10% too large with an edge as wide as the head (``blurry_b``) or exactly like a."""
    views = ("plain", "flip", "zoom0.15", "zoom0.35")
    a_map = _ramp((120, 160), 0.9 * radius, 1.0)
    b_map = _ramp((120, 160), 1.1 * radius, radius) if blurry_b else a_map
    base = {"name": name, "group": name, "hc_ref_mm": 2 * np.pi * radius * px, "px": px, "shape": [120, 160],
            "crops": {"0.15": [0, 0, 160, 120], "0.35": [0, 0, 160, 120]}}
    a, b = ({**base, "arr": {v: m for v in views}} for m in (a_map, b_map))
    return a, b, {**base, "arr": {v: (a_map + b_map) / 2 for v in views}}


@pytest.mark.parametrize("blurry_b", [True, False])
def test_averaging_ellipses_goes_to_validation_only_when_it_beats_the_averaged_maps(tune, tmp_path, monkeypatch,
                                                                                      blurry_b):
    # heads of about 63, 157 and 226 mm; with a blurry b the mean map's 0.5 outline stays on a's sharp edge (10% too
    # small) while the mean of a's and b's ellipses (-10%, +10%) is exact
    triples = [_pair(f"00{i}_HC.png", r, px, blurry_b) for i, (r, px) in enumerate([(20, 0.5), (25, 1.0), (30, 1.2)])]
    monkeypatch.setattr(tune, "_pair_records", lambda a, b: triples)
    sets = []
    for recipe, extra in (("a", {}), ("b", {"pixel_size_weight": 1.0})):
        (tmp_path / recipe).mkdir()
        config = {"encoder": "efficientnet_lite0", "input_size": [160, 240], "seed": 0, **extra}
        (tmp_path / recipe / "card.json").write_text(json.dumps({"training": {"config": config}}))
        sets.append([str(tmp_path / recipe)])
    out = tmp_path / "combine.md"
    assert tune.combine_report(sets, out) is blurry_b
    text = out.read_text()
    rows = {r.split(" | ")[0][2:]: float(r.split(" | ")[1].split(" (")[0]) for r in text.splitlines()
            if r.startswith("| ") and not r.startswith("| combination") and not r.startswith("| ---")}
    ref = np.array([t[0]["hc_ref_mm"] for t in triples])
    assert rows["network a alone"] == pytest.approx(0.1 * ref.mean(), rel=0.05)
    if blurry_b:
        assert rows["maps averaged (shipped)"] > 0.8 * rows["network a alone"]  # near a's sharp edge
        assert rows["ellipses averaged"] < 0.02 * ref.mean()
        assert "Decision: a validation candidate." in text
    else:  # two networks that agree: every combination is the same
        assert len({round(v, 6) for v in rows.values()}) == 1 and "not adopted" in text
    with pytest.raises(SystemExit, match="two --folds sets"):
        tune.combine_report([*sets, sets[0]], tmp_path / "never.md")
