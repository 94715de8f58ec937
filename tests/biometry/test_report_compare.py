"""Paired comparison of two biometry reports (fetalscope.train.segmenter.report_compare and
``train_biometry.py compare``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fetalscope.errors import BadInputError
from fetalscope.train.segmenter.report_compare import compare_reports, load_report, render_comparison_md

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_HEAD = ROOT / "src" / "fetalscope" / "models" / "bundled" / "hc18-head"


def _head_report(folder: Path, errors: np.ndarray, refs: np.ndarray, missing: tuple[int, ...] = ()) -> Path:
    rows = [{"image": f"{i:03d}_HC.png", "group": f"s{i // 2}", "hc_ref_mm": float(r),
             "hc_pred_mm": None if i in missing else float(r + e)}
            for i, (e, r) in enumerate(zip(errors, refs, strict=True))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps({"measurement": "head", "split": "validation",
                                                    "bundle": folder.name, "per_image": rows}))
    return folder


def test_a_better_bundle_shows_a_negative_paired_difference_with_a_narrow_interval(tmp_path):
    rng = np.random.default_rng(0)
    errors = rng.normal(0, 2, 60)
    refs = np.linspace(60, 320, 60)
    before = _head_report(tmp_path / "before", errors, refs)
    after = _head_report(tmp_path / "after", errors * 0.5, refs, missing=(7,))
    c = compare_reports(load_report(before), load_report(after), n_boot=500)
    kept = np.delete(errors, 7)
    assert c["n_images"] == 60 and c["n_compared"] == 59
    assert c["before_mean_absolute_error"] == pytest.approx(np.abs(kept).mean())
    assert c["difference"]["estimate"] == pytest.approx(-np.abs(kept).mean() / 2)
    assert c["difference"]["lower"] <= c["difference"]["estimate"] <= c["difference"]["upper"] < 0
    assert c["difference"]["unit"] == "group" and c["error_correlation"] == pytest.approx(1.0)
    kept_refs = np.delete(refs, 7)
    bands = [((kept_refs >= lo) & (kept_refs < hi)).sum() for lo, hi in ((0, 100), (100, 200), (200, 1e9))]
    assert [b["n"] for b in c["by_reference"]] == bands and sum(bands) == 59 and min(bands) > 0
    text = render_comparison_md(c)
    assert "59 of 60 images" in text and f"{c['difference']['estimate']:+.3f}" in text


def test_reports_that_cannot_be_paired_are_refused(tmp_path):
    errors, refs = np.ones(10), np.full(10, 150.0)
    a = load_report(_head_report(tmp_path / "a", errors, refs))
    b = load_report(_head_report(tmp_path / "b", errors[:9], refs[:9]))
    with pytest.raises(BadInputError, match="different images"):
        compare_reports(a, b)
    other = dict(a, split="early_stop")
    with pytest.raises(BadInputError, match="differ in split"):
        compare_reports(a, other)
    none = load_report(_head_report(tmp_path / "none", errors, refs, missing=tuple(range(9))))
    with pytest.raises(BadInputError, match="only 1 image"):
        compare_reports(a, none)
    with pytest.raises(BadInputError, match="no report.json"):
        load_report(tmp_path / "empty")
    (tmp_path / "bad.json").write_text(json.dumps({"per_image": []}))
    with pytest.raises(BadInputError, match="not a biometry report"):
        load_report(tmp_path / "bad.json")


def test_the_cli_compares_the_shipped_head_bundle_with_itself(tmp_path):
    out = tmp_path / "c.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_biometry.py"), "compare", str(BUNDLED_HEAD),
                           str(BUNDLED_HEAD / "report.json"), "--n-boot", "200", "--json", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    c = json.loads(out.read_text())
    n = len(json.loads((BUNDLED_HEAD / "report.json").read_text())["per_image"])
    assert c["n_compared"] == n and c["difference"]["estimate"] == 0 and c["error_correlation"] == pytest.approx(1)
    assert "+0.000 (+0.000 to +0.000)" in proc.stdout
