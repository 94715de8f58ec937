"""The measurement routing study (fetalscope.train.recipes.measure_routing): its Markdown, with and without the
every-image section, from a study result, and the HC error table by head size."""

from __future__ import annotations

from fetalscope.train.recipes.measure_routing import head_table, routing_markdown


def _result(every_image: bool) -> dict:
    rows = [{"hc_mm": 60.0, "hc_ref_mm": 62.0}, {"hc_mm": 151.0, "hc_ref_mm": 150.0},
            {"hc_mm": 250.0, "hc_ref_mm": 254.0}]
    missed = [{"image": "032_2HC.png", "plane": "Fetal thorax", "plane_probability": 0.88}]
    result = {
        "hc18_validation": {"n": 4, "measured": 3, "measured_share": 0.75, "routes": {"plane -> head": 3},
                            "by_size": head_table(rows), "missed": missed, "forced_ctr_rejected": 4},
        "focus_validation": {"n": 2, "ctr": 2, "ctr_ok": 2, "head": [], "routes": {"plane -> cardiothoracic": 2},
                             "forced_head_rejected": 2},
        "fpdb_tv_brains": {"n": 3, "head": 3, "routes": {"plane -> head": 3}},
        "colour_photos": {"n": 4, "measured": 0, "forced_head_ok": []},
        "minutes": 1.5,
    }
    if every_image:
        result["hc18_all"] = {"n": 5, "measured": 4, "routes": {"plane -> head": 4}, "missed": missed}
        result["focus_all"] = {"n": 7, "ctr": 7, "head": [], "routes": {"plane -> cardiothoracic": 7}}
    return result


def test_head_table_bins_by_reference_size():
    table = head_table([{"hc_mm": 60.0, "hc_ref_mm": 62.0}, {"hc_mm": 151.0, "hc_ref_mm": 150.0},
                        {"hc_mm": 250.0, "hc_ref_mm": 254.0}])
    assert [(r["size"], r["n"]) for r in table] == [("< 100 mm", 1), ("100-200 mm", 1), (">= 200 mm", 1), ("all", 3)]
    assert table[-1]["mad_mm"] == (2 + 1 + 4) / 3 and table[-1]["bias_mm"] == (-2 + 1 - 4) / 3


def test_markdown_without_and_with_every_image():
    plain = routing_markdown(_result(False))
    assert "**3/4 (75.0%)**" in plain and "032_2HC.png (Fetal thorax 0.88)" in plain
    assert "Every HC18" not in plain and plain.rstrip().endswith("Run time: 1.5 min.")
    every = routing_markdown(_result(True))
    assert "## Every HC18 and FOCUS image" in every and "**4/5** measured" in every
    assert "7/7 routed to the CTR, 0 to head" in every and "does not estimate" in every
    assert every.rstrip().endswith("Run time: 1.5 min.")
