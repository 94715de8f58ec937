"""`fetalscope quality`: one record per image with the contract's fields, a line per image for people, and a
clear error for a corrupt file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.serve.examples import BUNDLED_DIR

runner = CliRunner()
THORAX, OTHER = BUNDLED_DIR / "phantom_fetal_thorax.png", BUNDLED_DIR / "phantom_other.png"


def test_records_have_the_contract_fields(tmp_path):
    out = tmp_path / "quality.json"
    result = runner.invoke(app, ["quality", str(THORAX), str(OTHER), "--output", str(out)])
    assert result.exit_code == 0, result.output
    thorax, other = json.loads(out.read_text())
    for record in (thorax, other):
        assert {"image", "plane", "score", "grade", "criteria", "model"} <= set(record)
    assert thorax["what"] == "cardiothoracic" and 0 <= thorax["score"] <= 100
    for c in thorax["criteria"]:
        assert set(c) >= {"id", "passed", "value", "expected", "advice"}
    assert other["score"] is None and other["reason"].startswith("not assessed: plane")


def test_json_to_stdout_and_lines_for_people():
    result = runner.invoke(app, ["quality", str(THORAX), "--what", "head", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["what"] == "head" and record["criteria"][0]["id"] == "plane_confidence"
    lines = runner.invoke(app, ["quality", str(THORAX), str(OTHER)])
    assert lines.exit_code == 0
    first, second = lines.stdout.strip().splitlines()
    assert "cardiothoracic checklist" in first and "score" in first
    assert "not assessed" in second


def test_corrupt_file_and_bad_option_are_clear_errors(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    result = runner.invoke(app, ["quality", str(bad)])
    assert result.exit_code == 2 and "error:" in result.output and "broken.png" in result.output
    result = runner.invoke(app, ["quality", str(THORAX), "--what", "femur"])
    assert result.exit_code == 2 and "--what must be one of" in result.output
