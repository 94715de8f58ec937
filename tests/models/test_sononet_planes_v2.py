"""The bundled sononet-planes, when it is the distilled v2 (scripts/train_sononet_planes.py): its card carries the
training record and the test-split comparison, consistent with the build's own per-source counts and with
report.md (no shared data needed)."""

from __future__ import annotations

import math

import pytest

from fetalscope.models.bundle import load_bundle
from fetalscope.models.cards import read_card
from fetalscope.train.recipes.sononet.distilled import distilled_markdown


@pytest.fixture(scope="module")
def card() -> dict:
    card = read_card("sononet-planes")
    if "training" not in card:
        pytest.skip("the bundled sononet-planes is not the distilled v2")
    return card


def test_v2_card_has_training_record(card) -> None:
    training = card["training"]
    history = training["history"]
    assert len(history) == training["settings"]["epochs"] >= 1
    assert all(math.isfinite(h["kl"]) for h in history)
    assert card["metrics"]["training_seconds"] == training["seconds"] > 0
    assert training["images"]["n"] == sum(training["images"]["counts"].values())
    assert training["view_choice"]["chosen"] in ("sector crop", "whole image resized")
    assert card["preprocess"]["crop_sector"] == (training["view_choice"]["chosen"] == "sector crop")


def test_v2_comparison_matches_the_build_counts(card) -> None:
    rows = {r["source"]: r for r in card["comparison"]["rows"]}
    for subset, cell in card["metrics"]["per_source"].items():  # "HC18 (test)": "361/443"
        source = subset.removesuffix(" (test)")
        correct, n = (int(v) for v in cell.split("/"))
        assert rows[source]["n"] == n and rows[source]["v2"]["correct"] == correct
    for r in rows.values():
        for name in card["comparison"]["contenders"]:
            c = r[name]
            assert c["ci_low"] <= c["accuracy"] <= c["ci_high"]
            assert c["accuracy"] == pytest.approx(c["correct"] / r["n"])
    assert rows["all"]["v2"]["accuracy"] == pytest.approx(card["metrics"]["test_accuracy"])


def test_v2_report_section_is_written_from_the_card(card) -> None:
    bundle = load_bundle("sononet-planes")
    md = (bundle.path / "report.md").read_text(encoding="utf-8")
    assert distilled_markdown(card["training"], card["training"]["view_choice"], card["comparison"]) in md
