"""Metrics broken down by acquisition metadata, with counts and small-group flags."""

from __future__ import annotations

import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.evaluate.breakdown import breakdown_by


def make_case():
    # 14 images: operator "Op1" scanned 10 (8 right), "Op2" scanned 3 (1 right), one has no operator
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])
    pred = y.copy()
    pred[[0, 1]] = [1, 2]  # two Op1 mistakes
    pred[[10, 11]] = [0, 0]  # two Op2 mistakes
    operators = ["Op1"] * 10 + ["Op2"] * 3 + [None]
    machines = ["Voluson E6"] * 7 + ["Aloka"] * 7
    patients = [f"p{i // 2}" for i in range(14)]
    return y, pred, operators, machines, patients


def test_breakdown_from_per_image_dicts_counts_and_flags_small_groups():
    y, pred, operators, machines, patients = make_case()
    meta = [{"Operator": o, "US_Machine": m} for o, m in zip(operators, machines, strict=True)]
    out = breakdown_by(y, pred, 3, meta, groups=patients)
    ops = {r["value"]: r for r in out["columns"]["Operator"]}
    assert set(ops) == {"Op1", "Op2", "(missing)"}
    assert (ops["Op1"]["n"], ops["Op1"]["correct"], ops["Op1"]["too_few"]) == (10, 8, False)
    assert ops["Op1"]["accuracy"] == pytest.approx(0.8)
    assert (ops["Op2"]["n"], ops["Op2"]["correct"], ops["Op2"]["too_few"]) == (3, 1, True)
    assert ops["(missing)"]["n"] == 1 and ops["(missing)"]["too_few"] is True
    assert ops["Op1"]["n_patients"] == 5
    assert sum(r["n"] for r in out["columns"]["Operator"]) == 14
    assert ops["Op1"]["class_counts"] == [4, 3, 3]
    machines_rows = {r["value"]: r for r in out["columns"]["US_Machine"]}
    assert machines_rows["Voluson E6"]["n"] == 7 and machines_rows["Voluson E6"]["correct"] == 5
    assert out["missing_columns"] == []


def test_breakdown_from_column_mapping_lists_absent_columns():
    y, pred, operators, _, _ = make_case()
    out = breakdown_by(y, pred, 3, {"Operator": operators})
    assert list(out["columns"]) == ["Operator"]
    assert out["missing_columns"] == ["US_Machine"]
    assert all(r["n_patients"] is None for r in out["columns"]["Operator"])


def test_breakdown_accepts_a_dataframe():
    pd = pytest.importorskip("pandas")
    y, pred, operators, machines, _ = make_case()
    df = pd.DataFrame({"Operator": operators, "US_Machine": machines})
    out = breakdown_by(y, pred, 3, df, min_count=5)
    ops = {r["value"]: r for r in out["columns"]["Operator"]}
    assert ops["Op1"]["n"] == 10 and ops["(missing)"]["n"] == 1  # NaN/None -> (missing)
    assert ops["Op2"]["too_few"] is True and ops["Op1"]["too_few"] is False


def test_breakdown_rejects_meta_of_wrong_length():
    y, pred, operators, _, _ = make_case()
    with pytest.raises(BadInputError, match="meta\\['Operator'\\] has 13 entries but y_true has 14"):
        breakdown_by(y, pred, 3, {"Operator": operators[:-1]})
    with pytest.raises(BadInputError, match="meta has 2 entries"):
        breakdown_by(y, pred, 3, [{"Operator": "a"}, {"Operator": "b"}])


def test_breakdown_on_the_real_fetal_planes_db_metadata(shared_data):
    """Operator/machine groups of the real 12,400-row CSV, read through the dataset adapter (whose
    meta keys are ``operator``/``machine``), match counts taken straight from the CSV."""
    import csv
    from collections import Counter

    from fetalscope.data.fetal_planes_db import load_fetal_planes_db
    from fetalscope.evaluate import evaluate_predictions

    csv_path = shared_data / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv"
    full = load_fetal_planes_db(csv_path.parent, require_images=False)
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    assert len(rows) == len(full.samples)
    y = np.array(full.labels)
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(len(y)) < 0.85, y, (y + 1) % len(full.classes))
    probs = np.full((len(y), len(full.classes)), 0.02)
    probs[np.arange(len(y)), pred] = 1 - 0.02 * (len(full.classes) - 1)
    report = evaluate_predictions(y, probs, full.classes, groups=[s.patient for s in full.samples],
                                  meta=[s.meta for s in full.samples], n_boot=200)
    b = report["breakdowns"]
    assert b["missing_columns"] == []
    for col in ("Operator", "US_Machine"):
        expected = Counter(r[col] for r in rows)
        got = {r["value"]: r["n"] for r in b["columns"][col]}
        assert got == dict(expected)
        for r in b["columns"][col]:
            assert r["too_few"] == (r["n"] < 10)
    assert report["n_groups"] == len({r["Patient_num"] for r in rows})
    assert report["confidence_intervals"]["accuracy"]["unit"] == "group"
