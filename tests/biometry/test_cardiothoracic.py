"""CTR ratios on synthetic ellipses, range flags and the quality gate."""

from __future__ import annotations

import csv

import pytest

from fetalscope.biometry.cardiothoracic import cardiothoracic_record, ctr_ratios, quality_gate, range_flags
from fetalscope.biometry.ellipse import Ellipse

SHAPE = (660, 960)
THORAX = Ellipse(480, 330, 200, 170, 100)
HEART = Ellipse(520, 300, 100, 85, 40)


def test_ratios_of_similar_ellipses():
    heart, thorax = Ellipse(0, 0, 50, 40, 10), Ellipse(0, 0, 100, 80, 70)
    r = ctr_ratios(heart, thorax)
    assert r["circumference"] == pytest.approx(0.5)
    assert r["area"] == pytest.approx(0.25)
    assert r["diameter"] == pytest.approx(0.5)


def test_diameter_uses_major_axes_whatever_the_order():
    r = ctr_ratios(Ellipse(0, 0, 30, 60, 0), Ellipse(0, 0, 100, 120, 0))
    assert r["diameter"] == pytest.approx(0.5)


@pytest.mark.shared
def test_ratios_reproduce_focus_labels(shared_data):
    with open(shared_data / "focus_fetal_thorax" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:40]
    for row in rows:
        keys = ("cx", "cy", "a", "b", "angle_deg")
        e = {s: Ellipse(*(float(row[f"{s}_{k}"]) for k in keys)) for s in ("heart", "thorax")}
        r = ctr_ratios(e["heart"], e["thorax"])
        for k in ("circumference", "area", "diameter"):
            assert r[k] == pytest.approx(float(row[f"ctr_{k}"]), abs=2e-4)


def test_gate_passes_a_plausible_pair():
    assert quality_gate(HEART, THORAX, SHAPE) == []
    rec = cardiothoracic_record(HEART, THORAX, SHAPE, plane="Fetal thorax", plane_probability=0.97)
    assert rec["quality"] == "ok" and rec["ctr"]["circumference"] == pytest.approx(
        HEART.circumference() / THORAX.circumference(), abs=1e-4)


@pytest.mark.parametrize("heart,thorax,reason", [
    (None, THORAX, "heart_not_found"),
    (HEART, None, "thorax_not_found"),
    (Ellipse(850, 100, 60, 50, 0), THORAX, "heart_not_inside_thorax"),
    (Ellipse(520, 300, 100, 30, 40), THORAX, "heart_implausible_shape"),
    (HEART, Ellipse(480, 330, 300, 100, 0), "thorax_implausible_shape"),
    (Ellipse(480, 330, 5, 4, 0), THORAX, "heart_implausible_size"),
])
def test_gate_rejects(heart, thorax, reason):
    rec = cardiothoracic_record(heart, thorax, SHAPE)
    assert rec["ctr"] is None and rec["quality"] == "rejected"
    assert any(f.startswith(reason) for f in rec["flags"]), rec["flags"]


def test_gate_rejects_non_thorax_plane():
    rec = cardiothoracic_record(HEART, THORAX, SHAPE, plane="Fetal brain")
    assert rec["ctr"] is None and any(f.startswith("not_thorax_plane") for f in rec["flags"])
    rec = cardiothoracic_record(HEART, THORAX, SHAPE, plane_probability=0.1)
    assert rec["ctr"] is None and any(f.startswith("not_thorax_plane") for f in rec["flags"])


def test_range_flags_only_for_published_ranges():
    assert range_flags({"circumference": 0.45, "area": 0.30, "diameter": 0.9}) == []
    flags = range_flags({"circumference": 0.55, "area": 0.40, "diameter": 0.5})
    assert any(f.startswith("ctr_circumference_above") for f in flags)
    assert any(f.startswith("ctr_area_above") for f in flags)
    assert not any("diameter" in f.split(":")[0] for f in flags)  # no published diameter range is used
    assert range_flags({"circumference": 0.9}, ranges=[]) == []
