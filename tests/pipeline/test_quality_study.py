"""The calibration rules of the threshold card (known answers on given values) and the held-out study's tables
(on two real images per set; skips without ../shared)."""

from __future__ import annotations

import numpy as np

from fetalscope.pipeline.quality_study import derive_thresholds, run_study, write_card, write_study
from fetalscope.pipeline.session import Session

HEAD = ["plane_confidence", "head_size", "head_in_view", "ellipse_fit", "gain", "sharpness"]
THORAX = ["four_chamber_view", "thorax_size", "thorax_in_view", "ellipse_fit", "gain", "sharpness",
          "heart_found", "heart_thorax_area"]


def test_card_rules_and_sources(tmp_path):
    ramp = [float(v) for v in np.linspace(0, 1, 201)]
    values = {"counts": {"head": 201, "cardiothoracic": 201},
              "head": {k: ramp for k in HEAD}, "cardiothoracic": {k: ramp for k in THORAX}}
    card = derive_thresholds(values)
    head = card["head"]
    assert head["head_size"]["low"] == 0.1 and head["ellipse_fit"]["low"] == 0.05  # 10th and 5th percentiles
    assert (head["gain"]["low"], head["gain"]["high"]) == (0.025, 0.975)
    assert head["head_in_view"]["low"] == 0.95 and "Salomon" in head["head_in_view"]["source"]
    assert head["gain"]["calibration_pass_share"] == round(191 / 201, 3)  # 0.025..0.975 inclusive
    assert card["cardiothoracic"]["heart_thorax_area"]["high"] == 0.35
    write_card(card, tmp_path)
    md = (tmp_path / "thresholds.md").read_text()
    assert all(f"| {cid} |" in md for cid in THORAX)


def test_study_tables_on_real_images(shared_data, tmp_path):
    report = run_study(Session(brain_plane_model=None, brain_findings_model=None), 2, 2, log=lambda m: None)
    for what in ("head", "cardiothoracic"):
        table = report["degradations"][what]
        assert set(table) == {"zoomed_out", "shifted", "blurred", "darkened", "over_gained"}
        assert all(row["pairs"] == 2 and 0 <= row["criterion_fails_rate"] <= 1 for row in table.values())
        assert report["score_vs_error"][what]["n"] == 2
    write_study(report, tmp_path)
    assert "| blurred | sharpness | 2 |" in (tmp_path / "study.md").read_text()  # a row per degradation
