"""One image -> Analysis with the bundled SonoNet plane model (self-contained bundle: no shared/ needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.errors import BadInputError
from fetalscope.imaging import load_image
from fetalscope.pipeline.analyser import Analyser, UncertaintyPolicy, uncertainty_of

from .test_brain_findings import check_findings


@pytest.fixture(scope="module")
def analyser() -> Analyser:
    return Analyser()


def test_analysis_covers_label_space_and_marks_cervix_not_covered(analyser, tmp_path):
    from PIL import Image

    from fetalscope.data.phantoms import make_phantom

    path = tmp_path / "brain.png"
    Image.fromarray(make_phantom("Fetal brain", np.random.default_rng(1), (224, 288))).save(path)
    a = analyser.analyse(load_image(path))
    probs = a.probability_map()
    assert list(probs) == list(PLANE_CLASSES)
    assert probs["Maternal cervix"] is None and a.classes_not_covered == ["Maternal cervix"]
    covered = [p for p in probs.values() if p is not None]
    assert sum(covered) == pytest.approx(1.0, abs=1e-4)
    assert a.plane == max((k for k in probs if probs[k] is not None), key=lambda k: probs[k])
    native = a.detail["sononet_planes"]["probabilities"]
    assert len(native) == 14 and sum(native.values()) == pytest.approx(1.0, abs=1e-4)
    json.dumps(a.to_dict())  # JSON-serialisable, as the API returns it


def test_real_brain_and_thorax_images(analyser, shared_data):
    tv = sorted((shared_data / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png"))[0]
    a = analyser.analyse(load_image(tv))
    assert a.plane == "Fetal brain" and not a.ood["flag"]
    assert a.brain_plane is not None and a.brain_plane["source_confounded"] is True
    assert {p["label"] for p in a.brain_plane["probabilities"]} == {"Trans-thalamic", "Trans-cerebellum",
                                                                    "Trans-ventricular"}
    assert any("Brain sub-plane" in w for w in a.warnings)
    check_findings(a.brain_findings)  # normal/abnormal, routed like the sub-plane, with the card's warning
    thorax = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    b = analyser.analyse(load_image(thorax))
    assert b.plane == "Fetal thorax" and b.brain_plane is None
    assert b.brain_findings is None and b.brain_findings_skipped == "the plane is 'Fetal thorax', not 'Fetal brain'"
    assert b.detail["sononet_planes"]["top"] in {"4CH", "3VV", "LVOT", "RVOT"}


def test_noise_is_flagged_out_of_distribution(analyser):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    from fetalscope.imaging.loader import UltrasoundImage

    a = analyser.analyse(UltrasoundImage(pixels=noise, source="noise"))
    assert a.ood["flag"] is True
    assert any("does not look like B-mode ultrasound" in w for w in a.warnings)


def test_uncertainty_policy_numbers():
    flat = np.full(5, 0.2)
    unsure, info = uncertainty_of(flat, UncertaintyPolicy())
    assert unsure and info["normalised_entropy"] == pytest.approx(1.0) and len(info["reasons"]) == 2
    sure, info = uncertainty_of(np.array([0.97, 0.01, 0.01, 0.005, 0.005]), UncertaintyPolicy())
    assert not sure and info["top1"] == pytest.approx(0.97)


def test_bad_bytes_raise_clear_error(analyser):
    with pytest.raises(BadInputError, match="not a readable image"):
        analyser.analyse(b"GIF89a not really", name="upload.gif")
