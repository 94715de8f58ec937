"""measure_image: record schema, pixel-size handling (argument, DICOM, none), quality gate, drawing.

The network's probability maps are replaced by known ones where a test needs a known ellipse; the
rest of the path (resizing, post-processing, fitting, records, drawing) is the real one. The
shipped bundles are exercised on real images when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from fetalscope.biometry.ellipse import Ellipse, ramanujan_circumference
from fetalscope.biometry.measure import Measurer, draw_measurement, measure_image
from fetalscope.biometry.segbundle import save_seg_bundle
from fetalscope.config import bundled_models_dir
from fetalscope.errors import BadInputError
from fetalscope.imaging import UltrasoundImage, load_image
from fetalscope.models.segmentation import EllipseUNet, segmentation_preprocess

HEAD_KEYS = {"image", "measurement", "image_size", "ellipse", "pixel_size_mm", "pixel_size_source", "hc_mm",
             "bpd_mm", "ofd_mm", "hc_px", "bpd_px", "ofd_px", "cephalic_index", "ga_weeks", "ga", "ga_formula",
             "quality", "flags", "model", "timing_ms", "hc_views_sd_px", "hc_interval_mm", "hc_interval_coverage"}
CTR_KEYS = {"image", "measurement", "image_size", "heart", "thorax", "ctr", "quality", "flags", "model", "timing_ms",
            "ctr_views_sd", "ctr_interval", "ctr_interval_coverage"}
ELLIPSE_KEYS = {"cx", "cy", "a", "b", "angle_deg"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for what, structures in (("head", ("head",)), ("cardiothoracic", ("heart", "thorax"))):
        model = EllipseUNet(structures, pretrained=False)
        out[what] = save_seg_bundle(model, root / what, segmentation_preprocess("efficientnet_lite0", (48, 72)),
                                    {"name": f"test-{what}", "measurement": what})
    return out


def _probs_from(ellipses: dict[str, Ellipse], shape=(48, 72), full=(240, 360)):
    """Probability maps at model size of ellipses drawn on the full image grid."""
    import cv2

    return {k: cv2.resize(e.rasterise(full).astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            for k, e in ellipses.items()}


def _image(shape=(240, 360), spacing=None) -> UltrasoundImage:
    rng = np.random.default_rng(0)
    pixels = np.repeat(rng.integers(0, 255, size=(*shape, 1), dtype=np.uint8), 3, axis=2)
    return UltrasoundImage(pixels=pixels, source="synthetic.png", pixel_spacing_mm=spacing)


HEAD = Ellipse(180, 120, 100, 80, 20)


def test_head_record_with_pixel_size(bundles, monkeypatch):
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image: _probs_from({"head": HEAD}))
    rec = measure_image(_image(), "head", pixel_size_mm=0.1, bundle=bundles["head"])
    assert set(rec) == HEAD_KEYS and set(rec["ellipse"]) == ELLIPSE_KEYS
    assert rec["quality"] == "ok" and rec["pixel_size_source"] == "argument"
    assert rec["hc_mm"] == pytest.approx(ramanujan_circumference(100, 80) * 0.1, rel=0.01)
    assert rec["bpd_mm"] == pytest.approx(16.0, rel=0.02) and rec["ofd_mm"] == pytest.approx(20.0, rel=0.02)
    assert rec["ga_weeks"] is not None and rec["model"]["id"] == "test-head"
    import json

    json.dumps(rec)  # JSON-serialisable


def test_head_refuses_millimetres_without_pixel_size_but_draws(bundles, monkeypatch):
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image: _probs_from({"head": HEAD}))
    image = _image()
    rec = measure_image(image, "head", bundle=bundles["head"])
    assert rec["hc_mm"] is None and rec["ga_weeks"] is None and rec["quality"] == "no_pixel_size"
    assert rec["ellipse"] is not None and rec["hc_px"] > 0
    assert any(f.startswith("no_pixel_size") for f in rec["flags"])
    drawn = draw_measurement(image, rec)
    assert drawn.shape == image.pixels.shape and (drawn != image.pixels).any()


def _write_dicom(path: Path, pixels: np.ndarray, spacing: float) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelSpacing = [f"{spacing}", f"{spacing}"]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_head_uses_dicom_pixel_spacing(bundles, monkeypatch, tmp_path):
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image: _probs_from({"head": HEAD}))
    path = _write_dicom(tmp_path / "head.dcm", _image().pixels[..., 0], 0.2)
    image = load_image(path)
    assert image.pixel_spacing_mm == pytest.approx(0.2)
    rec = measure_image(image, "head", bundle=bundles["head"])
    assert rec["pixel_size_source"] == "dicom" and rec["pixel_size_mm"] == pytest.approx(0.2)
    assert rec["hc_mm"] == pytest.approx(ramanujan_circumference(100, 80) * 0.2, rel=0.01)
    override = measure_image(image, "head", pixel_size_mm=0.1, bundle=bundles["head"])
    assert override["hc_mm"] == pytest.approx(rec["hc_mm"] / 2, rel=1e-3)
    assert any(f.startswith("pixel_size_overrides_dicom") for f in override["flags"])


def test_bad_pixel_size_and_measurement(bundles):
    with pytest.raises(BadInputError):
        measure_image(_image(), "head", pixel_size_mm=-1, bundle=bundles["head"])
    with pytest.raises(BadInputError):
        measure_image(_image(), "femur", bundle=bundles["head"])
    with pytest.raises(BadInputError, match="measures 'head'"):
        measure_image(_image(), "cardiothoracic", bundle=bundles["head"])


THORAX = Ellipse(180, 120, 100, 90, 10)
HEART = Ellipse(200, 110, 50, 40, 60)


def test_cardiothoracic_record(bundles, monkeypatch):
    monkeypatch.setattr(Measurer, "probabilities",
                        lambda self, image: _probs_from({"heart": HEART, "thorax": THORAX}))
    rec = measure_image(_image(), "cardiothoracic", bundle=bundles["cardiothoracic"], plane="Fetal thorax")
    assert set(rec) == CTR_KEYS and set(rec["heart"]) == ELLIPSE_KEYS and set(rec["thorax"]) == ELLIPSE_KEYS
    assert set(rec["ctr"]) == {"circumference", "area", "diameter"} and rec["quality"] == "ok"
    assert rec["ctr"]["circumference"] == pytest.approx(HEART.circumference() / THORAX.circumference(), rel=0.02)
    assert rec["heart"]["a"] >= rec["heart"]["b"]


def test_cardiothoracic_gate_on_non_thorax_image_and_empty_prediction(bundles, monkeypatch):
    monkeypatch.setattr(Measurer, "probabilities",
                        lambda self, image: _probs_from({"heart": HEART, "thorax": THORAX}))
    rec = measure_image(_image(), "cardiothoracic", bundle=bundles["cardiothoracic"], plane="Fetal brain")
    assert rec["ctr"] is None and any(f.startswith("not_thorax_plane") for f in rec["flags"])
    empty = {"heart": np.zeros((48, 72), np.float32), "thorax": np.zeros((48, 72), np.float32)}
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image: empty)
    rec = measure_image(_image(), "cardiothoracic", bundle=bundles["cardiothoracic"])
    assert rec["heart"] is None and rec["thorax"] is None and rec["ctr"] is None
    assert {"heart_not_found", "thorax_not_found"} <= {f.split(":")[0] for f in rec["flags"]}
    assert draw_measurement(_image(), rec).shape == (240, 360, 3)


def test_heart_outside_thorax_is_removed(bundles, monkeypatch):
    """A heart blob outside the thorax is not taken as the heart."""
    stray = Ellipse(330, 30, 20, 15, 0)
    probs = _probs_from({"heart": stray, "thorax": THORAX})
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image: probs)
    rec = measure_image(_image(), "cardiothoracic", bundle=bundles["cardiothoracic"])
    assert rec["heart"] is None and rec["ctr"] is None


@pytest.mark.shared
def test_shipped_ctr_bundle_on_a_real_image(shared_data):
    if not (bundled_models_dir() / "focus-ctr" / "card.json").is_file():
        pytest.skip("focus-ctr bundle not built")
    from fetalscope.data.focus import load_focus
    from fetalscope.train.segmenter.recipes import read_split

    first = read_split(bundled_models_dir() / "focus-ctr")[0]  # a held-out image
    s = next(x for x in load_focus(shared_data / "focus_fetal_thorax") if first.endswith(x.path.name))
    rec = measure_image(load_image(s.path), "cardiothoracic")
    assert rec["thorax"] is not None and rec["heart"] is not None
    ref = Ellipse.from_dict(s.ellipses["thorax"])
    from fetalscope.biometry.ellipse import ellipse_overlap

    shape = (rec["image_size"][1], rec["image_size"][0])
    assert ellipse_overlap(Ellipse.from_dict(rec["thorax"]), ref, shape)["iou"] > 0.8
    low, high = rec["ctr_interval"]  # the card's calibrated interval around the circumference CTR
    assert low < rec["ctr"]["circumference"] < high < low + 0.3 and rec["ctr_interval_coverage"] == 0.9


@pytest.mark.shared
def test_shipped_head_bundle_on_a_real_image(shared_data):
    if not (bundled_models_dir() / "hc18-head" / "card.json").is_file():
        pytest.skip("hc18-head bundle not built")
    from fetalscope.data.hc18 import load_hc18
    from fetalscope.train.segmenter.recipes import read_split

    first = read_split(bundled_models_dir() / "hc18-head")[0]  # a held-out image
    s = next(x for x in load_hc18(shared_data / "hc18") if first.endswith(x.name))
    rec = measure_image(load_image(s.path), "head", pixel_size_mm=s.meta["pixel_size_mm"])
    assert rec["quality"] == "ok"
    assert rec["hc_mm"] == pytest.approx(s.meta["hc_mm"], rel=0.05)
    low, high = rec["hc_interval_mm"]  # the card's calibrated interval, around the measurement
    assert low < rec["hc_mm"] < high and 1.0 < high - low < 0.2 * rec["hc_mm"] and rec["hc_interval_coverage"] == 0.9


@pytest.mark.shared
def test_shipped_head_ellipse_is_averaged_over_views_in_both_runtimes(shared_data):
    """The bundle's views (plain, flip, zoomed crops) each fit the head and the record's ellipse is their mean;
    the ONNX fast path gives the same ellipse as PyTorch."""
    from fetalscope.biometry.ellipse import fit_ellipse, mean_ellipse
    from fetalscope.biometry.measure import Measurer

    m = Measurer("head", runtime="onnx")
    assert m.ellipse_views and any(v.startswith("zoom:") for v in m.ellipse_views)
    image = load_image(shared_data / "hc18" / "training_set" / "010_HC.png")
    probs = m.probabilities(image)
    sharp = m.head_sharpness  # the bundle's outline-sharpness rule applies to every view
    plain = fit_ellipse(probs["head"], out_shape=(image.height, image.width), min_sharpness=sharp)
    zoomed = m.zoomed_ellipse(image, plain, 0.35)
    assert zoomed.circumference() == pytest.approx(plain.circumference(), rel=0.03)  # the same head, closer
    assert abs(zoomed.cx - plain.cx) < 5 and abs(zoomed.cy - plain.cy) < 5
    averaged = m.ellipses(image, probs)["head"]
    views = [plain, fit_ellipse(m.probabilities(image, flip=True)["head"], out_shape=(image.height, image.width),
                                min_sharpness=sharp),
             *(m.zoomed_ellipse(image, plain, float(v.split(":")[1])) for v in m.ellipse_views if ":" in v)]
    expected = mean_ellipse(views)  # the same numbers up to ONNX Runtime's run-to-run float rounding
    for field in ("cx", "cy", "a", "b", "angle_deg"):
        assert getattr(averaged, field) == pytest.approx(getattr(expected, field), rel=1e-6, abs=1e-6), field
    torch_e = Measurer("head", runtime="torch").ellipses(image)["head"]
    assert torch_e.circumference() == pytest.approx(averaged.circumference(), rel=1e-3)


def test_head_outline_level_comes_from_the_card(bundles, tmp_path, monkeypatch):
    """``inference.level`` of a head bundle moves the traced outline on a soft probability map: a higher level
    gives a smaller ellipse than the default 0.5, the same centre; a level outside (0, 1) is refused."""
    import cv2

    from fetalscope.errors import UnsupportedError

    soft = cv2.GaussianBlur(HEAD.rasterise((240, 360)).astype(np.float32), (0, 0), 6)
    probs = {"head": cv2.resize(soft, (72, 48), interpolation=cv2.INTER_AREA)}
    monkeypatch.setattr(Measurer, "probabilities", lambda self, image, flip=None: probs)
    model = EllipseUNet(("head",), pretrained=False)
    pre = segmentation_preprocess("efficientnet_lite0", (48, 72))
    high = save_seg_bundle(model, tmp_path / "high", pre, {"name": "t-high", "measurement": "head",
                                                             "inference": {"level": 0.7}})
    default = Measurer("head", bundles["head"]).ellipses(_image())["head"]
    raised = Measurer("head", high).ellipses(_image())["head"]
    assert raised.circumference() < default.circumference() - 5  # pixels on a 180 x 160 px ellipse
    assert default.circumference() == pytest.approx(HEAD.circumference(), rel=0.03)
    assert abs(raised.cx - default.cx) < 1 and abs(raised.cy - default.cy) < 1
    bad = save_seg_bundle(model, tmp_path / "bad", pre, {"name": "t-bad", "measurement": "head",
                                                           "inference": {"level": 1.5}})
    with pytest.raises(UnsupportedError, match="level"):
        Measurer("head", bad)


def _drawn_probabilities(self, image, flip=None):
    """Probability maps read off the image itself (thorax: grey >= 100, heart: grey >= 200) at the model's
    input size, so that a crop of the image gives the crop's own maps, as a network would."""
    import cv2

    h, w = self.bundle.preprocess.input_size
    grey = image.pixels[..., 0].astype(np.float32)
    return {"thorax": cv2.resize((grey >= 100).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA),
            "heart": cv2.resize((grey >= 200).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)}


def test_ctr_ellipses_are_averaged_over_the_cards_views(tmp_path, monkeypatch):
    """``inference.ellipse_average`` of a cardiothoracic bundle: the heart and thorax are also fitted on crops
    around the thorax (seen at a higher resolution) and each record ellipse is the mean of the views; an
    unknown view is refused."""
    from fetalscope.biometry.ellipse import ellipse_overlap
    from fetalscope.errors import UnsupportedError

    pixels = np.zeros((240, 360, 3), np.uint8)
    pixels[THORAX.rasterise((240, 360))] = 150
    pixels[HEART.rasterise((240, 360))] = 250
    image = UltrasoundImage(pixels=pixels, source="drawn.png")
    monkeypatch.setattr(Measurer, "probabilities", _drawn_probabilities)
    model = EllipseUNet(("heart", "thorax"), pretrained=False)
    pre = segmentation_preprocess("efficientnet_lite0", (48, 72))
    card = {"name": "t-views", "measurement": "cardiothoracic",
            "inference": {"ellipse_average": ["plain", "zoom:0.1", "zoom:0.35"]}}
    m = Measurer("cardiothoracic", save_seg_bundle(model, tmp_path / "views", pre, card))
    plain = m.ellipses(image, refine=False)
    averaged = m.ellipses(image)
    for name, ref in (("heart", HEART), ("thorax", THORAX)):
        iou_plain = ellipse_overlap(plain[name], ref, (240, 360))["iou"]
        iou_avg = ellipse_overlap(averaged[name], ref, (240, 360))["iou"]
        assert iou_avg > 0.95 and iou_avg >= iou_plain - 0.005, name  # the crops see the outline finer
        assert averaged[name].circumference() != pytest.approx(plain[name].circumference(), rel=1e-9)
    rec = m.measure(image, plane="Fetal thorax")
    assert rec["thorax"] == averaged["thorax"].normalised().to_dict() and rec["quality"] == "ok"
    card["inference"]["ellipse_average"] = ["plain", "tilt:5"]
    bad = Measurer("cardiothoracic", save_seg_bundle(model, tmp_path / "bad", pre, card))
    with pytest.raises(UnsupportedError, match="tilt:5"):
        bad.ellipses(image)


@pytest.mark.shared
def test_shipped_ctr_ellipses_are_averaged_over_views_in_both_runtimes(shared_data):
    """The shipped focus-ctr fits heart and thorax on the image and on crops around the thorax; the record's
    ellipses are the views' means, and ONNX Runtime gives the same ellipses as PyTorch."""
    from fetalscope.biometry.ellipse import mean_ellipse

    m = Measurer("cardiothoracic", runtime="onnx")
    assert m.ellipse_views and any(v.startswith("zoom:") for v in m.ellipse_views)
    path = sorted((shared_data / "focus_fetal_thorax").rglob("*.png"))[0]
    image = load_image(path)
    plain = m.ellipses(image, refine=False)
    views = [plain]
    for v in m.ellipse_views[1:]:
        crop, x0, y0 = m.crop_around(image, plain["thorax"], float(v.split(":")[1]))
        fitted = m.ellipses(crop, refine=False)
        views.append({k: Ellipse(e.cx + x0, e.cy + y0, e.a, e.b, e.angle_deg) for k, e in fitted.items()})
    averaged = m.ellipses(image)
    for name in ("heart", "thorax"):
        expected = mean_ellipse([vw[name] for vw in views])
        for field in ("cx", "cy", "a", "b", "angle_deg"):
            assert getattr(averaged[name], field) == pytest.approx(getattr(expected, field), rel=1e-6, abs=1e-6)
        zoomed = views[-1][name]
        assert zoomed.circumference() == pytest.approx(plain[name].circumference(), rel=0.1)  # same structure
    torch_e = Measurer("cardiothoracic", runtime="torch").ellipses(image)
    for name in ("heart", "thorax"):
        assert torch_e[name].circumference() == pytest.approx(averaged[name].circumference(), rel=2e-3)
