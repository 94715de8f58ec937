"""CTR ratios on synthetic ellipses, range flags and the quality gate."""

from __future__ import annotations

import csv

import pytest

from fetalscope.biometry.cardiothoracic import (
    CTR_CARD,
    NORMAL_RANGES,
    cardiothoracic_record,
    ctr_ratios,
    quality_gate,
    range_flags,
)
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
    # the AHA lower area limit (0.25) and circumference limit (< 0.5) contradict each other for
    # ellipses (area ratio ~ circumference ratio squared): neither is flagged
    assert range_flags({"circumference": 0.55, "area": 0.20, "diameter": 0.6}) == []
    flags = range_flags({"circumference": 0.64, "area": 0.40, "diameter": 0.5})
    assert [f.split(":")[0] for f in flags] == ["ctr_area_above_published_range"]
    assert range_flags({"circumference": 0.9}, ranges=[]) == []
    # a caller's own range with a lower limit still works
    own = [{"ratio": "diameter", "low": 0.4, "high": None, "source": "a test range"}]
    assert range_flags({"diameter": 0.3}, ranges=own)[0].startswith("ctr_diameter_below_published_range: 0.300 < 0.4")


def test_each_range_names_its_full_source():
    assert NORMAL_RANGES, "the area ratio's upper limit is flagged"
    for r in NORMAL_RANGES:
        source = r["source"]
        assert "same sources" not in source and "as above" not in source
        # authors, title, journal, year, volume and pages of the source, and the ratio it measured
        assert "Donofrio MT" in source and "scientific statement from the American Heart Association" in source
        assert "Circulation 2014;129:2183-2242" in source
        assert f"{r['ratio']} ratio" in source
        # each flag the entry raises, whichever limit, quotes that full source
        for limit, probe in ((r.get("low"), -0.05), (r.get("high"), 0.05)):
            if limit is None:
                continue
            flags = range_flags({r["ratio"]: limit + probe}, ranges=[r])
            assert len(flags) == 1 and flags[0].endswith(f"({source})"), flags
    # the default ranges: an area ratio above 0.35 alone gives one flag that names the statement
    high = range_flags({"area": 0.36, "circumference": 0.6})
    assert len(high) == 1 and "Donofrio MT" in high[0] and "Circulation 2014" in high[0]


def test_card_carries_the_ranges_the_flags_use():
    assert CTR_CARD["normal_ranges"] is NORMAL_RANGES
    assert any("Donofrio MT" in c for c in CTR_CARD["citations"])


def _expert_ratios(shared_data) -> list[dict[str, float]]:
    with open(shared_data / "focus_fetal_thorax" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = ("cx", "cy", "a", "b", "angle_deg")
    out = []
    for row in rows:
        e = {s: Ellipse(*(float(row[f"{s}_{k}"]) for k in keys)) for s in ("heart", "thorax")}
        out.append(ctr_ratios(e["heart"], e["thorax"]))
    return out


# the ranges as coded before issue 19: area 0.25-0.35 and circumference < 0.5 at once
OLD_RANGES = [{"ratio": "area", "low": 0.25, "high": 0.35, "source": "old"},
              {"ratio": "circumference", "low": None, "high": 0.5, "source": "old"}]


@pytest.mark.shared
def test_flags_are_rare_on_focus_expert_annotations(shared_data):
    """The expert heart/thorax ellipses of FOCUS (routine four-chamber views) measured with the project's
    own functions: the range flags fire on few of them (1 of 247), where the old pair of contradictory
    ranges fired on every one."""
    ratios = _expert_ratios(shared_data)
    assert len(ratios) >= 200
    flagged = sum(bool(range_flags(r)) for r in ratios)
    assert flagged / len(ratios) < 0.05, f"{flagged}/{len(ratios)} expert annotations flagged"
    old = sum(bool(range_flags(r, ranges=OLD_RANGES)) for r in ratios)
    assert old / len(ratios) > 0.95, f"old ranges: {old}/{len(ratios)}"
    # for these ellipses the area ratio is about the circumference ratio squared
    factors = [r["area"] / r["circumference"] ** 2 for r in ratios]
    assert min(factors) > 0.85 and max(factors) < 1.05
