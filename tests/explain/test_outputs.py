"""Overlays, arrays, the JSON index of ``fetalscope explain`` (a pipeline session explaining files) and the
``explain_eval`` report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.explain.evaluation import explain_eval
from fetalscope.explain.overlay import colorize, model_region, overlay, overlay_png, save_map, scale_map
from fetalscope.explain.runner import file_slug, parse_method_param_options, parse_param_options
from fetalscope.imaging import load_image
from fetalscope.pipeline.outputs import explain_to_folder

from .conftest import speckle_image


def test_overlay_opacity_and_colour_maps():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    m = np.zeros((20, 30), np.float32)
    m[5:10, 5:10] = 1.0
    np.testing.assert_array_equal(overlay(img, m, alpha=0.0), img)
    np.testing.assert_array_equal(overlay(img, m, alpha=1.0, cmap="gray"), colorize(m, "gray"))
    hot = overlay(img, m, alpha=1.0, cmap="jet")
    assert hot[7, 7, 0] > 100 and hot[0, 0, 2] > 100  # jet: red at the peak, blue where the map is 0
    # a map of another size is resized to the image
    assert overlay(img, np.ones((5, 5), np.float32), alpha=0.5).shape == (20, 30, 3)
    with pytest.raises(BadInputError, match="unknown colour map 'jte'.*jet"):
        overlay(img, m, cmap="jte")
    with pytest.raises(BadInputError, match="alpha"):
        overlay(img, m, alpha=1.5)


def test_signed_maps_are_centred_on_zero():
    m = np.array([[-2.0, 0.0, 2.0]], np.float32)
    np.testing.assert_allclose(scale_map(m, signed=True, clip_percentile=100), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(scale_map(m, signed=False, clip_percentile=100), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(scale_map(np.zeros((2, 2)), signed=True), 0.5)


def test_png_and_npy_round_trip(tmp_path):
    img = np.full((16, 16), 128, np.uint8)
    m = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    png = overlay_png(img, m)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = load_image(png, name="overlay.png")
    assert decoded.pixels.shape == (16, 16, 3)
    path = save_map(tmp_path / "a" / "m.npy", m)
    np.testing.assert_array_equal(np.load(path), m)


def test_parse_param_options():
    assert parse_param_options(["n_steps=64", "baseline=blur", "alpha=0.5", "layer=none", "x=true"]) == {
        "n_steps": 64, "baseline": "blur", "alpha": 0.5, "layer": None, "x": True}
    with pytest.raises(BadInputError, match="KEY=VALUE"):
        parse_param_options(["n_steps"])


def test_parse_method_param_options():
    flat, per = parse_method_param_options(["n_steps=64", "occlusion.window=24", "occlusion.stride=12", "lime.n=50"])
    assert flat == {"n_steps": 64}
    assert per == {"occlusion": {"window": 24, "stride": 12}, "lime": {"n": 50}}
    assert parse_method_param_options(None) == ({}, {})


def test_file_slug():
    assert file_slug("gradcam++") == "gradcam_pp"
    assert file_slug("integrated_gradients") == "integrated_gradients"


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, blob in (("a_blob", True), ("b_plain", False), ("c_blob", True)):
        rgb, _ = speckle_image(rng, blob, size=80)  # not the model size: preprocessing resizes
        cv2.imwrite(str(folder / f"{name}.png"), rgb[..., 0])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


@pytest.fixture
def session(trained, tmp_path):
    """A pipeline session on the tiny model, saved as a bundle (no sub-plane, findings or detector models)."""
    from fetalscope.models.bundle import save_bundle
    from fetalscope.pipeline import Session

    save_bundle(trained.model, tmp_path / "bundle", {"name": "tiny", "classes": trained.classes,
                                                      "preprocess": trained.preprocess.to_dict()})
    return Session(tmp_path / "bundle", brain_plane_model=None, brain_findings_model=None, detector=None)


def test_explain_to_folder_writes_overlays_arrays_and_index(session, trained, image_folder, tmp_path):
    out = tmp_path / "out"
    records = explain_to_folder(session, image_folder, "gradcam,gradcam++,ig,occlusion", out,
                                params={"n_steps": 8, "window": 16, "stride": 8})
    assert [r["stem"] for r in records] == ["a_blob", "b_plain", "c_blob"]
    index = json.loads((out / "index.json").read_text())
    assert index["methods"] == ["gradcam", "gradcam++", "integrated_gradients", "occlusion"]
    assert index["model"]["classes"] == ["plain", "blob"] and index["model"]["name"] == "tiny"
    assert len(index["errors"]) == 1 and "broken.png" in index["errors"][0]["image"]
    for rec in index["images"]:
        assert rec["original_size"] == [80, 80] and rec["input_size"] == [64, 64]
        # one overlay rule everywhere: the map drawn on the region the model saw, not on the resized input
        region, _ = model_region(load_image(rec["image"]), trained.preprocess)
        for m, e in rec["explanations"].items():
            arr = np.load(out / e["array"])
            assert arr.shape == (64, 64) and arr.dtype == np.float32 and np.isfinite(arr).all()
            assert load_image(out / e["overlay"]).pixels.shape == region.shape
            assert e["target"] == rec["predicted"] and e["target_label"] == rec["predicted_class"]
            assert e["target_class"] == e["target_label"]  # the old name, kept as an alias
            assert e["params"] and e["explains"] == "plane" and e["model"]["id"] == "tiny"
            assert f"_{file_slug(m)}." in e["array"]
    ig = index["images"][0]["explanations"]["integrated_gradients"]
    assert ig["params"]["n_steps"] == 8 and "completeness" in ig["extra"]
    assert index["images"][0]["predicted_class"] == "blob" and index["images"][1]["predicted_class"] == "plain"


def test_explain_to_folder_target_by_name_and_bad_options(session, image_folder, tmp_path):
    recs = explain_to_folder(session, image_folder / "b_plain.png", ["gradcam"], tmp_path / "o", target="Blob")
    assert recs[0]["explanations"]["gradcam"]["target"] == 1
    assert recs[0]["explanations"]["gradcam"]["params"]["layer"] == "backbone.block4"
    with pytest.raises(BadInputError, match="unknown target class 'blb'.*'blob'"):
        explain_to_folder(session, image_folder, "gradcam", tmp_path / "o2", target="blb")
    with pytest.raises(BadInputError, match="takes parameter 'n_steps'"):
        explain_to_folder(session, image_folder, "gradcam", tmp_path / "o3", params={"n_steps": 4})
    with pytest.raises(BadInputError, match="unknown explanation method"):
        explain_to_folder(session, image_folder, "gradcam,limee", tmp_path / "o4")
    with pytest.raises(BadInputError):
        explain_to_folder(session, image_folder / "broken.png", "gradcam", tmp_path / "o5")
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o5").exists()  # nothing written on errors


def test_session_explanation_matches_the_folder_files(session, image_folder, tmp_path):
    """The API/app path (``Session.explain``) and the CLI path give the same map and the same record."""
    recs = explain_to_folder(session, image_folder / "a_blob.png", "gradcam", tmp_path / "o")
    one = session.explain(image_folder / "a_blob.png", "gradcam")
    written = recs[0]["explanations"]["gradcam"]
    np.testing.assert_allclose(one.explanation.map, np.load(tmp_path / "o" / written["array"]), atol=1e-5)
    assert one.to_dict()["target_label"] == written["target_label"]
    # the record says how the map lies on the original image: the crop the model saw, in original pixels
    back = one.to_dict()["to_original"]
    x0, y0, x1, y1 = back["crop_xyxy"]
    assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 80 and back["map_size"] == list(one.explanation.shape)
    assert one.region.shape[:2] == (y1 - y0, x1 - x0)  # the overlay is that crop (small: not resized)
    assert written["to_original"] == back


def test_explain_eval_writes_report_with_computed_numbers(trained, tmp_path):
    samples = list(zip(trained.test_x[:4], trained.test_y[:4].tolist(), strict=True))
    report = explain_eval(samples, (trained.model, trained.preprocess, trained.classes),
                          ["gradcam", "guided_backprop", "ig", "occlusion"], tmp_path / "eval", n_images=None,
                          sanity_images=1, steps=10, n_random=2, params={"n_steps": 8, "window": 16, "stride": 8})
    for f in ("report.json", "report.md", "faithfulness.png", "sanity.png", "examples.png"):
        assert (tmp_path / "eval" / f).is_file(), f
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["n_images"] == 4 and saved["methods"] == report["methods"]
    faith = saved["faithfulness"]["methods"]
    assert set(faith) == {"gradcam", "guided_backprop", "integrated_gradients", "occlusion"}
    assert faith["occlusion"]["deletion_auc"] < faith["occlusion"]["random_deletion_auc"]
    sanity = saved["sanity"]
    assert len(sanity["stages"]) == 5 and sanity["n_images"] == 1
    assert sanity["flagged"] == [m for m, r in sanity["methods"].items() if r["flagged"]]
    md = (tmp_path / "eval" / "report.md").read_text()
    assert f"{faith['gradcam']['deletion_auc']:.3f}" in md
    assert "| occlusion |" in md and "Integrated Gradients completeness" in md
    assert saved["integrated_gradients_completeness"]["n"] == 4
    with pytest.raises(BadInputError, match="predicted' or 'label"):
        explain_eval(samples, (trained.model, trained.preprocess, trained.classes), "gradcam", tmp_path, target="x")


def test_explain_eval_on_a_labelled_set_of_files(trained, image_folder, tmp_path):
    from fetalscope.data.samples import LabelledSet, Sample

    files = sorted(p for p in image_folder.glob("*.png") if p.name != "broken.png")
    data = LabelledSet([Sample(p, int("blob" in p.name), p.stem) for p in files], ("plain", "blob"), "test")
    report = explain_eval(data, (trained.model, trained.preprocess, trained.classes), "gradcam", tmp_path / "e",
                          n_images=2, sanity_images=0, target="label", steps=5, n_random=1)
    assert report["n_images"] == 2 and report["sanity"] is None and report["target"] == "label"
    assert all(im["target"] == im["label"] for im in report["images"])
    assert "Not run" in (tmp_path / "e" / "report.md").read_text()


@pytest.mark.parametrize("signed", [False, True])
def test_overlays_shown_to_people_carry_their_colour_scale(signed):
    from fetalscope.explain.overlay import DEFAULT_CMAP, DEFAULT_SIGNED_CMAP, with_colour_scale

    rgb = np.full((120, 160, 3), 90, np.uint8)
    shown = with_colour_scale(rgb, signed=signed)
    assert shown.shape[0] == 120 and shown.shape[1] > 160
    np.testing.assert_array_equal(shown[:, :160], rgb)  # the overlay itself is untouched
    ramp = colorize(np.array([[1.0, 0.0]], np.float32) if not signed else np.array([[1.0, -1.0]], np.float32),
                    DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP, signed=signed, clip_percentile=100)
    np.testing.assert_allclose(shown[0, 161].astype(int), ramp[0, 0].astype(int), atol=3)  # top: most evidence
    np.testing.assert_allclose(shown[-1, 161].astype(int), ramp[0, 1].astype(int), atol=3)  # bottom: least / against
    text = shown[:, 160 + max(8, 120 // 40):]
    assert (text < 100).any()  # the words of the scale are written beside the bar


def test_signed_methods_share_one_diverging_map_with_a_symmetric_stated_range(session, image_folder):
    """Integrated Gradients, Occlusion and LIME are drawn alike: the diverging RdBu_r map, a range symmetric
    around 0, and a colour scale that states that range (the record carries it as ``colour_scale``)."""
    from fetalscope.explain.methods import method_spec
    from fetalscope.explain.overlay import (
        DEFAULT_SIGNED_CMAP,
        display_range,
        fit_map,
        scale_labels,
        with_colour_scale,
    )

    signed_methods = ["integrated_gradients", "occlusion", "lime"]
    assert all(method_spec(m).signed for m in signed_methods)
    results = session.explain_many([image_folder / "a_blob.png"], signed_methods,
                                   method_params={"integrated_gradients": {"n_steps": 8},
                                                  "occlusion": {"window": 16, "stride": 8},
                                                  "lime": {"n_samples": 40}})[0].results
    assert [r.method for r in results] == signed_methods
    for r in results:
        low, high = r.value_range
        shown_map = fit_map(r.explanation.map, r.overlay.shape)
        assert low == -high and high == pytest.approx(float(np.percentile(np.abs(shown_map), 99.5)), rel=1e-5)
        record = r.to_dict()["colour_scale"]
        assert record["cmap"] == DEFAULT_SIGNED_CMAP and record["symmetric"] is True
        assert record["range"] == pytest.approx([low, high], abs=1e-8)
        # the overlay is exactly the RdBu_r colouring of the map over that range
        expected = overlay(r.region, r.explanation.map, cmap=DEFAULT_SIGNED_CMAP, signed=True)
        np.testing.assert_array_equal(r.overlay, expected)
        # the scale beside it: the bar's ends are the map's ends, and the range is written there
        labels = scale_labels(True, (low, high))
        assert labels[0][0] == ["for", f"{high:+.2g}"] and labels[-1][0] == [f"{low:+.2g}", "against"]
        shown = r.with_scale()
        np.testing.assert_array_equal(shown, with_colour_scale(r.overlay, True, None, (low, high)))
        w = r.overlay.shape[1]
        assert shown.shape[1] > w and not np.array_equal(shown, with_colour_scale(r.overlay, True))
    # a map of both signs: zero sits in the middle of the colour map, +top and -top at its ends
    m = np.array([[-2.0, 0.0, 1.0]], np.float32)
    assert display_range(m, signed=True, clip_percentile=100) == (-2.0, 2.0)
    np.testing.assert_allclose(scale_map(m, signed=True, clip_percentile=100), [[0.0, 0.5, 0.75]])
