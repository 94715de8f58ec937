"""The calibration rules of the threshold card (known answers on given values) and the held-out study's tables
(on two real images per set; skips without ../shared)."""

from __future__ import annotations

import numpy as np

from fetalscope.pipeline.quality_study import _score_vs_error, derive_thresholds, run_study, write_card, write_study
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
    # compliance scales: the threshold itself where the quantity has no top, else the passing range's width
    assert head["head_size"]["scale"] == 0.1 and head["sharpness"]["scale"] == 0.05
    assert head["ellipse_fit"]["scale"] == 0.95
    # gain falls in log units: the passing range's width as a log ratio
    assert head["gain"]["fall"] == "log" and head["gain"]["scale"] == round(float(np.log(0.975 / 0.025)), 4)
    assert head["head_in_view"]["scale"] == 0.05 and all(t["weight"] == 1.0 for t in head.values())
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
    assert set(report["degradations_unseen"]) == {"head", "cardiothoracic"}
    write_study(report, tmp_path)
    assert "| blurred | sharpness | 2 |" in (tmp_path / "study.md").read_text()  # a row per degradation


def test_score_vs_error_statistics():
    """Known answers: errors that fall as the score rises give rho -1, and the standard images' mean error."""
    rows = [{"score": s, "grade": "standard" if s >= 80 else "acceptable", "error": e, "group": f"g{i}"}
            for i, (s, e) in enumerate(zip([95, 90, 85, 70, 65, 50], [1.0, 1.5, 2.0, 3.0, 4.0, 6.0], strict=True))]
    out = _score_vs_error(rows, "head", n_boot=200)
    assert out["spearman_score_vs_error"]["rho"] == -1.0
    assert out["standard"]["mean_abs_error"] == 1.5 and out["not_standard"]["mean_abs_error"] == round(13 / 3, 4)
    assert out["difference_standard_minus_rest"]["estimate"] == round(1.5 - 13 / 3, 4)
